-- Several limits of one id, one atomic decision (hammer_hit_all, hammer_peek_all, hammer_hit_all_many): all pass and
-- all are charged, or none is. The limits are peeked (nothing changes); a cost passes a limit when it is at most
-- that peek's remaining and the limit's capacity. When every limit passes, each is hit; otherwise only those the
-- cost does not pass are hit (they deny and change nothing) for their waits. Decided as the Swift model does
-- (HammerCore/MultiLimit.swift): allowed with the least remaining, or denied with the longest wait (-1 the longest)
-- of those that deny; the longest reset either way; ties to the first.
-- ARGV[1] mode (h hit, p peek); then a request after another: the number of its limits n, cost, now_ms or '' for
-- Redis's TIME (read once a call), then five fields a limit: algorithm, limit, period_ms, capacity, own (1 when the
-- limit keeps a state of its own, MultiLimit.ownStates: its algorithm's state is another limit's too in this call).
-- KEYS: each request's limits' keys in order, as the single scripts take them (the fixed window: its bucket, or the
-- id's key base with Redis's clock, and the index; the sliding window: log, meta; the others their state); a limit
-- of its own: its own state keys (<base><word>.<limit>.<period_ms>.<capacity>), then the id's index, which lists
-- each of them (the part after the key's last ':') scored with when it expires, for delete_buckets; a fixed window
-- of its own: its own bucket (<base>fw.<limit>.<period_ms>.<capacity>.<window>, or without the window with Redis's
-- clock) and the index, which lists the bucket as Hammer's buckets are listed, by its suffix.
-- Returns six elements a request: allowed, count, remaining, retry_after_ms, reset_after_ms and the deciding
-- limit's place (from 0), or an error reply of its own and five zeros (a failed request does not stop the others).
--   redis-cli --eval decide_all.lua Hammer:Redis:a:tb Hammer:Redis:a:swc , \
--     h 2 1 1700000000000 2 10 1000 20 0 5 1000 60000 1000 0
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
local mode = ARGV[1]
if mode ~= 'h' and mode ~= 'p' then return redis.error_reply('ERR decide_all: mode must be h or p') end

-- Every request's fields and keys, checked before anything runs: keys never slide onto another request.
local reqs, o, k = {}, 2, 1
while o <= #ARGV do
  local n = tonumber(ARGV[o])
  if not n or n < 1 or o + 2 + 5 * n > #ARGV then return redis.error_reply('ERR decide_all: malformed request') end
  local r = {cost = tonumber(ARGV[o + 1]), nows = ARGV[o + 2], lims = {}, keys = {}, idx = {}, fw = {}}
  for i = 1, n do
    local f = o + 3 + 5 * (i - 1)
    local alg = tonumber(ARGV[f])
    if not nkeys[alg] then return redis.error_reply('ERR decide_all: unknown algorithm') end
    r.lims[i] = {alg, tonumber(ARGV[f + 1]), tonumber(ARGV[f + 2]), tonumber(ARGV[f + 3])}
    r.keys[i] = {KEYS[k], nil}
    if nkeys[alg] == 2 then r.keys[i][2] = KEYS[k + 1] end
    k = k + nkeys[alg]
    if ARGV[f + 4] == '1' then
      if alg == 0 then r.fw[i] = true
      else
        r.idx[i] = KEYS[k]
        k = k + 1
      end
    end
  end
  reqs[#reqs + 1] = r
  o = o + 3 + 5 * n
end
if k ~= #KEYS + 1 then return redis.error_reply('ERR decide_all: KEYS do not match the requests') end

local clock = nil
local function later(a, b)
  if b == -1 then return false end
  return a == -1 or a > b
end

local function decide(r)
  local now, nows = tonumber(r.nows), r.nows
  local keys = r.keys
  if not now then
    clock = clock or redis_now()
    now, nows = clock, string.format('%d', clock)
    keys = {}
    local seen = {}
    for i, l in ipairs(r.lims) do
      keys[i] = {r.keys[i][1], r.keys[i][2]}
      -- The fixed window's bucket is known only now; two limits meeting in one would count each other's hits.
      if l[1] == 0 then
        keys[i][1] = keys[i][1] .. string.format('%d', idiv(now, l[3]))
        if seen[keys[i][1]] then
          return redis.error_reply('HAMMER_INVALID two fixed windows of this call fall in one bucket now: use '
            .. 'another period'), 0, 0, 0, 0, 0
        end
        seen[keys[i][1]] = true
      end
    end
  end
  local n, c = #r.lims, r.cost
  local function one(i, m, cost)
    local l = r.lims[i]
    -- A fixed window's own bucket is indexed by its suffix (lib/fixed_window.lua), not its window's number.
    local own = l[1]
    if r.fw[i] then own = string.match(keys[i][1], '[^:]*$') end
    return {run[l[1]](keys[i][1], keys[i][2], own, m, l[2], l[3], l[4], cost, now, nows)}
  end
  local d, ok, all = {}, {}, true
  local function peek(i)
    d[i] = one(i, 'p', 1)
    if mode == 'p' then ok[i] = d[i][1] == 1
    else ok[i] = c == 0 or (c <= d[i][3] and c <= r.lims[i][4]) end
    all = all and ok[i]
  end
  -- A hit peeks all but the first limit: when they pass, the first one's own hit decides it (and changes nothing
  -- when it denies), and only then are the others hit.
  for i = mode == 'h' and 2 or 1, n do peek(i) end
  if mode == 'h' then
    if all then
      d[1] = one(1, 'h', c)
      ok[1] = d[1][1] == 1
      all = ok[1]
      if all then
        for i = 2, n do d[i] = one(i, 'h', c) end
        -- Each state of its own that the hits wrote is listed in the index until it expires, and a second more:
        -- a hot key's entries are then renewed about once a second, not at each hit (a ZSCORE tells). The sliding
        -- window's two keys have one TTL, so its first key speaks for both.
        for i = 1, n do
          local idx, ks = r.idx[i], r.keys[i]
          if idx and c > 0 then
            local ttl = redis.call('PTTL', ks[1])
            if ttl > 0 then
              clock = clock or redis_now()
              local at = tonumber(redis.call('ZSCORE', idx, string.match(ks[1], '[^:]*$')))
              if not at or at < clock + ttl then
                for _, key in ipairs(ks) do index_add(idx, string.match(key, '[^:]*$'), ttl + 1000, clock) end
              end
            end
          end
        end
      end
    else
      peek(1)
      for i = 1, n do
        if not ok[i] then d[i] = one(i, 'h', c) end
      end
    end
  end
  local reset, by = 0, nil
  for i = 1, n do reset = math.max(reset, d[i][5]) end
  if all then
    for i = 1, n do
      if not by or d[i][3] < d[by][3] then by = i end
    end
    return 1, d[by][2], d[by][3], 0, reset, by - 1
  end
  for i = 1, n do
    if not ok[i] and (not by or later(d[i][4], d[by][4])) then by = i end
  end
  return 0, d[by][2], 0, d[by][4], reset, by - 1
end

local out, q = {}, 1
-- Requests run under one pcall until one fails: that one answers its error, and the next pcall goes on.
local function decide_from_q()
  while q <= #reqs do
    local r = reqs[q]
    q = q + 1
    local a, b, c, d, e, f = decide(r)
    local m = #out
    out[m + 1], out[m + 2], out[m + 3], out[m + 4], out[m + 5], out[m + 6] = a, b, c, d, e, f
  end
end
while q <= #reqs do
  local ok, err = pcall(decide_from_q)
  if not ok then
    local m = #out
    out[m + 1], out[m + 2], out[m + 3], out[m + 4], out[m + 5], out[m + 6] = err_of(err), 0, 0, 0, 0, 0
  end
end
return out
