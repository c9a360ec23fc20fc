-- Exact ceiling division (b > 0).
local function cdiv(a, b) return -idiv(-a, b) end
