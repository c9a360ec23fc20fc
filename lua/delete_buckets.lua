-- delete_buckets, a page of the id's index a call: the buckets and states of limits of their own (hammer_hit_all)
-- it names, then, once the index is empty, the id's state of the other algorithms. KEYS[1] the id's index, KEYS[2]
-- to KEYS[ARGV[2] - 1] the state keys (sw, swm, tb, lb, gcra, swc), then the keys of the index's first ARGV[3]
-- members as the caller read them just before (ZRANGE 0 ARGV[3]-1): those of them that are bucket numbers or own
-- states (the key base and the member). ARGV[1] the id's key base (prefix .. id .. ':').
-- When that page still names only keys among KEYS, deletes them, removes the page from the index and returns
-- {keys deleted, members left in the index}; once none are left, the state keys are deleted (and counted) too.
-- Otherwise (a bucket was made in between) deletes nothing and returns {-1, 0}, and the caller reads again.
-- A call's work is the page's (the caller sends at most 1000): an index of any size takes as many calls, and
-- UNLINK frees a large sliding-window log outside the script.
--   redis-cli --eval delete_buckets.lua Hammer:Redis:a:index Hammer:Redis:a:sw Hammer:Redis:a:swm \
--     Hammer:Redis:a:tb Hammer:Redis:a:lb Hammer:Redis:a:gcra Hammer:Redis:a:swc Hammer:Redis:a:7 \
--     Hammer:Redis:a:tb.10.1000.20 , Hammer:Redis:a: 8 1000
local first = tonumber(ARGV[2])
local declared = {}
for i = first, #KEYS do declared[KEYS[i]] = true end
local page = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
-- A state of a limit of its own in hammer_hit_all (Keys.ownSuffix): a state word, then three numbers of 1 to 19
-- digits, '.' before each; or a fixed window's own bucket: fw, then four.
local words = {sw = true, swm = true, tb = true, lb = true, gcra = true, swc = true}
local function own(m)
  local w, a, b, c = string.match(m, '^(%a+)%.(%d+)%.(%d+)%.(%d+)$')
  if w == nil then
    local d
    w, a, b, c, d = string.match(m, '^(fw)%.(%d+)%.(%d+)%.(%d+)%.(%d+)$')
    if w == nil or #d > 19 then return false end
  elseif not words[w] then return false end
  return #a <= 19 and #b <= 19 and #c <= 19
end
for i = 1, #page do
  -- Only bucket numbers and own states name keys of the id: anything else another client wrote in the index could
  -- name another id's key.
  if (string.match(page[i], '^%-?%d+$') or own(page[i])) and not declared[ARGV[1] .. page[i]] then return {-1, 0} end
end
local n = 0
if #KEYS >= first then n = redis.call('UNLINK', unpack(KEYS, first, #KEYS)) end
if #page > 0 then redis.call('ZREM', KEYS[1], unpack(page)) end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then n = n + redis.call('UNLINK', unpack(KEYS, 2, first - 1)) end
return {n, left}
