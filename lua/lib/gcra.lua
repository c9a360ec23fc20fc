-- GCRA: key holds the theoretical arrival time "<tat ms> <fraction of a ms, in 1/L>". Written only when an allowed
-- hit changes it, with a TTL of the time to the TAT and a grace second.
local function gcra(key, _, _, mode, L, P, B, c, now, _)
  local C = B * P
  local tat, f
  local v = redis.call('GET', key)
  if v then
    local a, b = string.match(v, '^(%-?%d+) (%-?%d+)$')
    tat, f = tonumber(a), tonumber(b)
  end
  local D = 0
  if tat ~= nil and f ~= nil and tat >= now then
    local ahead = tat - now
    -- Past capacity (the caller's clock stepped back): full, and the wait counts from the real TAT.
    if ahead > cdiv(C, L) + 1 or ahead * L + f > C then
      local ok, retry = 0, -1
      if mode == 'h' and c == 0 then ok, retry = 1, 0
      elseif not (mode == 'h' and c > B) then
        local cu = c * P
        if mode == 'p' then cu = P end
        retry = ahead + cdiv(f + cu - C, L)
      end
      local reset = ahead
      if f > 0 then reset = ahead + 1 end
      return ok, B, 0, retry, reset
    end
    D = ahead * L + f
  end
  local ok, Da, retry = meter(mode, L, P, B, C, c, D)
  if ok == 1 and mode == 'h' and Da ~= D then
    local q = idiv(Da, L)
    redis.call('SET', key, string.format('%d %d', now + q, Da - q * L), 'PX', cdiv(Da, L) + 1000)
  end
  return meter_result(ok, Da, retry, L, P, C)
end
