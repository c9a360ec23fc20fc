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
    // Each redis.call costs about a microsecond in Redis 7, and so does each closure a script creates on every run:
    // the scripts of single calls are straight-line code; batches wrap the same text in functions, whose cost is
    // shared by the requests of a chunk.

    /// The id's index, a sorted set of its bucket numbers (score = the number, so the oldest come first), on a new
    /// bucket (variables idx, base, member, ttl): the bucket is added; a new index gets the bucket's TTL and nothing
    /// else to do; an index that exists drops up to four of its oldest entries whose buckets have expired (so it
    /// stays the size of the id's live buckets) and lives as long as its newest bucket.
    static let indexSnippet = """
      redis.call('ZADD', idx, member, member)
      local left_i = redis.call('PTTL', idx)
      if left_i < 0 then redis.call('PEXPIRE', idx, ttl)
      else
        local old = redis.call('ZRANGE', idx, 0, 3)
        for i = 1, #old do
          if old[i] ~= member and redis.call('EXISTS', base .. old[i]) == 0 then redis.call('ZREM', idx, old[i]) end
        end
        if left_i < ttl then redis.call('PEXPIRE', idx, ttl) end
      end
    """

    /// The seed's bucket (variables k = base .. member, idx, base, member, incr, nows, ttl; sets n): adds `incr` to
    /// its count and stamps `updated`; a new bucket also gets `created`, its TTL and its index entry, set once at its
    /// first hit as the seed does, so a hit on an existing bucket is two commands. n is the new count: a number, or
    /// the exact text beyond 2^53.
    /// `prelude` runs first on a new bucket (countHit sets idx, ttl, member and base there, as an existing bucket
    /// needs none of them).
    static func bucketHit(prelude: String = "") -> String {
        "n = redis.call('HINCRBY', k, 'count', incr)\n" + afterIncrement(prelude: prelude)
    }

    /// bucketHit after its HINCRBY (n is the new count).
    static func afterIncrement(prelude: String = "") -> String { """
    if n == tonumber(incr) and redis.call('HSETNX', k, 'created', nows) == 1 then
      \(prelude)
      redis.call('PEXPIRE', k, ttl)
    \(indexSnippet)
    end
    redis.call('HSET', k, 'updated', nows)
    if n >= 9007199254740992 then n = redis.call('HGET', k, 'count') end
    """ }

    /// count_hit: KEYS[1] bucket key (base .. bucket), KEYS[2] the id's index.
    /// ARGV[1] increment, ARGV[2] now_ms, ARGV[3] TTL in ms, ARGV[4] bucket number. Returns the new count.
    public static let countHit = Script("""
    local k, incr, nows = KEYS[1], ARGV[1], ARGV[2]
    local n
    \(bucketHit(prelude: """
    local idx, ttl, member = KEYS[2], tonumber(ARGV[3]), ARGV[4]
      local base = string.sub(k, 1, #k - #member)
    """))
    return n
    """)

    /// Fields per request of countHitMany (after ARGV[1], the TTL shared by the batch).
    public static let countHitManyFields = 4

    /// Many count_hits in one script (a batch): no KEYS; ARGV[1] is the TTL in ms, then 4 fields a request: base,
    /// bucket number, increment, now_ms. Returns one element a request: its count, or an error reply of its own.
    public static let countHitMany = Script(errLua + """
    local ttl = tonumber(ARGV[1])
    local function count_hit(base, member, incr, nows)
      local k, n = base .. member, nil
    \(bucketHit(prelude: "local idx = base .. 'index'"))
      return n
    end
    local out = {}
    for o = 1, #ARGV - 4, 4 do
      local ok, r = pcall(count_hit, ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4])
      if ok then out[#out + 1] = r else out[#out + 1] = err_of(r) end
    end
    return out
    """)

    /// A failed request of a batch as an error reply of its own.
    static let errLua = """
    local function err_of(e)
      if type(e) == 'table' and e.err then return e end
      return {err = 'ERR ' .. tostring(e)}
    end

    """

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
