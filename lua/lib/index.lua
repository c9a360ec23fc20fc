-- The id's index: a sorted set of its bucket numbers, each scored with the time its bucket expires on Redis's
-- clock, so that delete_buckets finds the id's buckets without a SCAN of the keyspace. It lives as long as its
-- longest-lived bucket; a new bucket drops the entries of buckets that have expired, so it stays the size of the
-- id's live buckets. Called at the moment the bucket's TTL is set to ttl; now: Redis's clock (redis_now(), read
-- once by a batch). member: the bucket's number, as the caller sent it (text: it may exceed 2^53) or a window
-- number (below 2^53).
local function index_add(idx, member, ttl, now)
  if type(member) == 'number' then member = string.format('%d', member) end
  if redis.call('ZADD', idx, 'GT', string.format('%d', now + ttl), member) == 1 then
    if redis.call('PEXPIRE', idx, ttl, 'NX') == 1 then return end   -- a new index: nothing to prune
    redis.call('ZREMRANGEBYSCORE', idx, '-inf', string.format('(%d', now))
  end
  redis.call('PEXPIRE', idx, ttl, 'GT')
end
