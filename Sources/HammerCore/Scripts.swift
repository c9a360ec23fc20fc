// The Lua scripts run by EVALSHA: each call is one atomic step and one round trip. Their text is lua/*.lua (see
// lua/generate.py), here as Lua.generated.swift; every key a script touches is one of its KEYS (except in the
// cluster batch variants, lua/*_node.lua, which take keys of several slots as arguments).
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

    /// The batch scripts for a cluster chunk of several slots of one node (Redis 7+, lua/*_node.lua): no KEYS;
    /// ARGV the keys' number and the keys, the probes' number and one probe key per slot, then the script's own
    /// ARGV. Answers as the script does, or with the error HAMMERSLOTS when nothing ran (a slot not served there,
    /// or migrating).
    public static let countHitManyNode = Script(LuaSource.countHitsNode)
    public static let limiterManyNode = Script(LuaSource.decideManyNode)
    /// The error code of a node chunk that ran nothing.
    public static let nodeChunkRefused: [UInt8] = Array("HAMMERSLOTS ".utf8)
}

/// What a cluster node's INFO says of the scripts it runs.
public enum ServerInfo {
    /// The major version in an `INFO server` reply (redis_version, which Valkey reports too, as the Redis version
    /// it is compatible with), or nil.
    public static func majorVersion(_ info: [UInt8]) -> Int? {
        let key = Array("redis_version:".utf8)
        var i = 0
        while i + key.count <= info.count {
            let lineStart = i == 0 || info[i - 1] == 10
            if lineStart && info[i..<(i + key.count)].elementsEqual(key) {
                var j = i + key.count
                var v = 0
                var digits = 0
                while j < info.count, info[j] >= 48, info[j] <= 57, digits < 6 {
                    v = v * 10 + Int(info[j] - 48)
                    j += 1
                    digits += 1
                }
                return digits > 0 && j < info.count && info[j] == 46 ? v : nil
            }
            i += 1
        }
        return nil
    }

    /// Scripts may declare flags in a shebang (`#!lua flags=allow-cross-slot-keys`) from Redis 7.0 on.
    public static func runsScriptFlags(_ info: [UInt8]) -> Bool { (majorVersion(info) ?? 0) >= 7 }
}
