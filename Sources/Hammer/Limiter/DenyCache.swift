// The local deny cache (deny_cache=ENTRIES): denials Redis gave that hold until a known time are served in-process
// until then, without a round trip. The rules are HammerCore's DenyEntry; here the shards, their locks and the
// clock. An id's entries live in one shard (chosen by the id's hash), so a reset takes one lock and no call takes a
// lock shared by all.
import Glibc
import HammerCore

final class DenyCache {
    final class Shard {
        let lock = Lock()
        var core: DenyShard
        init(capacity: Int) { core = DenyShard(capacity: capacity) }
    }

    private var shards: [Shard]
    private let capacity: Int
    private let epoch = ForkEpoch()

    /// `capacity` entries in all, split among up to 64 shards (the first ones take the remainder), so the cache never
    /// holds more than the option says.
    init(capacity: Int) {
        self.capacity = capacity
        shards = DenyCache.make(capacity)
    }

    private static func make(_ capacity: Int) -> [Shard] {
        let n = max(1, min(64, capacity))
        return (0..<n).map { i in Shard(capacity: capacity / n + (i < capacity % n ? 1 : 0)) }
    }

    /// In a child after fork(): a parent's thread may have held a shard's lock; the shards are left as they are,
    /// never freed, and the child starts empty.
    private func afterFork() {
        for s in shards { _ = Unmanaged.passRetained(s) }
        shards = DenyCache.make(capacity)
    }

    @inline(__always)
    private func shard(_ id: UnsafeBufferPointer<UInt8>) -> Shard {
        // FNV-1a: cheap, and the shards need spread, not secrecy (an id's entries are bounded by its shard anyway).
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in id { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return shards[Int(h % UInt64(shards.count))]
    }

    /// A denial for (id, lim, mode, cost) at `now` (the cache's clock), or nil; and the shard's reset count to hand
    /// back to `offer` with Redis's answer.
    func answer(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                now: Int64) -> (Decision?, UInt64) {
        epoch.check(afterFork)
        let s = shard(id)
        let key = Array(id)
        s.lock.lock()
        defer { s.lock.unlock() }
        return (s.core.answer(id: key, lim, mode: mode, cost: cost, now: now), s.core.resets)
    }

    func offer(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, _ d: Decision, mode: Mode, cost: Int64, now: Int64,
               resetsBefore: UInt64) {
        epoch.check(afterFork)
        let s = shard(id)
        let key = Array(id)
        s.lock.lock()
        s.core.offer(id: key, lim, d, mode: mode, cost: cost, now: now, resetsBefore: resetsBefore)
        s.lock.unlock()
    }

    func reset(id: UnsafeBufferPointer<UInt8>) {
        epoch.check(afterFork)
        let s = shard(id)
        let key = Array(id)
        s.lock.lock()
        s.core.reset(id: key)
        s.lock.unlock()
    }

    /// Denials served, and entries held now, over all shards.
    func totals() -> (hits: UInt64, entries: Int) {
        epoch.check(afterFork)
        var hits: UInt64 = 0
        var entries = 0
        for s in shards {
            s.lock.lock()
            hits &+= s.core.hits
            entries += s.core.count
            s.lock.unlock()
        }
        return (hits, entries)
    }

    /// The cache's clock: the handle's (the time sent to Redis, so deadlines are Redis's own) with clock=local;
    /// with clock=redis, the monotonic clock read before the request is sent, so a deadline counted from then is
    /// never later than Redis's.
    static func now(_ config: Config, sent: Int64?) -> Int64 {
        if config.clock == .local, let sent { return sent }
        return Clock.monotonicMs()
    }

    /// The time Redis's waits count from, on the cache's clock: the time sent (clock=local); with clock=redis a
    /// millisecond before the request was sent, as Redis's and the monotonic clock turn their milliseconds at
    /// different instants (the entry may end up to 1 ms early, never late).
    static func since(_ config: Config, _ now: Int64) -> Int64 {
        config.clock == .local ? now : now - 1
    }
}
