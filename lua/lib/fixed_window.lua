-- The fixed window: Hammer's bucket of the window holding now (key), shared with count_hit and check_rate, and the
-- id's index (idx). mode: h hit, p peek, c check_rate (the hit is counted even when denied), i inspect (returns the
-- bucket's count, created, updated and the ms to the window's end). Otherwise returns allowed, count, remaining,
-- retry_after_ms, reset_after_ms. A denied hit leaves Redis as it was. own: the algorithm (a number) for Hammer's
-- bucket, or for a bucket of the limit's own in hammer_hit_all (fw.<limit>.<period_ms>.<capacity>.<window>) its
-- index member, the key's suffix.
local function fixed_window(key, idx, own, mode, L, P, _, c, now, nows)
  local w = idiv(now, P)
  local left = (w + 1) * P - now
  if mode == 'i' then
    local v = redis.call('HMGET', key, 'count', 'created', 'updated')
    return v[1] or '0', v[2] or '0', v[3] or '0', left
  end
  local cur, add = 0, 0
  local count
  if mode == 'c' or (mode == 'h' and c > 0 and c <= L) then
    -- The hit is added, and taken back when over the limit: an allowed hit, the common case, is then two commands.
    local n = redis.call('HINCRBY', key, 'count', c)
    if mode == 'h' and n > L then
      redis.call('HINCRBY', key, 'count', -c)
      cur = n - c
      count = cur
      if cur >= 9007199254740992 then count = redis.call('HGET', key, 'count') end
    else
      add = c
      -- The bucket lives to the window's end and a grace second, so callers whose clocks differ a little agree.
      local member = w
      if type(own) == 'string' then member = own end
      count = stamp(key, idx, n, c, nows, left + 1000, member, false)
    end
  else
    cur = tonumber(redis.call('HGET', key, 'count') or '0')
    count = cur
  end
  local num = tonumber(count)
  local need, ok = c, 0
  if mode == 'p' then need = 1 end
  if mode == 'c' then
    if num <= L then ok = 1 end
  elseif mode == 'p' then
    if cur + 1 <= L then ok = 1 end
  elseif add > 0 or c == 0 then ok = 1 end
  local rem, retry, reset = 0, 0, 0
  if num > 0 then reset = left end
  if ok == 1 then
    if mode == 'p' then rem = math.max(0, L - cur) else rem = math.max(0, L - num) end
  elseif need > L then retry = -1
  else retry = left end
  return ok, count, rem, retry, reset
end
