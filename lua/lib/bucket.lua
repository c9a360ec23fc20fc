-- The token bucket (alg 2, state: free units) and the leaky bucket (alg 3, state: level units): the same meter.
-- key holds "<units> <ms of the last change>". Written only when an allowed hit changes it, with a TTL of the time
-- it takes to drain and a grace second.
local function bucket(key, _, alg, mode, L, P, B, c, now, _)
  local C = B * P
  local u, t
  local v = redis.call('GET', key)
  if v then
    local a, b = string.match(v, '^(%-?%d+) (%-?%d+)$')
    u, t = tonumber(a), tonumber(b)
  end
  local D = 0
  if u ~= nil and t ~= nil then
    local el = math.max(0, now - t)
    if alg == 2 then D = C - math.min(C, math.max(0, u)) else D = math.min(C, math.max(0, u)) end
    if el >= cdiv(D, L) then D = 0 else D = D - el * L end
  else t = now end
  local ok, Da, retry = meter(mode, L, P, B, C, c, D)
  if ok == 1 and mode == 'h' and Da ~= D then
    local keep = Da
    if alg == 2 then keep = C - Da end
    redis.call('SET', key, string.format('%d %d', keep, math.max(t, now)), 'PX', cdiv(Da, L) + 1000)
  end
  return meter_result(ok, Da, retry, L, P, C)
end
