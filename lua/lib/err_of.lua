-- A failed request of a batch as an error reply of its own.
local function err_of(e)
  if type(e) == 'table' and e.err then return e end
  return {err = 'ERR ' .. tostring(e)}
end
