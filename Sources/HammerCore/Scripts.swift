// Lua scripts run by EVALSHA: each call is one atomic step and one round trip.
// Numbers that may exceed 2^53 (counts, caller timestamps) travel and are stored as strings, never as Lua numbers.

public struct Script: Sendable {
    public let source: [UInt8]
    public let sha: [UInt8]
    public init(_ text: String) {
        source = Array(text.utf8)
        sha = Array(SHA1.hex(source).utf8)
    }
}

public enum Scripts {
    /// count_hit: KEYS[1] bucket key, KEYS[2] the id's index.
    /// ARGV[1] increment, ARGV[2] now_ms, ARGV[3] TTL in ms, ARGV[4] bucket number.
    /// Returns the new count as a bulk string (exact for any int64).
    public static let countHit = Script("""
    local k, idx, ttl = KEYS[1], KEYS[2], tonumber(ARGV[3])
    redis.call('HINCRBY', k, 'count', ARGV[1])
    local fresh = redis.call('HSETNX', k, 'created', ARGV[2])
    redis.call('HSET', k, 'updated', ARGV[2])
    redis.call('PEXPIRE', k, ttl)
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if fresh == 1 then redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. now) end
    redis.call('ZADD', idx, now + ttl, ARGV[4])
    if redis.call('PTTL', idx) < ttl then redis.call('PEXPIRE', idx, ttl) end
    return redis.call('HGET', k, 'count')
    """)

    /// delete_buckets: KEYS[1] the id's index. ARGV[1] prefix + id + ":", ARGV[2...] state suffixes.
    /// Deletes the buckets named by the index and the id's limiter state; returns how many keys it deleted.
    public static let deleteBuckets = Script("""
    local base = ARGV[1]
    local n = 0
    local members = redis.call('ZRANGE', KEYS[1], 0, -1)
    local batch = {}
    for i = 1, #members do
      batch[#batch + 1] = base .. members[i]
      if #batch == 256 then n = n + redis.call('DEL', unpack(batch)); batch = {} end
    end
    if #batch > 0 then n = n + redis.call('DEL', unpack(batch)) end
    for i = 2, #ARGV do n = n + redis.call('DEL', base .. ARGV[i]) end
    redis.call('DEL', KEYS[1])
    return n
    """)
}
