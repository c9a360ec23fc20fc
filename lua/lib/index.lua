-- The id's index: a sorted set of its bucket numbers, each scored with the time its bucket expires on Redis's
-- clock, so that delete_buckets finds the id's buckets without a SCAN of the keyspace. It lives as long as its
-- longest-lived bucket; a new bucket drops the entries of buckets that have expired (1000 at most), so it stays
-- about the size of the id's live buckets. Called at the moment the bucket's TTL is set to ttl; now: Redis's clock
-- (redis_now(), read once by a batch). member: the bucket's number, as the caller sent it (text: it may exceed
-- 2^53) or a window number (below 2^53), or the key's suffix of a state of a limit's own (hammer_hit_all's
-- sw.10.1000.10, fw.2.1000.2.<window>, ...: Keys.ownSuffix), listed as the buckets are. Only what Redis 6.2 has
-- (PEXPIRE's NX and GT are 7.0's): PTTL, then PEXPIRE if longer.
local function index_add(idx, member, ttl, now)
  if type(member) == 'number' then member = string.format('%d', member) end
  local added = redis.call('ZADD', idx, 'GT', string.format('%d', now + ttl), member)
  local left = redis.call('PTTL', idx)
  -- A new entry in an index that has a TTL (one that has none is new: nothing to prune) drops at most 1000 expired
  -- entries (the lowest scores), so that no call's work grows with the index; later new buckets drop the rest.
  if added == 1 and left >= 0 then
    local gone = redis.call('ZCOUNT', idx, '-inf', string.format('(%d', now))
    if gone > 0 then redis.call('ZREMRANGEBYRANK', idx, 0, math.min(gone, 1000) - 1) end
  end
  if left < ttl then redis.call('PEXPIRE', idx, ttl) end
end
