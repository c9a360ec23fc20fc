-- One fixed-window decision (hit, peek, check_rate with Redis's clock, inspect) on Hammer's bucket of the window.
-- KEYS[1] the window's bucket (prefix .. id .. ':' .. window number), or, with Redis's clock (ARGV[7] = ''), the
-- id's key base (prefix .. id .. ':'): the window is known only here, and its bucket is the base and its number
-- (a key of the same hash slot when the id is a hash tag). KEYS[2] the id's index.
-- ARGV: algorithm (0), mode (h, p, c, i), limit, period_ms, capacity, cost, now_ms or '' for Redis's TIME.
--   redis-cli --eval fixed_window.lua Hammer:Redis:a:28333333 Hammer:Redis:a:index , 0 h 10 60000 10 1 1700000000000
--#include lib/idiv.lua
--#include lib/clock.lua
--#include lib/index.lua
--#include lib/stamp.lua
--#include lib/fixed_window.lua
local key, P, nows = KEYS[1], tonumber(ARGV[4]), ARGV[7]
local now = tonumber(nows)
if not now then
  now = redis_now()
  nows = string.format('%d', now)
  key = key .. string.format('%d', idiv(now, P))
end
return {fixed_window(key, KEYS[2], 0, ARGV[2], tonumber(ARGV[3]), P, 0, tonumber(ARGV[6]), now, nows)}
