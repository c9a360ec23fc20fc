#!lua flags=allow-cross-slot-keys
-- count_hits.lua for a cluster chunk of several slots of one node (lib/node_chunk.lua says how its ARGV holds the
-- keys and the probes); returns what count_hits.lua returns, or HAMMERSLOTS when nothing ran.
--   redis-cli --eval count_hits_node.lua , 2 Hammer:Redis:{a}:7 Hammer:Redis:{a}:index 1 Hammer:Redis:{a}: \
--     60000 7 1 1700000000000
--#include lib/node_chunk.lua
--#include count_hits.lua
