-- Many count_hits in one call (a batch). KEYS: two a request, its bucket and its id's index. ARGV[1] expiry_ms,
-- then three fields a request: the bucket's number, increment, now_ms. Returns one element a request: its count,
-- or an error reply of its own (a failed request does not stop the others).
--   redis-cli --eval count_hits.lua Hammer:Redis:a:7 Hammer:Redis:a:index Hammer:Redis:b:7 Hammer:Redis:b:index \
--     , 60000 7 1 1700000000000 7 2 1700000000000
--#include lib/clock.lua
--#include lib/index.lua
--#include lib/stamp.lua
--#include lib/count_hit.lua
--#include lib/err_of.lua
local ttl, rnow = tonumber(ARGV[1]), redis_now()   -- Redis's clock, read once for the index's expiry times
local out = {}
for r = 1, #KEYS / 2 do
  local a = 3 * r - 1
  local ok, n = pcall(count_hit, KEYS[2 * r - 1], KEYS[2 * r], ARGV[a + 1], ARGV[a + 2], ttl, ARGV[a], true, rnow)
  if ok then out[r] = n else out[r] = err_of(n) end
end
return out
