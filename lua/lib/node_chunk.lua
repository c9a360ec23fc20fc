-- A batch chunk whose ids lie in several slots of one cluster node (Redis 7 and later, the script's shebang
-- declaring allow-cross-slot-keys): the keys travel in ARGV, since Redis refuses declared KEYS of several slots
-- (CROSSSLOT) with or without the flag. ARGV: the number of keys nk, the keys, the number of probes np, one key per
-- slot of the chunk that no call ever writes (an id's key base), then the batch script's own ARGV.
-- Before anything is written, each probe is read: Redis fails the read of a key whose slot this node does not
-- serve, or serves but is migrating (the probe is missing) or importing, so a chunk a resharding touches runs
-- nothing and answers HAMMERSLOTS; the client sends its requests again slot by slot. A script runs atomically, so
-- no slot changes hands between the probes and the writes.
local nk = tonumber(ARGV[1])
local np = tonumber(ARGV[nk + 2])
for p = nk + 3, nk + 2 + np do
  if type(redis.pcall('EXISTS', ARGV[p])) ~= 'number' then
    return redis.error_reply('HAMMERSLOTS a slot of this chunk is not served here, or is migrating: nothing ran')
  end
end
local KEYS = {unpack(ARGV, 2, nk + 1)}
local ARGV = {unpack(ARGV, nk + 3 + np)}
