-- Exact floor division of doubles holding integers below 2^53 (b > 0): a / b rounds, so the quotient is corrected.
local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
