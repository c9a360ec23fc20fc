-- One token-bucket or leaky-bucket decision (hit, peek). KEYS[1] the id's state (prefix .. id .. ':tb' or ':lb').
-- ARGV: algorithm (2 token, 3 leaky), mode (h, p), limit, period_ms, capacity, cost, now_ms or '' for Redis's TIME.
--   redis-cli --eval bucket.lua Hammer:Redis:a:tb , 2 h 10 60000 10 1 1700000000000
--#include lib/idiv.lua
--#include lib/cdiv.lua
--#include lib/clock.lua
--#include lib/meter.lua
--#include lib/bucket.lua
local now = tonumber(ARGV[7]) or redis_now()
return {bucket(KEYS[1], nil, tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]), now, nil)}
