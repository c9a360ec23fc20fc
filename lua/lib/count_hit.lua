-- Hammer's count_hit on a bucket (k) of an id (idx, its index): adds incr and returns the new count.
local function count_hit(k, idx, incr, nows, ttl, member, refresh, rnow)
  local n = redis.call('HINCRBY', k, 'count', incr)
  return stamp(k, idx, n, incr, nows, ttl, member, refresh, rnow)
end
