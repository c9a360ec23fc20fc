-- Hammer's count_hit: adds an increment to a bucket of an id and returns the new count. The bucket lives expiry_ms
-- (to expiry_ms + 1 s) after its latest hit, as with Hammer's Elixir Redis backend.
-- KEYS[1] the bucket (prefix .. id .. ':' .. bucket), KEYS[2] the id's index (prefix .. id .. ':index').
-- ARGV[1] increment, ARGV[2] now_ms, ARGV[3] expiry_ms, ARGV[4] the bucket's number.
--   redis-cli --eval count_hit.lua Hammer:Redis:a:7 Hammer:Redis:a:index , 1 1700000000000 60000 7
--#include lib/clock.lua
--#include lib/index.lua
--#include lib/stamp.lua
--#include lib/count_hit.lua
return count_hit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], true)
