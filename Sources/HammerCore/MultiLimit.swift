// Several limits of one id, one atomic decision (hammer_hit_all): all pass and all are charged, or none is. The
// set of limits (duplicates folded; limits of one algorithm given states of their own; two fixed windows that would
// share a bucket refused), and the combination of their decisions, which lua/decide_all.lua runs in Redis and the
// local fallback and memory:// run on the models.

public enum MultiLimit {
    /// HAMMER_MAX_LIMITS: limits per call.
    public static let maxLimits = 16

    /// The distinct limits of a call, in the order of their first appearance, and where each first appears.
    public struct LimitSet: Hashable, Sendable {
        public let unique: [Limit]
        public let firstIndex: [Int]
        public init(unique: [Limit], firstIndex: [Int]) {
            self.unique = unique
            self.firstIndex = firstIndex
        }
    }

    /// Identical limits share their state, so a repeated one is decided once. Limits that decide alike are
    /// identical: the same algorithm, limit, period and capacity (a window's burst means nothing; a bucket's burst
    /// 0 is its limit).
    public static func fold(_ lims: [Limit]) -> LimitSet {
        var unique: [Limit] = []
        var first: [Int] = []
        for (i, l) in lims.enumerated() where !unique.contains(where: { same($0, l) }) {
            unique.append(l)
            first.append(i)
        }
        return LimitSet(unique: unique, firstIndex: first)
    }

    @inline(__always) static func same(_ a: Limit, _ b: Limit) -> Bool {
        a.algorithm == b.algorithm && a.limit == b.limit && a.periodMs == b.periodMs && a.capacity == b.capacity
    }

    /// Which limits of the set keep a state of their own (Keys.ownSuffix), named by their parameters, instead of
    /// the id's state of their algorithm that hammer_hit uses: those whose plain state another limit of the set
    /// would share (two sliding windows, token buckets, leaky buckets or GCRAs; two sliding counters or two fixed
    /// windows of one period: the fixed windows then have buckets of their own instead of Hammer's). A rule on the
    /// set, not its order.
    public static func ownStates(_ set: LimitSet) -> [Bool] {
        var users: [State: Int] = [:]
        let states = set.unique.map { state($0, now: nil) }
        for s in states { users[s, default: 0] += 1 }
        return states.map { users[$0]! > 1 }
    }

    /// The state a limit keeps for an id (Keys: one per algorithm, per window for the fixed window, per period for
    /// the sliding counter). With Redis's clock (now nil) a fixed window's bucket is known in the script only,
    /// which refuses two that meet there.
    public enum State: Hashable, Sendable {
        case bucket(Int64), bucketOfPeriod(Int64), log, tokenBucket, leakyBucket, gcra, counter(Int64)
    }

    public static func state(_ l: Limit, now: Int64?) -> State {
        switch l.algorithm {
        case .fixedWindow:
            if let now { return .bucket(idiv(now, l.periodMs)) }
            return .bucketOfPeriod(l.periodMs)
        case .slidingWindow: return .log
        case .tokenBucket: return .tokenBucket
        case .leakyBucket: return .leakyBucket
        case .gcra: return .gcra
        case .slidingCounter: return .counter(l.periodMs)
        }
    }

    /// Two fixed windows of one call, of different periods, on Hammer's buckets, whose windows fall in one bucket
    /// now (periods so close that their window numbers meet): each would see the other's hits, so the call is
    /// refused, naming them (indices in the caller's array). Nothing else conflicts (ownStates).
    public static func conflict(_ set: LimitSet, now: Int64?) -> Failure? {
        var seen: [State: Int] = [:]
        let own = ownStates(set)
        for (k, l) in set.unique.enumerated() where l.algorithm == .fixedWindow && !own[k] {
            let s = state(l, now: now)
            if let j = seen[s] {
                return Failure(.invalid, "lims[\(set.firstIndex[j])] and lims[\(set.firstIndex[k])] would share one "
                               + "state of the id (\(name(l.algorithm))\(detail(s))): use another algorithm or period "
                               + "for one, or another id")
            }
            seen[s] = k
        }
        return nil
    }

    static func name(_ a: Algorithm) -> String {
        switch a {
        case .fixedWindow: return "the fixed window's bucket"
        case .slidingWindow: return "one sliding window log"
        case .tokenBucket: return "one token bucket"
        case .leakyBucket: return "one leaky bucket"
        case .gcra: return "one GCRA state"
        case .slidingCounter: return "one sliding counter per period"
        }
    }

    static func detail(_ s: State) -> String {
        switch s {
        case let .bucket(w): return " \(w)"
        case let .bucketOfPeriod(p), let .counter(p): return ", period_ms \(p)"
        default: return ""
        }
    }

    /// The decision of the limits `lims` for a hit of `cost` (or a unit peek), given `one(i, mode, cost)`, limit
    /// i's own decision on its state (a peek and a denied hit change nothing; an allowed hit charges it). Every
    /// limit is peeked; a cost passes a limit when it is at most that peek's remaining (the most unit hits that pass
    /// now, for every algorithm) and its capacity (remaining may exceed it on state another client wrote). When all
    /// pass, each is hit; otherwise only those it does not pass are hit (they deny, changing nothing) for their
    /// waits, and none is charged.
    public static func decide(_ lims: [Limit], mode: Mode, cost: Int64,
                              _ one: (Int, Mode, Int64) -> Decision) -> Decision {
        let n = lims.count
        var d = (0..<n).map { one($0, .peek, 1) }
        var ok = d.map { $0.allowed }
        if mode != .peek {
            ok = (0..<n).map { cost == 0 || (cost <= d[$0].remaining && cost <= lims[$0].capacity) }
            if ok.allSatisfy({ $0 }) {
                d = (0..<n).map { one($0, mode, cost) }
            } else {
                for i in 0..<n where !ok[i] { d[i] = one(i, mode, cost) }
            }
        }
        return combine(d, ok)
    }

    /// The most restrictive outcome: allowed when every limit passes, with the least remaining (its limit decided);
    /// else denied, with the longest wait of those that deny (never, -1, the longest); the longest reset either way.
    /// Ties go to the first.
    public static func combine(_ d: [Decision], _ ok: [Bool]) -> Decision {
        var reset: Int64 = 0
        for x in d { reset = max(reset, x.resetAfterMs) }
        var by = -1
        if ok.allSatisfy({ $0 }) {
            for i in d.indices where by < 0 || d[i].remaining < d[by].remaining { by = i }
            return Decision(allowed: true, count: d[by].count, limit: d[by].limit, remaining: d[by].remaining,
                            retryAfterMs: 0, resetAfterMs: reset, decidedBy: by)
        }
        for i in d.indices where !ok[i] && (by < 0 || later(d[i].retryAfterMs, than: d[by].retryAfterMs)) { by = i }
        return Decision(allowed: false, count: d[by].count, limit: d[by].limit, remaining: 0,
                        retryAfterMs: d[by].retryAfterMs, resetAfterMs: reset, decidedBy: by)
    }

    /// Is wait a longer than wait b, -1 (never) being the longest?
    @inline(__always) public static func later(_ a: Int64, than b: Int64) -> Bool {
        if b == -1 { return false }
        return a == -1 || a > b
    }
}
