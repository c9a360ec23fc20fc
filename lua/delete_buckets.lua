-- delete_buckets: the buckets an id's index names and the id's state of the other algorithms.
-- KEYS[1] the id's index, KEYS[2] to KEYS[ARGV[2] - 1] the state keys (sw, swm, tb, lb, gcra, swc), then the
-- buckets the caller read from the index just before (ZRANGE): those of its members that are bucket numbers.
-- ARGV[1] the id's key base (prefix .. id .. ':'), ARGV[2] the first bucket's place in KEYS.
-- When the index still names only buckets among KEYS, deletes them all and the index, and returns how many buckets
-- and state keys it deleted; otherwise (a bucket was made in between) deletes nothing and returns -1, and the
-- caller reads the index again.
--   redis-cli --eval delete_buckets.lua Hammer:Redis:a:index Hammer:Redis:a:sw Hammer:Redis:a:swm \
--     Hammer:Redis:a:tb Hammer:Redis:a:lb Hammer:Redis:a:gcra Hammer:Redis:a:swc Hammer:Redis:a:7 , Hammer:Redis:a: 8
local declared = {}
for i = tonumber(ARGV[2]), #KEYS do declared[KEYS[i]] = true end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #members do
  -- Only bucket numbers name buckets: anything else another client wrote in the index could name another id's key.
  if string.match(members[i], '^%-?%d+$') and not declared[ARGV[1] .. members[i]] then return -1 end
end
local n = 0
for i = 2, #KEYS, 256 do n = n + redis.call('DEL', unpack(KEYS, i, math.min(i + 255, #KEYS))) end
redis.call('DEL', KEYS[1])
return n
