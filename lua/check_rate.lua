-- Hammer's check_rate at a known time: count_hit on the bucket of the window holding now, whose TTL is set at its
-- first hit to the window's end and a grace second (the caller computes both). Returns the new count.
-- KEYS[1] the window's bucket, KEYS[2] the id's index. ARGV[1] increment, ARGV[2] now_ms, ARGV[3] the TTL in ms,
-- ARGV[4] the window's number.
--   redis-cli --eval check_rate.lua Hammer:Redis:a:28333333 Hammer:Redis:a:index , 1 1700000000000 41000 28333333
--#include lib/clock.lua
--#include lib/index.lua
--#include lib/stamp.lua
--#include lib/count_hit.lua
return count_hit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], false)
