// The state of one id as Redis would hold it (memory://), with the TTLs the scripts give each key, and each call
// of the API on it: Hammer's buckets (count_hit, check_rate and the fixed window share them), the sliding window's
// log, the token and leaky buckets and GCRA, decided by the models the tests check against the Lua scripts.
// Times: `now` is the caller's (decisions, created/updated), `mono` the handle's monotonic clock in ms (expiry).

/// Hammer's bucket: the hash {count, created, updated} and when it expires.
public struct MemoryBucket: Equatable, Sendable {
    public var count: Int64
    public var created: Int64
    public var updated: Int64
    public var expires: Int64
}

/// A meter or log and when it expires.
public struct Expiring<T: Sendable>: Sendable {
    public var value: T
    public var expires: Int64
}

public struct MemoryState: Sendable {
    public var buckets: [Int64: MemoryBucket] = [:]
    /// No bucket expires before this (a bound, so that a purge skips the buckets while none can have expired).
    var bucketsFirstExpiry = Int64.max
    public var sliding: Expiring<SlidingLog>? = nil
    public var token: Expiring<LimiterModel>? = nil
    public var leaky: Expiring<LimiterModel>? = nil
    public var gcra: Expiring<LimiterModel>? = nil
    /// The sliding counter's hash: a field (a model) per period, the whole hash one key with one TTL.
    public var counters: Expiring<[Int64: LimiterModel]>? = nil
    /// States of limits of their own (hammer_hit_all, MultiLimit.ownStates; Keys.ownSuffix in Redis): each held as
    /// a state of its own whose one slot is the limit's algorithm's (a fixed window's: its buckets).
    public var own: [OwnKey: MemoryState] = [:]

    /// What names a limit's state of its own: its algorithm and parameters (Keys.ownSuffix).
    public struct OwnKey: Hashable, Sendable {
        public var algorithm: Algorithm
        public var limit: Int64
        public var periodMs: Int64
        public var capacity: Int64
        public init(_ l: Limit) {
            algorithm = l.algorithm
            limit = l.limit
            periodMs = l.periodMs
            capacity = l.capacity
        }
    }

    public init() {}

    public var isEmpty: Bool {
        buckets.isEmpty && sliding == nil && token == nil && leaky == nil && gcra == nil && counters == nil
            && own.isEmpty
    }

    /// Drops what has expired at `mono`.
    public mutating func purge(_ mono: Int64) {
        if !own.isEmpty {
            for k in Array(own.keys) {
                own[k]!.purge(mono)
                if own[k]!.isEmpty { own[k] = nil }
            }
        }
        if let s = sliding, s.expires <= mono { sliding = nil }
        if let s = token, s.expires <= mono { token = nil }
        if let s = leaky, s.expires <= mono { leaky = nil }
        if let s = gcra, s.expires <= mono { gcra = nil }
        if let s = counters, s.expires <= mono { counters = nil }
        if bucketsFirstExpiry <= mono {
            buckets = buckets.filter { $0.value.expires > mono }
            bucketsFirstExpiry = buckets.values.map(\.expires).min() ?? Int64.max
        }
    }

    /// A live bucket.
    public func bucket(_ n: Int64, _ mono: Int64) -> MemoryBucket? {
        guard let b = buckets[n], b.expires > mono else { return nil }
        return b
    }

    private mutating func setExpiry(_ n: Int64, _ at: Int64) {
        buckets[n]?.expires = at
        bucketsFirstExpiry = min(bucketsFirstExpiry, at)
    }

    /// Hammer's count_hit (lua/lib/count_hit.lua and stamp.lua): adds `incr` to bucket n and returns the count.
    /// A new bucket gets created = updated = now and lives `life`; refresh (count_hit): an existing bucket's life
    /// is set again when what is left of it is outside ttl ... life (ttl + 1 s), so it lives ttl to ttl + 1 s after
    /// its latest hit; without refresh (check_rate, the fixed window) its TTL stays the first one.
    public mutating func countHit(_ n: Int64, incr: Int64, now: Int64, ttl: Int64, refresh: Bool,
                                  mono: Int64) -> Result<Int64, Failure> {
        let life = refresh ? ttl + 1000 : ttl
        guard var b = bucket(n, mono) else {
            buckets[n] = MemoryBucket(count: incr, created: now, updated: now, expires: mono + life)
            bucketsFirstExpiry = min(bucketsFirstExpiry, mono + life)
            return .success(incr)
        }
        let (sum, o) = b.count.addingReportingOverflow(incr)
        // Redis refuses the HINCRBY: nothing changes.
        if o { return .failure(Failure(.invalid, "the counter would overflow int64")) }
        b.count = sum
        b.updated = now
        buckets[n] = b
        if refresh {
            let left = b.expires - mono
            if left < ttl || left > life { setExpiry(n, mono + life) }
        }
        return .success(sum)
    }

    /// One decision of `lim` at `now`: the models of Algorithms.swift on this id's state, which changes as the
    /// script changes Redis (an allowed hit; a check_rate) with the TTL the script sets.
    public mutating func decide(_ lim: Limit, own isOwn: Bool = false, mode: Mode, cost c: Int64, now: Int64,
                                mono: Int64) -> Result<Decision, Failure> {
        if isOwn {
            // Taken out and put back: changed in place, never copied.
            let k = OwnKey(lim)
            var s = own.removeValue(forKey: k) ?? MemoryState()
            let d = s.decide(lim, mode: mode, cost: c, now: now, mono: mono)
            if !s.isEmpty { own[k] = s }
            return d
        }
        switch lim.algorithm {
        case .fixedWindow:
            let P = lim.periodMs
            let w = idiv(now, P)
            let left = (w + 1) * P - now
            let cur = bucket(w, mono)?.count ?? 0
            let (add, d) = LimiterModel.fixedWindow(cur: cur, lim, mode: mode, cost: c, now: now)
            if let add {
                if case let .failure(f) = countHit(w, incr: add, now: now, ttl: left + 1000, refresh: false,
                                                   mono: mono) {
                    return .failure(f)
                }
            }
            return .success(d)
        case .slidingWindow:
            let expires = sliding?.expires
            var log = sliding?.value ?? SlidingLog()
            sliding = nil   // the log moves out and back: changed in place, never copied
            let d = SlidingLog.decide(&log, L: lim.limit, P: lim.periodMs, mode: mode, cost: c, now: now)
            if mode == .hit && d.allowed && c > 0 {
                // Written by an allowed hit, with a TTL until its newest hit leaves the window and a second.
                sliding = Expiring(value: log, expires: mono + d.resetAfterMs + 1000)
            } else if let expires {
                sliding = Expiring(value: log, expires: expires)
            }
            return .success(d)
        case .tokenBucket:
            return .success(MemoryState.meter(&token, lim, mode: mode, cost: c, now: now, mono: mono))
        case .leakyBucket:
            return .success(MemoryState.meter(&leaky, lim, mode: mode, cost: c, now: now, mono: mono))
        case .gcra:
            return .success(MemoryState.meter(&gcra, lim, mode: mode, cost: c, now: now, mono: mono))
        case .slidingCounter:
            // lua/lib/sliding_counter.lua: an allowed hit of cost > 0 writes its period's field and makes the hash
            // live at least until that field weighs nothing (reset_after_ms) and a second: never shortened.
            let expires = counters?.expires
            var fields = counters?.value ?? [:]
            counters = nil
            var m = fields[lim.periodMs] ?? LimiterModel()
            let d = m.apply(lim, mode: mode, cost: c, now: now)
            if mode == .hit && d.allowed && c > 0 {
                fields[lim.periodMs] = m
                counters = Expiring(value: fields, expires: max(expires ?? 0, mono + d.resetAfterMs + 1000))
            } else if let expires {
                counters = Expiring(value: fields, expires: expires)
            }
            return .success(d)
        }
    }

    /// The buckets and GCRA (and an algorithm appended later, with a slot of its own): the script writes the state
    /// only when an allowed hit of cost > 0 changes it, with a TTL of the time it takes to drain (the decision's
    /// reset_after_ms) and a second; nothing else changes it.
    static func meter(_ slot: inout Expiring<LimiterModel>?, _ lim: Limit, mode: Mode, cost c: Int64, now: Int64,
                      mono: Int64) -> Decision {
        var m = slot?.value ?? LimiterModel()
        let d = m.apply(lim, mode: mode, cost: c, now: now)
        if mode == .hit && d.allowed && c > 0 { slot = Expiring(value: m, expires: mono + d.resetAfterMs + 1000) }
        return d
    }

    /// The keys delete_buckets deletes in Redis (buckets; the sliding window's log and meta are two).
    public func keyCount(_ mono: Int64) -> Int64 {
        var n = Int64(buckets.values.filter { $0.expires > mono }.count)
        if let s = sliding, s.expires > mono { n += 2 }
        for m in [token, leaky, gcra] { if let m, m.expires > mono { n += 1 } }
        if let m = counters, m.expires > mono { n += 1 }
        for s in own.values { n += s.keyCount(mono) }
        return n
    }
}

extension MemoryState {
    /// Each key Redis would hold and its contents (no TTLs), for tests that compare states before and after.
    public var snapshot: [String] {
        var out = buckets.keys.sorted().map { n in
            let b = buckets[n]!
            return "\(n)=\(b.count) \(b.created) \(b.updated)"
        }
        if let s = sliding { out.append("sw=\(s.value.entries.map { "\($0.time):\($0.cost)" })") }
        for (name, m) in [("tb", token), ("lb", leaky), ("gcra", gcra)] {
            if let m { out.append("\(name)=\(String(describing: m.value.u)) \(m.value.t) \(String(describing: m.value.tat)) \(m.value.f)") }
        }
        if let c = counters {
            for p in c.value.keys.sorted() {
                let m = c.value[p]!
                out.append("swc \(p)=\(String(describing: m.cw)) \(m.ccur) \(m.cprev)")
            }
        }
        for k in own.keys.sorted(by: { "\($0)" < "\($1)" }) {
            out += own[k]!.snapshot.map { "\(k.algorithm).\(k.limit).\(k.periodMs).\(k.capacity) " + $0 }
        }
        return out
    }
}
