-- One GCRA decision (hit, peek). KEYS[1] the id's state (prefix .. id .. ':gcra').
-- ARGV: algorithm (4), mode (h, p), limit, period_ms, capacity, cost, now_ms or '' for Redis's TIME.
--   redis-cli --eval gcra.lua Hammer:Redis:a:gcra , 4 h 10 60000 10 1 1700000000000
--#include lib/idiv.lua
--#include lib/cdiv.lua
--#include lib/clock.lua
--#include lib/meter.lua
--#include lib/gcra.lua
local now = tonumber(ARGV[7]) or redis_now()
return {gcra(KEYS[1], nil, 4, ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  now, nil)}
