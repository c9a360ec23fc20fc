-- One sliding-window decision (hit, peek). KEYS[1] the id's log (prefix .. id .. ':sw'), KEYS[2] its meta (':swm').
-- ARGV: algorithm (1), mode (h, p), limit, period_ms, capacity, cost, now_ms or '' for Redis's TIME.
--   redis-cli --eval sliding_window.lua Hammer:Redis:a:sw Hammer:Redis:a:swm , 1 h 10 60000 10 1 1700000000000
--#include lib/clock.lua
--#include lib/sliding_window.lua
local nows = ARGV[7]
local now = tonumber(nows)
if not now then now = redis_now(); nows = string.format('%d', now) end
return {sliding_window(KEYS[1], KEYS[2], 1, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), 0, tonumber(ARGV[6]),
  now, nows)}
