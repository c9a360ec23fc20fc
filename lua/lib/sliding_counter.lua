-- The sliding-window counter (Cloudflare's approximation; `limits`' SlidingWindowCounterRateLimiter): two fixed
-- windows of P ms, the previous one weighted by its overlap with the sliding window. key is the id's hash of
-- counters, one field a period (the decimal P) holding "<window number> <hits in it> <hits in the window before>".
-- In units of 1/P hit, W = prev * (P - e) + cur * P at e ms into the window, and c hits pass when
-- W + c * P <= L * P: exact in doubles, as L * P <= 2^52 (checked by the caller) and both counts are held to L.
-- Written only when an allowed hit changes it; the hash lives until its longest-lived field weighs nothing, and a
-- grace second. mode: h hit, p peek. Returns allowed, count, remaining, retry_after_ms, reset_after_ms.
local function counter_pass_offset(L, P, cur, prev, e, need)
  -- The least offset from this window's start at which need hits pass (the weighted count never rises with time):
  -- in this window as prev's weight falls, else in the next (cur becomes prev), else when nothing weighs.
  local R = L - cur - need
  if R >= 0 then
    if prev == 0 then return e end
    local x = P - idiv(R * P, prev)
    if x < P then return math.max(x, e) end
  end
  if cur == 0 then return P end
  local x = P - idiv((L - need) * P, cur)
  if x < P then return P + math.max(x, 0) end
  return 2 * P
end

local function sliding_counter(key, _, _, mode, L, P, _, c, now, _)
  local field = string.format('%d', P)
  local at, cur, prev = now, 0, 0
  local v = redis.call('HGET', key, field)
  if v then
    local a, b, d = string.match(v, '^(%d+) (%d+) (%d+)$')
    local sw = tonumber(a)
    -- A window beyond any valid time is another client's garbage: no state.
    if sw and sw <= idiv(140737488355328, P) + 1 then
      -- The stored window is ahead (the caller's clock stepped back): decide at that window's start.
      if sw > idiv(now, P) then at = sw * P end
      local w = idiv(at, P)
      if sw == w then cur, prev = tonumber(b), tonumber(d)
      elseif sw == w - 1 then prev = tonumber(b) end
    end
  end
  cur = math.min(math.max(0, cur), L)
  prev = math.min(math.max(0, prev), L)
  local w = idiv(at, P)
  local e = at - w * P
  local W = prev * (P - e) + cur * P
  local need = c
  if mode == 'p' then need = 1 end
  local ok, Da, retry = 0, W, 0
  if mode == 'h' and c > L then retry = -1
  elseif mode == 'h' and c == 0 then ok = 1
  elseif W <= (L - need) * P then
    ok = 1
    if mode == 'h' then
      Da = W + need * P
      cur = cur + need
      redis.call('HSET', key, field, string.format('%d %d %d', w, cur, prev))
      -- The field weighs something until the end of the next window.
      local ttl = (w + 2) * P - now + 1000
      if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
    end
  else
    retry = w * P + counter_pass_offset(L, P, cur, prev, e, need) - now
  end
  local reset = 0
  if cur > 0 then reset = (w + 2) * P - now elseif prev > 0 then reset = (w + 1) * P - now end
  local rem = 0
  if ok == 1 then rem = math.max(0, idiv(L * P - Da, P)) end
  return ok, cdiv(Da, P), rem, retry, reset
end
