-- Redis's clock in ms: the time of callers that pass none (clock=redis), and the clock TTLs run on.
local function redis_now()
  local tm = redis.call('TIME')
  return tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
end
