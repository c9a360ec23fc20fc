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
    /// Lua shared by the scripts that write fixed-window buckets: the id's index, a sorted set of its bucket numbers
    /// (score = the number, so the oldest come first). A new bucket is added; a new index gets the bucket's TTL and
    /// nothing else to do; an index that exists drops up to four of its oldest entries whose buckets have expired
    /// (so it stays the size of the id's live buckets) and is kept alive as long as its newest bucket.
    public static let indexLua = """
    local function index_bucket(idx, base, member, ttl)
      redis.call('ZADD', idx, member, member)
      local left = redis.call('PTTL', idx)
      if left < 0 then redis.call('PEXPIRE', idx, ttl) return end
      local old = redis.call('ZRANGE', idx, 0, 3)
      for i = 1, #old do
        if old[i] ~= member and redis.call('EXISTS', base .. old[i]) == 0 then redis.call('ZREM', idx, old[i]) end
      end
      if left < ttl then redis.call('PEXPIRE', idx, ttl) end
    end

    """

    /// The seed's bucket: adds `incr` to hash `k` (= base .. member) and stamps `updated`. A new bucket also gets
    /// `created`, its TTL and its index entry, as the seed sets them once, at the bucket's first hit; so a hit on an
    /// existing bucket is two commands. Returns the new count: an integer, or a bulk string beyond 2^53.
    static let bucketHitLua = """
    local function hit_bucket(k, idx, base, member, incr, nows, ttl)
      local n = redis.call('HINCRBY', k, 'count', incr)
      if n == tonumber(incr) and redis.call('HSETNX', k, 'created', nows) == 1 then
        redis.call('PEXPIRE', k, ttl)
        index_bucket(idx, base, member, ttl)
      end
      redis.call('HSET', k, 'updated', nows)
      if n < 9007199254740992 then return n end
      return redis.call('HGET', k, 'count')
    end

    """

    /// count_hit as a function of (bucket key, index key, increment, now as text, TTL ms, bucket number as text).
    static let countHitLua = bucketHitLua + """
    local function count_hit(k, idx, incr, nows, ttl, member)
      return hit_bucket(k, idx, string.sub(k, 1, #k - #member), member, incr, nows, ttl)
    end

    """

    /// count_hit: KEYS[1] bucket key (base .. bucket), KEYS[2] the id's index.
    /// ARGV[1] increment, ARGV[2] now_ms, ARGV[3] TTL in ms, ARGV[4] bucket number.
    public static let countHit = Script(commonLua + countHitLua + """
    return count_hit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
    """)

    /// Fields per request of countHitMany.
    public static let countHitManyFields = 5

    /// Many count_hits in one script (a batch): no KEYS; ARGV holds 5 fields a request: base, bucket number,
    /// increment, now_ms, TTL. Returns one element a request: its count, or an error reply of its own.
    public static let countHitMany = Script(commonLua + countHitLua + """
    local out = {}
    for o = 0, #ARGV - 5, 5 do
      local base, member = ARGV[o + 1], ARGV[o + 2]
      local ok, r = pcall(count_hit, base .. member, base .. 'index', ARGV[o + 3], ARGV[o + 4], tonumber(ARGV[o + 5]),
        member)
      if ok then out[#out + 1] = r else out[#out + 1] = err_of(r) end
    end
    return out
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
