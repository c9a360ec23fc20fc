// What decision calls answer while Redis cannot: the on_error policy, or an in-process limiter (fallback=local)
// with the same limits, so a limit still holds per process during an outage. Both mark the decision degraded and
// leave the reason in hammer_last_error().
import Glibc
import HammerCore

/// In-process limiter state per (id, limit), in shards by the id's hash, each under its own lock, so that threads
/// deciding for different ids seldom wait for each other. A model is changed in place (held by a class: no copy of
/// its state per decision). Bounded: past `capacity / shards` entries a shard starts afresh.
final class LocalLimiter {
    struct Key: Hashable {
        var id: [UInt8]
        var algorithm: Int32
        var limit: Int64
        var period: Int64
        var burst: Int64
        var check: Bool
    }
    final class Slot { var model = LimiterModel() }
    final class States { var map: [Key: Slot] = [:] }
    final class Shard {
        var lock = Lock()
        var states = States()
    }
    static let shardBits = 6
    let capacity = 100_000
    private let shards = (0..<(1 << LocalLimiter.shardBits)).map { _ in Shard() }
    private let epoch = ForkEpoch()

    /// In a child after fork(): a parent's thread may have held a shard's lock, half-way through changing its
    /// states; each shard's lock and states are left as they are, never freed, and the child starts afresh.
    private func afterFork() {
        for s in shards {
            _ = Unmanaged.passRetained(s.lock)
            _ = Unmanaged.passRetained(s.states)
            s.lock = Lock()
            s.states = States()
        }
    }

    func decide(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64, now: Int64) -> Decision {
        let key = Key(id: Array(id), algorithm: lim.algorithm.rawValue, limit: lim.limit, period: lim.periodMs,
                      burst: lim.burst, check: mode == .check)
        epoch.check(afterFork)
        let s = shards[shardIndex(id, bits: LocalLimiter.shardBits)]
        s.lock.lock()
        defer { s.lock.unlock() }
        if let slot = s.states.map[key] { return slot.model.apply(lim, mode: mode, cost: cost, now: now) }
        if mode == .peek {
            var m = LimiterModel()
            return m.apply(lim, mode: mode, cost: cost, now: now)
        }
        if s.states.map.count >= capacity >> LocalLimiter.shardBits { s.states.map.removeAll(keepingCapacity: true) }
        let slot = Slot()
        s.states.map[key] = slot
        return slot.model.apply(lim, mode: mode, cost: cost, now: now)
    }

    /// Several limits of one id, combined as Redis combines them (MultiLimit), on the same states as single calls.
    func decideAll(id: UnsafeBufferPointer<UInt8>, _ lims: [Limit], mode: Mode, cost: Int64, now: Int64) -> Decision {
        let idb = Array(id)
        let keys = lims.map { Key(id: idb, algorithm: $0.algorithm.rawValue, limit: $0.limit, period: $0.periodMs,
                                  burst: $0.burst, check: false) }
        epoch.check(afterFork)
        // Every key is of one id, so of one shard.
        let s = shards[shardIndex(id, bits: LocalLimiter.shardBits)]
        s.lock.lock()
        defer { s.lock.unlock() }
        if s.states.map.count + keys.count > capacity >> LocalLimiter.shardBits
            && keys.contains(where: { s.states.map[$0] == nil }) {
            s.states.map.removeAll(keepingCapacity: true)
        }
        // Each model is taken out of its slot while MultiLimit applies it (held once, so changed in place, not
        // copied), and put back; a peek creates no state.
        var models = keys.map { k -> LimiterModel in
            guard let slot = s.states.map[k] else { return LimiterModel() }
            let m = slot.model
            slot.model = LimiterModel()
            return m
        }
        let d = MultiLimit.decide(lims, mode: mode, cost: cost) { i, m, c in
            models[i].apply(lims[i], mode: m, cost: c, now: now)
        }
        for (i, k) in keys.enumerated() {
            if let slot = s.states.map[k] { slot.model = models[i] } else if mode != .peek {
                let slot = Slot()
                slot.model = models[i]
                s.states.map[k] = slot
            }
        }
        return d
    }

    var count: Int {
        epoch.check(afterFork)
        var n = 0
        for s in shards {
            s.lock.lock()
            n += s.states.map.count
            s.lock.unlock()
        }
        return n
    }
}

extension Handle {
    /// A decision for when Redis could not answer with `f`, or `f` itself under on_error=error without fallback;
    /// what was done is the calling thread's hammer_last_error().
    func degrade(_ f: Failure, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                 now: Int64?) -> Result<Decision, Failure> {
        let (d, note) = degradeNoted(f, id: id, lim, mode: mode, cost: cost, now: now)
        if let note { LastError.set(note) }
        return d
    }

    /// degrade(), and what was done in words (for the thread that made the call, which may not be this one).
    func degradeNoted(_ f: Failure, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                      now: Int64?) -> (Result<Decision, Failure>, String?) {
        if let local {
            var d = local.decide(id: id, lim, mode: mode, cost: cost, now: now ?? Clock.realtimeMs())
            d.degraded = true
            return (.success(d), "decided in-process (fallback=local): " + f.message)
        }
        switch config.onError {
        case .error:
            return (.failure(f), nil)
        case .allow:
            return (.success(Decision(allowed: true, count: 0, limit: lim.limit, remaining: lim.capacity,
                                      retryAfterMs: 0, resetAfterMs: 0, degraded: true)),
                    "allowed without Redis (on_error=allow): " + f.message)
        case .deny:
            return (.success(Decision(allowed: false, count: 0, limit: lim.limit, remaining: 0,
                                      retryAfterMs: max(1, pool.backoffLeftMs), resetAfterMs: 0, degraded: true)),
                    "denied without Redis (on_error=deny): " + f.message)
        }
    }
}
