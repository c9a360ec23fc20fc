-- One sliding-window counter decision (hit, peek). KEYS[1] the id's counters (prefix .. id .. ':swc').
-- ARGV: algorithm (5), mode (h, p), limit, period_ms, capacity, cost, now_ms or '' for Redis's TIME.
--   redis-cli --eval sliding_counter.lua Hammer:Redis:a:swc , 5 h 10 60000 10 1 1700000000000
--#include lib/idiv.lua
--#include lib/cdiv.lua
--#include lib/clock.lua
--#include lib/sliding_counter.lua
local now = tonumber(ARGV[7]) or redis_now()
return {sliding_counter(KEYS[1], nil, 5, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), now, nil)}
