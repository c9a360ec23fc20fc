// What decision calls answer while Redis cannot: the on_error policy, or an in-process limiter (fallback=local)
// with the same limits, so a limit still holds per process during an outage. Both mark the decision degraded and
// leave the reason in hammer_last_error().
import Glibc
import HammerCore

/// In-process limiter state per (id, limit), guarded by a lock. Bounded: past `capacity` entries it starts afresh.
final class LocalLimiter {
    struct Key: Hashable {
        var id: [UInt8]
        var algorithm: Int32
        var limit: Int64
        var period: Int64
        var burst: Int64
        var check: Bool
    }
    final class States { var map: [Key: LimiterModel] = [:] }
    private var lock = Lock()
    private var states = States()
    let capacity = 100_000
    private let epoch = ForkEpoch()

    /// In a child after fork(): a parent's thread may have held the lock, half-way through changing the states;
    /// both are left as they are, never freed.
    private func afterFork() {
        _ = Unmanaged.passRetained(lock)
        _ = Unmanaged.passRetained(states)
        lock = Lock()
        states = States()
    }

    func decide(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64, now: Int64) -> Decision {
        let key = Key(id: Array(id), algorithm: lim.algorithm.rawValue, limit: lim.limit, period: lim.periodMs,
                      burst: lim.burst, check: mode == .check)
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        if states.map.count >= capacity && states.map[key] == nil { states.map.removeAll(keepingCapacity: true) }
        var m = states.map[key] ?? LimiterModel()
        let d = m.apply(lim, mode: mode, cost: cost, now: now)
        if mode != .peek { states.map[key] = m }
        return d
    }

    var count: Int {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        return states.map.count
    }
}

extension Handle {
    /// A decision for when Redis could not answer with `f`, or `f` itself under on_error=error without fallback.
    func degrade(_ f: Failure, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                 now: Int64?) -> Result<Decision, Failure> {
        if let local {
            var d = local.decide(id: id, lim, mode: mode, cost: cost, now: now ?? Clock.realtimeMs())
            d.degraded = true
            LastError.set("decided in-process (fallback=local): " + f.message)
            return .success(d)
        }
        switch config.onError {
        case .error:
            return .failure(f)
        case .allow:
            LastError.set("allowed without Redis (on_error=allow): " + f.message)
            return .success(Decision(allowed: true, count: 0, limit: lim.limit, remaining: lim.capacity,
                                     retryAfterMs: 0, resetAfterMs: 0, degraded: true))
        case .deny:
            LastError.set("denied without Redis (on_error=deny): " + f.message)
            return .success(Decision(allowed: false, count: 0, limit: lim.limit, remaining: 0,
                                     retryAfterMs: max(1, pool.backoffLeftMs), resetAfterMs: 0, degraded: true))
        }
    }
}
