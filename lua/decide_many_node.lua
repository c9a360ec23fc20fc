#!lua flags=allow-cross-slot-keys
-- decide_many.lua for a cluster chunk of several slots of one node (lib/node_chunk.lua says how its ARGV holds the
-- keys and the probes); returns what decide_many.lua returns, or HAMMERSLOTS when nothing ran.
--   redis-cli --eval decide_many_node.lua , 1 Hammer:Redis:{a}:tb 1 Hammer:Redis:{a}: \
--     1 2 h 10 60000 10 1 1 1700000000000
--#include lib/node_chunk.lua
--#include decide_many.lua
