-- Hammer's bucket (a hash {count, created, updated}, as Hammer's Elixir Redis backend writes it) after HINCRBY made
-- its count n: stamps updated; a new bucket also gets created (one HSET for both), its TTL and its index entry.
-- refresh: the bucket lives ttl after its latest hit (count_hit, as the Elixir backend does: it sets whole seconds,
-- expiry_ms / 1000 + 1). The TTL is set to ttl + 1 s, and set again only once it is outside ttl .. ttl + 1 s (fallen
-- below, or longer: another client's), so a hot bucket pays a PTTL per hit and its TTL and index upkeep at most once
-- a second, and every bucket lives from ttl to ttl + 1 s after its latest hit. Without refresh the TTL is set at the
-- first hit (check_rate and the fixed window, whose window's end is known then). member: the bucket's number; rnow:
-- Redis's clock if the caller read it already (a batch), or nil. Returns the count: a number, or its exact text
-- beyond 2^53.
local function stamp(k, idx, n, incr, nows, ttl, member, refresh, rnow)
  local life = ttl
  if refresh then life = ttl + 1000 end
  -- The count was 0 and the key has no TTL: HINCRBY just made it (every bucket has a TTL). PTTL then PEXPIRE:
  -- Redis 6.2 has no PEXPIRE NX.
  if n == tonumber(incr) and redis.call('PTTL', k) == -1 then
    redis.call('PEXPIRE', k, life)
    redis.call('HSET', k, 'created', nows, 'updated', nows)
    index_add(idx, member, life, rnow or redis_now())
  else
    redis.call('HSET', k, 'updated', nows)
    local left = refresh and redis.call('PTTL', k)
    if left and (left < ttl or left > life) then
      redis.call('PEXPIRE', k, life)
      index_add(idx, member, life, rnow or redis_now())
    end
  end
  if n >= 9007199254740992 then return redis.call('HGET', k, 'count') end
  return n
end
