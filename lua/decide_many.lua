-- Many decisions in one call (a batch). ARGV[1] the number of distinct limiters, then five fields a limiter:
-- algorithm, mode, limit, period_ms, capacity; then three fields a request: its limiter's number (from 1), cost,
-- now_ms or '' for Redis's TIME (read once a call). KEYS: each request's keys in request order, as the single
-- scripts take them: the fixed window two (its window's bucket, or the id's key base with Redis's clock, and the
-- id's index), the sliding window two (log, meta), the buckets, GCRA and the sliding counter one (their state).
-- Returns five elements a request in one flat array: its decision, or an error reply of its own and four zeros
-- (a failed request does not stop the others).
--   redis-cli --eval decide_many.lua Hammer:Redis:a:tb Hammer:Redis:b:tb , 1 2 h 10 60000 10 1 1 1700000000000 1 1 ''
--#include lib/idiv.lua
--#include lib/cdiv.lua
--#include lib/clock.lua
--#include lib/index.lua
--#include lib/stamp.lua
--#include lib/fixed_window.lua
--#include lib/sliding_window.lua
--#include lib/meter.lua
--#include lib/bucket.lua
--#include lib/gcra.lua
--#include lib/sliding_counter.lua
--#include lib/err_of.lua
local run = {[0] = fixed_window, [1] = sliding_window, [2] = bucket, [3] = bucket, [4] = gcra, [5] = sliding_counter}
local nkeys = {[0] = 2, [1] = 2, [2] = 1, [3] = 1, [4] = 1, [5] = 1}
local ns = tonumber(ARGV[1])
local specs = {}
for s = 1, ns do
  local o = 2 + (s - 1) * 5
  specs[s] = {tonumber(ARGV[o]), ARGV[o + 1], tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])}
end
-- Each request's first key, checked against KEYS before anything runs: keys never slide onto another request.
local first, k = {}, 1
for o = 2 + ns * 5, #ARGV - 2, 3 do
  local sp = specs[tonumber(ARGV[o])]
  if not sp or not nkeys[sp[1]] then return redis.error_reply('ERR batch: request names no limiter') end
  first[o] = k
  k = k + nkeys[sp[1]]
end
if k ~= #KEYS + 1 then return redis.error_reply('ERR batch: KEYS do not match the requests') end
local out, n, clock = {}, 0, nil
local o, last = 2 + ns * 5, #ARGV - 2
-- Requests run under one pcall until one fails: that one answers its error, and the next pcall goes on.
local function decide_from_o()
  while o <= last do
    local sp, nows, kf = specs[tonumber(ARGV[o])], ARGV[o + 2], first[o]
    local cost = tonumber(ARGV[o + 1])
    o = o + 3
    local alg = sp[1]
    local k1, k2 = KEYS[kf], nil
    if nkeys[alg] == 2 then k2 = KEYS[kf + 1] end
    local now = tonumber(nows)
    if not now then
      clock = clock or redis_now()
      now, nows = clock, string.format('%d', clock)
      if alg == 0 then k1 = k1 .. string.format('%d', idiv(now, sp[4])) end
    end
    local a, b, c, d, e = run[alg](k1, k2, alg, sp[2], sp[3], sp[4], sp[5], cost, now, nows)
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = a, b, c, d, e
    n = n + 5
  end
end
while o <= last do
  local ok, err = pcall(decide_from_o)
  if not ok then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = err_of(err), 0, 0, 0, 0
    n = n + 5
  end
end
return out
