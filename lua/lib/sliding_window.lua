-- The sliding window: a log of the hits (log, a sorted set: member "<seq>:<cost>", score = time) and its meta
-- (a string "<total> <seq> <newest>": the costs in the log, the last sequence number, the newest hit's time, so
-- that no read of the log is needed for it; state written before it had two fields). mode: h hit, p peek.
-- Returns allowed, count, remaining, retry_after_ms and reset_after_ms, the wait until the window holds no hits.
local function sliding_window(log, meta, _, mode, L, P, _, c, now, nows)
  local total, seq, newest = 0, 0, nil
  local m = redis.call('GET', meta)
  if m then
    local a, b, t = string.match(m, '^(%d+) (%d+) ?(%d*)$')
    total, seq, newest = tonumber(a) or 0, tonumber(b) or 0, tonumber(t)
  end
  local edge = now - P
  local edges = string.format('%d', edge)
  local gone = redis.call('ZRANGEBYSCORE', log, '-inf', edges)
  local expired = 0
  for i = 1, #gone do expired = expired + tonumber(string.match(gone[i], ':(%d+)$')) end
  local live = total - expired
  if live <= 0 then newest = nil
  elseif not newest then newest = tonumber(redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')[2]) or now end
  local need = c
  if mode == 'p' then need = 1 end
  local ok = 0
  if mode == 'h' and c == 0 then ok = 1
  elseif need <= L and live + need <= L then ok = 1 end
  if ok == 1 and mode == 'h' and c > 0 then
    if #gone > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', edges) end
    seq = seq + 1
    redis.call('ZADD', log, nows, string.format('%d:%d', seq, c))
    live = live + c
    if newest == nil or now > newest then newest = now end
    -- Both keys live until the newest hit leaves the window, and a grace second.
    local ttl = newest - now + P + 1000
    redis.call('SET', meta, string.format('%d %d %d', live, seq, newest), 'PX', ttl)
    redis.call('PEXPIRE', log, ttl)
  end
  local rem, retry, reset = 0, 0, 0
  if live > 0 then reset = newest + P - now end
  if ok == 1 then rem = math.max(0, L - live)   -- live may exceed L: hits of a larger limit (the limit was lowered)
  elseif need > L then retry = -1
  else
    -- The wait until the oldest hits whose costs free enough leave the window.
    local want = live + need - L
    local freed, off = 0, 0
    while retry == 0 do
      local page = redis.call('ZRANGEBYSCORE', log, '(' .. edges, '+inf', 'WITHSCORES', 'LIMIT', off, 256)
      if #page == 0 then retry = -1 break end
      for i = 1, #page, 2 do
        freed = freed + tonumber(string.match(page[i], ':(%d+)$'))
        if freed >= want then retry = tonumber(page[i + 1]) + P - now break end
      end
      off = off + 256
    end
  end
  return ok, live, rem, retry, reset
end
