-- The sliding window: a log of the hits (log, a sorted set: score = the hit's time, member "<cum>:<cost>", cum the
-- running sum of the costs logged, zero-padded to 16 digits so that hits of one time sort in log order) and its meta (a
-- string "<total> <cum> <newest>": the costs in the log, the cum of its last hit, the newest hit's time). cum rises
-- along the log, so the cost of any stretch of it is a difference of two cums: the hits in the window and the wait
-- until enough of them leave take O(log n) commands (a count, a read by rank, a binary search by rank), whatever the
-- log's length. What one script call (a batch's included) does hit by hit is bounded by a budget (sw_budget) of
-- SW_BATCH hits trimmed or read, a hit rewritten counting SW_REWRITE (ZREM and ZADD cost about four times a trim): an
-- allowed hit trims expired hits within it, later hits the rest. A hit stamped before hits already logged renumbers
-- those after it; one stamped before more of them than the budget left is logged at the time of the oldest of the
-- newest hits it can renumber (it then leaves the window later: stricter, never looser). State of an older version
-- (members "<seq>:<cost>", meta "<total> <seq>[ <newest>]", seq not padded) is converted by the first allowed hit that
-- can read its whole log within the budget; a larger one is read as it is: exactly when half the budget covers its
-- window's hits, else as its total less one per expired hit, exact when every hit cost 1 and otherwise an upper bound
-- (denials and waits may then be longer than exact, never shorter). mode: h hit, p peek. A peek or a denied hit writes
-- nothing. Returns allowed, count, remaining, retry_after_ms and reset_after_ms, the wait until the window holds no
-- hits.
local SW_BATCH, SW_REWRITE = 1000, 4
local sw_budget = SW_BATCH
local SW_REBASE = 2 ^ 50   -- cum is renumbered from 0 once past this, when the budget can rewrite the whole log
local function sw_cum(member) return tonumber(string.match(member, '^(%d+):')) end
local function sw_cost(member) return tonumber(string.match(member, ':(%d+)$')) end
local function sw_member(cum, cost) return string.format('%016d:%d', cum, cost) end

-- Rewrites the hits of entries (a WITHSCORES reply) with cum + d.
local function sw_renumber(log, entries, d)
  local old, new = {}, {}
  for i = 1, #entries, 2 do
    old[#old + 1] = entries[i]
    new[#new + 1] = entries[i + 1]
    new[#new + 1] = sw_member(sw_cum(entries[i]) + d, sw_cost(entries[i]))
  end
  if #old > 0 then
    redis.call('ZREM', log, unpack(old))
    redis.call('ZADD', log, unpack(new))
  end
end

local function sliding_window(log, meta, _, mode, L, P, _, c, now, nows)
  local total, cum, newest, legacy = 0, 0, nil, false
  local m = redis.call('GET', meta)
  if m then
    local a, b, t = string.match(m, '^(%d+) (%d+) ?(%d*)$')
    total, cum, newest = tonumber(a) or 0, tonumber(b) or 0, tonumber(t)
    legacy = b == nil or #b ~= 16
  end
  local n   -- the hits logged, read only where needed
  if legacy then n = redis.call('ZCARD', log) end
  local edge = now - P
  local edges = string.format('%d', edge)
  local nexp = redis.call('ZCOUNT', log, '-inf', edges)
  local base = cum - total   -- the cum of the last hit trimmed
  local cedge = base         -- the cum of the last expired hit
  local lives                -- legacy: the window's hits, when the budget can read them
  local live
  if not legacy then
    if nexp > 0 then cedge = sw_cum(redis.call('ZRANGE', log, nexp - 1, nexp - 1)[1]) end
    live = cum - cedge
  elseif 2 * (n - nexp) <= sw_budget then
    -- Half the budget at most, so that the other half trims it: an older version's log always converges.
    sw_budget = sw_budget - (n - nexp)
    lives = redis.call('ZRANGEBYSCORE', log, '(' .. edges, '+inf', 'WITHSCORES')
    live = 0
    for i = 1, #lives, 2 do live = live + sw_cost(lives[i]) end
  else
    live = total - nexp   -- at most: each expired hit cost at least 1 (exact when every cost is 1)
  end
  if live <= 0 then newest = nil
  elseif not newest then newest = tonumber(redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2]) or now end
  local need = c
  if mode == 'p' then need = 1 end
  local ok = 0
  if mode == 'h' and c == 0 then ok = 1
  elseif need <= L and live + need <= L then ok = 1 end
  if ok == 1 and mode == 'h' and c > 0 then
    if legacy and lives and nexp + #lives <= sw_budget then
      -- An older version's log, small enough to convert: its window's hits, renumbered, the expired ones dropped.
      sw_budget = sw_budget - nexp - #lives
      redis.call('DEL', log)
      legacy, nexp, cum, base = false, 0, 0, 0
      local add = {}
      for i = 1, #lives, 2 do
        cum = cum + sw_cost(lives[i])
        add[i], add[i + 1] = lives[i + 1], sw_member(cum, sw_cost(lives[i]))
      end
      if #add > 0 then redis.call('ZADD', log, unpack(add)) end
    end
    local k = math.min(nexp, sw_budget)
    if k > 0 then
      sw_budget = sw_budget - k
      if legacy then
        local gone = redis.call('ZRANGE', log, 0, k - 1)
        for i = 1, #gone do total = total - sw_cost(gone[i]) end
      elseif k == nexp then base = cedge
      else base = sw_cum(redis.call('ZRANGE', log, k - 1, k - 1)[1]) end
      redis.call('ZREMRANGEBYRANK', log, 0, k - 1)
    end
    if legacy then
      -- An older version's large log: kept in its format until it is small enough to convert.
      cum = cum + 1
      redis.call('ZADD', log, nows, string.format('%d:%d', cum, c))
      total = total + c
    else
      if cum + c >= 2 ^ 53 then error('sliding window: the log\'s running sum passed 2^53') end
      local when, cprev = nows, cum
      if newest and now < newest then
        -- Hits stamped after this one: renumbered, so cum keeps rising along the log.
        local can = math.floor(sw_budget / SW_REWRITE)
        local later = redis.call('ZRANGEBYSCORE', log, '(' .. nows, '+inf', 'WITHSCORES', 'LIMIT', 0, can + 1)
        if #later > 2 * can then
          if can == 0 then later, when = {}, string.format('%d', newest)
          else
            later = redis.call('ZRANGE', log, -can, -1, 'WITHSCORES')
            when = later[2]
          end
        end
        sw_budget = sw_budget - SW_REWRITE * #later / 2
        if #later > 0 then
          cprev = sw_cum(later[1]) - sw_cost(later[1])
          sw_renumber(log, later, c)
        end
      end
      redis.call('ZADD', log, when, sw_member(cprev + c, c))
      cum = cum + c
      if cum >= SW_REBASE and SW_REWRITE * redis.call('ZCARD', log) <= sw_budget then
        sw_budget = sw_budget - SW_REWRITE * redis.call('ZCARD', log)
        sw_renumber(log, redis.call('ZRANGE', log, 0, -1, 'WITHSCORES'), -base)
        cum, base = cum - base, 0
      end
      total = cum - base
    end
    live = live + c
    if newest == nil or now > newest then newest = now end
    -- Both keys live until the newest hit leaves the window, and a grace second.
    local ttl = newest - now + P + 1000
    local fmt = '%d %016d %d'
    if legacy then fmt = '%d %d %d' end
    redis.call('SET', meta, string.format(fmt, total, cum, newest), 'PX', ttl)
    redis.call('PEXPIRE', log, ttl)
  end
  local rem, retry, reset = 0, 0, 0
  if live > 0 then reset = newest + P - now end
  if ok == 1 then rem = math.max(0, L - live)   -- live may exceed L: hits of a larger limit (the limit was lowered)
  elseif need > L then retry = -1
  elseif lives then
    -- The wait until the oldest hits whose costs free enough leave the window.
    local want, freed = live + need - L, 0
    for i = 1, #lives, 2 do
      freed = freed + sw_cost(lives[i])
      if freed >= want then retry = tonumber(lives[i + 1]) + P - now break end
    end
  else
    -- The first hit whose cum reaches cedge + want: each hit costs at least 1, so it is at most want - 1 ranks past
    -- the edge (exactly there when every cost is 1, the first probe); a binary search by rank between.
    local want = live + need - L
    local target = cedge + want
    local lo, hi = nexp, math.min(nexp + want - 1, (n or redis.call('ZCARD', log)) - 1)
    local at = redis.call('ZRANGE', log, hi, hi, 'WITHSCORES')
    if not legacy then
      local mid = hi - 1
      while lo < hi do
        local e = redis.call('ZRANGE', log, mid, mid, 'WITHSCORES')
        if sw_cum(e[1]) >= target then hi, at = mid, e else lo = mid + 1 end
        mid = math.floor((lo + hi) / 2)
      end
    end
    retry = tonumber(at[2]) + P - now
  end
  return ok, live, rem, retry, reset
end
