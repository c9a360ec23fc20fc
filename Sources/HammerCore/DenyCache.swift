// The local deny cache (deny_cache=ENTRIES): what a decision from Redis implies about later hits of the same id and
// limit, and a bounded least-recently-used store of it. Pure: the library shards it, locks it and clocks it.
//
// A decision is kept only when it says exactly when one unit hit can pass again (T) and how every field of a later
// denial moves until then, so that a denial served from the cache is the decision Redis would give:
//   - fixed window: a count at or over the limit; T is the window's end (reset_after_ms), for every cost;
//   - sliding window, token bucket, leaky bucket, GCRA: a denied unit hit (a hit of cost 1, or a peek) with the
//     limiter exactly full (count = limit, or = capacity for the buckets): T = now + retry_after_ms, the count
//     stays until T (the oldest hit leaves, or the bucket drains a unit), retry and reset count down.
// A denial of a larger cost says nothing of cost 1, so it is not kept; a later hit of cost 2 .. capacity goes to
// Redis except on the fixed window (whose wait is the window's end for every cost), a cost above the capacity is
// answered with -1 as Redis would. Cost 0 always goes to Redis (it is allowed).

public struct DenyEntry: Equatable, Sendable {
    /// When one unit hit can pass again (the cache's clock, ms): denials are served while now < until.
    public var until: Int64
    /// When the limiter is fully reset (reset_after_ms counts down to it).
    public var resetAt: Int64
    public var count: Int64

    public init(until: Int64, resetAt: Int64, count: Int64) {
        self.until = until
        self.resetAt = resetAt
        self.count = count
    }

    /// Waits Redis may report that the cache keeps: any a valid limit produces (the buckets' are below 2^52 ms);
    /// beyond it a value from Redis is not trusted.
    public static let maxWaitMs: Int64 = 1 << 53

    /// What Redis's decision `d` for (lim, mode, cost) at `now` says of the hits that follow, or nil.
    public static func from(_ d: Decision, _ lim: Limit, mode: Mode, cost: Int64, now: Int64) -> DenyEntry? {
        guard mode != .check, !d.degraded, d.remaining == 0,
              d.retryAfterMs >= -1, d.retryAfterMs <= maxWaitMs, d.resetAfterMs > 0, d.resetAfterMs <= maxWaitMs,
              now >= 0, now <= Limit.maxNowMs else { return nil }
        switch lim.algorithm {
        case .fixedWindow:
            // The count stays at least the limit until the window ends (reset_after_ms when the count is not 0).
            guard d.count >= lim.limit, d.allowed || d.retryAfterMs == d.resetAfterMs || d.retryAfterMs == -1 else {
                return nil
            }
            return DenyEntry(until: now + d.resetAfterMs, resetAt: now + d.resetAfterMs, count: d.count)
        case .slidingWindow, .tokenBucket, .leakyBucket, .gcra:
            let unit = mode == .peek || cost == 1
            guard !d.allowed, unit, d.retryAfterMs > 0, d.count == lim.capacity,
                  d.resetAfterMs >= d.retryAfterMs else { return nil }
            return DenyEntry(until: now + d.retryAfterMs, resetAt: now + d.resetAfterMs, count: d.count)
        case .slidingCounter:
            // Its count (the previous window's weighted share) falls while the denial lasts: an entry could not
            // give the count Redis would, so these denials are not cached.
            return nil
        }
    }

    /// The denial Redis would give for (lim, mode, cost) at `now`, or nil when the entry has expired or does not
    /// know the answer exactly (then Redis is asked).
    public func answer(_ lim: Limit, mode: Mode, cost: Int64, now: Int64) -> Decision? {
        guard mode != .check, now < until else { return nil }
        let retry: Int64
        if mode == .peek || cost == 1 {
            retry = until - now
        } else if cost <= 0 {
            return nil
        } else if cost > lim.capacity {
            retry = -1
        } else if lim.algorithm == .fixedWindow {
            retry = until - now
        } else {
            return nil
        }
        return Decision(allowed: false, count: count, limit: lim.limit, remaining: 0, retryAfterMs: retry,
                        resetAfterMs: max(0, resetAt - now))
    }
}

/// The cache's key: an id and the whole limit (algorithm, limit, period, burst), so that a later call naming several
/// limits of one id can look each up.
public struct DenyKey: Hashable, Sendable {
    public var id: [UInt8]
    public var lim: Limit

    public init(id: [UInt8], lim: Limit) {
        self.id = id
        self.lim = lim
    }
}

/// One shard of the cache: at most `capacity` entries, the least recently used dropped first. Entries live in an
/// array linked in use order (no allocation per entry once the shard has filled); `byId` finds an id's entries, so
/// a reset clears them without a scan.
public struct DenyShard: Sendable {
    struct Slot: Sendable {
        var key: DenyKey
        var entry: DenyEntry
        var prev: Int32
        var next: Int32
    }

    public let capacity: Int
    private var slots: [Slot] = []
    private var free: [Int32] = []
    private var byId: [[UInt8]: [Int32]] = [:]
    private var head: Int32 = -1   // most recently used
    private var tail: Int32 = -1   // least recently used
    public private(set) var count = 0
    /// Denials served from this shard.
    public var hits: UInt64 = 0
    /// Bumped by every reset of an id in this shard: a decision asked of Redis before a reset is not stored after it.
    public private(set) var resets: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    private func find(_ id: [UInt8], _ lim: Limit) -> Int32? {
        guard let list = byId[id] else { return nil }
        for s in list where slots[Int(s)].key.lim == lim { return s }
        return nil
    }

    /// The denial for (id, lim, mode, cost) at `now`, or nil. A used entry becomes the most recent; an expired one
    /// is dropped.
    public mutating func answer(id: [UInt8], _ lim: Limit, mode: Mode, cost: Int64, now: Int64) -> Decision? {
        guard let s = find(id, lim) else { return nil }
        let e = slots[Int(s)].entry
        if now >= e.until {
            remove(s)
            return nil
        }
        guard let d = e.answer(lim, mode: mode, cost: cost, now: now) else { return nil }
        touch(s)
        hits &+= 1
        return d
    }

    /// Keeps what `d` says, unless an id of this shard was reset since `resetsBefore` was read (before the request
    /// went to Redis). A decision that implies nothing drops the key's entry: Redis knows better now.
    public mutating func offer(id: [UInt8], _ lim: Limit, _ d: Decision, mode: Mode, cost: Int64, now: Int64,
                               resetsBefore: UInt64) {
        guard capacity > 0, resetsBefore == resets else { return }
        guard let e = DenyEntry.from(d, lim, mode: mode, cost: cost, now: now) else {
            if d.allowed, let s = find(id, lim) { remove(s) }
            return
        }
        if let s = find(id, lim) {
            // Two threads' answers may arrive out of order: the later deadline is the one Redis last stood by.
            if e.until >= slots[Int(s)].entry.until { slots[Int(s)].entry = e }
            touch(s)
            return
        }
        if count >= capacity, tail >= 0 { remove(tail) }
        let slot = Slot(key: DenyKey(id: id, lim: lim), entry: e, prev: -1, next: head)
        let s: Int32
        if let f = free.popLast() {
            s = f
            slots[Int(s)] = slot
        } else {
            s = Int32(slots.count)
            slots.append(slot)
        }
        if head >= 0 { slots[Int(head)].prev = s }
        head = s
        if tail < 0 { tail = s }
        byId[id, default: []].append(s)
        count += 1
    }

    /// Drops every entry of `id` (a reset through this handle).
    public mutating func reset(id: [UInt8]) {
        resets &+= 1
        guard let list = byId[id] else { return }
        for s in list { unlink(s) }
        byId[id] = nil
    }

    private mutating func touch(_ s: Int32) {
        guard head != s else { return }
        unlinkOrder(s)
        slots[Int(s)].prev = -1
        slots[Int(s)].next = head
        if head >= 0 { slots[Int(head)].prev = s }
        head = s
        if tail < 0 { tail = s }
    }

    private mutating func remove(_ s: Int32) {
        let id = slots[Int(s)].key.id
        if var list = byId[id], let i = list.firstIndex(of: s) {
            list.remove(at: i)
            byId[id] = list.isEmpty ? nil : list
        }
        unlink(s)
    }

    /// Takes slot s out of the use order and frees it (byId is the caller's).
    private mutating func unlink(_ s: Int32) {
        unlinkOrder(s)
        slots[Int(s)].key.id = []
        free.append(s)
        count -= 1
    }

    private mutating func unlinkOrder(_ s: Int32) {
        let p = slots[Int(s)].prev, n = slots[Int(s)].next
        if p >= 0 { slots[Int(p)].next = n } else if head == s { head = n }
        if n >= 0 { slots[Int(n)].prev = p } else if tail == s { tail = p }
        slots[Int(s)].prev = -1
        slots[Int(s)].next = -1
    }
}
