// The sliding window's log held in the process (the local fallback, memory://): its hits as (time, cost) sorted by
// time in a ring buffer, each with the running total of the costs up to it. What a decision asks of the log (the
// costs still in the window, the newest time, the wait until enough cost leaves) is then a binary search, and an
// allowed hit trims the expired front by moving an index: the cost of a decision does not grow with the log.
// A hit older than the newest (another thread's clock read a moment later, or a caller's time) is inserted in
// place: it moves the entries after it, few in practice. Hits at the time of the entry before them join it.

public struct SlidingLog: Sendable {
    struct Entry: Sendable {
        var time: Int64
        /// The costs of every entry up to this one since the log began (trimmed ones included).
        var cum: Int64
    }

    private var ring: [Entry] = []
    private var head = 0
    public private(set) var count = 0
    /// The running total before the first entry (the trimmed entries' costs).
    private var base: Int64 = 0

    public init() {}

    @inline(__always) private func slot(_ i: Int) -> Int { (head &+ i) & (ring.count &- 1) }
    @inline(__always) private func time(_ i: Int) -> Int64 { ring[slot(i)].time }
    /// The running total through entry i - 1 (base for i = 0).
    @inline(__always) private func before(_ i: Int) -> Int64 { i == 0 ? base : ring[slot(i - 1)].cum }

    public var isEmpty: Bool { count == 0 }
    /// The newest hit's time.
    public var newest: Int64? { count == 0 ? nil : time(count - 1) }
    /// The costs of every entry.
    public var total: Int64 { before(count) - base }

    /// The first entry whose time is after `t` (count if none).
    private func firstAfter(_ t: Int64) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if time(mid) > t { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The costs of the hits after `edge` (those still in the window).
    public func live(after edge: Int64) -> Int64 { before(count) - before(firstAfter(edge)) }

    /// The time of the oldest hit after `edge` at which the costs after `edge` up to it reach `want`, or nil.
    public func timeFreeing(_ want: Int64, after edge: Int64) -> Int64? {
        let k = firstAfter(edge)
        let target = before(k) + want
        if count == 0 || ring[slot(count - 1)].cum < target { return nil }
        var lo = k, hi = count - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ring[slot(mid)].cum >= target { hi = mid } else { lo = mid + 1 }
        }
        return time(lo)
    }

    /// Drops the hits at or before `edge`.
    public mutating func trim(through edge: Int64) {
        let k = firstAfter(edge)
        if k == 0 { return }
        base = before(k)
        head = slot(k)
        count -= k
        if count == 0 { head = 0 }
        if ring.count > 16 && count < ring.count / 4 { resize(ring.count / 2) }
    }

    /// Adds a hit (cost > 0) in time order.
    public mutating func insert(time t: Int64, cost: Int64) {
        var p = count
        while p > 0 && time(p - 1) > t { p -= 1 }
        if p > 0 && time(p - 1) == t {
            for i in (p - 1)..<count { ring[slot(i)].cum &+= cost }
        } else {
            if count == ring.count { resize(max(8, ring.count * 2)) }
            var i = count
            while i > p {
                var e = ring[slot(i - 1)]
                e.cum &+= cost
                ring[slot(i)] = e
                i -= 1
            }
            ring[slot(p)] = Entry(time: t, cum: before(p) &+ cost)
            count += 1
        }
        // The running totals only grow; long before they could overflow, they restart from 0.
        if ring[slot(count - 1)].cum > 1 << 62 { rebase() }
    }

    private mutating func rebase() {
        for i in 0..<count { ring[slot(i)].cum -= base }
        base = 0
    }

    private mutating func resize(_ capacity: Int) {
        var next = [Entry](repeating: Entry(time: 0, cum: 0), count: capacity)
        for i in 0..<count { next[i] = ring[slot(i)] }
        ring = next
        head = 0
    }

    /// The entries, oldest first (tests, snapshots).
    public var entries: [(time: Int64, cost: Int64)] {
        (0..<count).map { (time($0), ring[slot($0)].cum - before($0)) }
    }
}

extension SlidingLog {
    /// A sliding-window decision on `log`, as lua/lib/sliding_window.lua makes it: the window holds the hits after
    /// now - P; an allowed hit of cost > 0 drops the expired ones and is logged; nothing else changes the log.
    public static func decide(_ log: inout SlidingLog, L: Int64, P: Int64, mode: Mode, cost c: Int64,
                              now: Int64) -> Decision {
        let edge = now - P
        let live = log.live(after: edge)
        let need = mode == .peek ? 1 : c
        var ok = false
        if mode == .hit && c == 0 { ok = true } else if need <= L && live + need <= L { ok = true }
        var total = live
        if ok && mode == .hit && c > 0 {
            log.trim(through: edge)
            log.insert(time: now, cost: c)
            total += c
        }
        var rem: Int64 = 0, retry: Int64 = 0
        // The window holds no hits once its newest hit has left it.
        let reset: Int64 = total > 0 ? (log.newest ?? now) + P - now : 0
        // total may exceed L: hits of a larger limit (the id's limit was lowered).
        if ok { rem = max(0, L - total) } else if need > L { retry = -1 } else {
            // The wait until the oldest hits whose costs free enough leave the window.
            retry = log.timeFreeing(total + need - L, after: edge).map { $0 + P - now } ?? -1
        }
        return Decision(allowed: ok, count: total, limit: L, remaining: rem, retryAfterMs: retry, resetAfterMs: reset)
    }
}
