-- Hammer's bucket (a hash {count, created, updated}, as Hammer's Elixir Redis backend writes it) after HINCRBY made
-- its count n: stamps updated; a new bucket also gets created (one HSET for both), its TTL and its index entry.
-- refresh: the TTL restarts at every hit, so the bucket lives ttl after its latest hit (count_hit, as the Elixir
-- backend does); otherwise it is set at the first hit (check_rate and the fixed window, whose window's end is
-- known then). member: the bucket's number; rnow: Redis's clock if the caller read it already (a batch), or nil.
-- Returns the count: a number, or its exact text beyond 2^53.
local function stamp(k, idx, n, incr, nows, ttl, member, refresh, rnow)
  -- The count was 0 and the key has no TTL: HINCRBY just made it (every bucket has a TTL).
  if n == tonumber(incr) and redis.call('PEXPIRE', k, ttl, 'NX') == 1 then
    redis.call('HSET', k, 'created', nows, 'updated', nows)
    index_add(idx, member, ttl, rnow or redis_now())
  else
    redis.call('HSET', k, 'updated', nows)
    if refresh then
      redis.call('PEXPIRE', k, ttl)
      index_add(idx, member, ttl, rnow or redis_now())
    end
  end
  if n >= 9007199254740992 then return redis.call('HGET', k, 'count') end
  return n
end
