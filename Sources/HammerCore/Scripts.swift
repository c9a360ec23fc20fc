// The Lua scripts run by EVALSHA: each call is one atomic step and one round trip. Their text is lua/*.lua (see
// lua/generate.py), here as Lua.generated.swift; every key a script touches is one of its KEYS.
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
    /// count_hit (lua/count_hit.lua): KEYS bucket, index; ARGV increment, now_ms, TTL ms, bucket number.
    public static let countHit = Script(LuaSource.countHit)
    /// check_rate at a known time (lua/check_rate.lua): count_hit's arguments, the TTL set at the first hit only.
    public static let checkRate = Script(LuaSource.checkRate)
    /// One decision (lua/<algorithm>.lua): KEYS as Keys.appendDecisionKeys gives them; ARGV algorithm, mode,
    /// limit, period_ms, capacity, cost, now_ms ('' = Redis's TIME).
    public static let fixedWindow = Script(LuaSource.fixedWindow)
    public static let slidingWindow = Script(LuaSource.slidingWindow)
    public static let bucket = Script(LuaSource.bucket)
    public static let gcra = Script(LuaSource.gcra)
    public static let slidingCounter = Script(LuaSource.slidingCounter)
    /// delete_buckets (lua/delete_buckets.lua): KEYS index, the state keys (Keys.stateSuffixes), the buckets read
    /// from the index; ARGV the id's key base and the first bucket's place in KEYS. Returns the keys deleted, or -1 when the index changed meanwhile.
    public static let deleteBuckets = Script(LuaSource.deleteBuckets)

    /// The script of an algorithm: one EVALSHA per decision, with no Lua of the other algorithms to load.
    public static func limiter(_ a: Algorithm) -> Script {
        switch a {
        case .fixedWindow: return fixedWindow
        case .slidingWindow: return slidingWindow
        case .tokenBucket, .leakyBucket: return bucket
        case .gcra: return gcra
        case .slidingCounter: return slidingCounter
        }
    }

    /// Many count_hits (lua/count_hits.lua): KEYS two a request (bucket, index); ARGV expiry_ms, then
    /// countHitManyFields a request (bucket number, increment, now_ms). One element a request.
    public static let countHitMany = Script(LuaSource.countHits)
    public static let countHitManyFields = 3
    public static let countHitManyKeys = 2

    /// Many decisions (lua/decide_many.lua): KEYS each request's, in order; ARGV the number of distinct limiters,
    /// limiterManySpecFields a limiter (algorithm, mode, limit, period_ms, capacity), then limiterManyFields a
    /// request (its limiter's number from 1, cost, now_ms or ''). Five elements a request, in one flat array.
    public static let limiterMany = Script(LuaSource.decideMany)
    /// Several limits of an id, one atomic decision a request (lua/decide_all.lua): KEYS every request's limits'
    /// keys; ARGV the mode, then a request's n, cost, now_ms or '', and four fields a limit (algorithm, limit,
    /// period_ms, capacity). Six elements a request: the decision and the deciding limit's place.
    public static let decideAll = Script(LuaSource.decideAll)
    public static let limiterManySpecFields = 5
    public static let limiterManyFields = 3
}
