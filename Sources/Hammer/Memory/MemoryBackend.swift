// The handle's calls on memory:// (Handle.memory): the same calls, decisions and statistics as against Redis,
// on the process's MemoryStore instead of a connection. Time is the handle's clock (CLOCK_REALTIME) where the
// caller gives none; TTLs run on the monotonic clock.
import HammerCore

extension Handle {
    /// Counts one call (or a batch's `o`) in the statistics, with its latency.
    private func recorded<T>(_ t0: Int64, _ o: Outcome, _ r: Result<T, Failure>) -> Result<T, Failure> {
        var o = o
        if let f = r.failureValue { o.fail(f.status) }
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return r
    }

    func memoryCountHit(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64,
                        increment: Int64) -> Result<Int64, Failure> {
        let t0 = Clock.monotonicUs()
        return recorded(t0, Outcome(calls: 1), m.with(id, create: true) { s, mono in
            s.countHit(bucket, incr: increment, now: nowMs, ttl: config.expiryMs, refresh: true, mono: mono)
        })
    }

    func memoryGetBucket(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, bucket: Int64) -> Result<BucketInfo?, Failure> {
        let t0 = Clock.monotonicUs()
        return recorded(t0, Outcome(calls: 1), .success(m.with(id, create: false) { s, mono in
            s.bucket(bucket, mono).map { BucketInfo(count: $0.count, created: $0.created, updated: $0.updated) }
        }))
    }

    func memoryDelete(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>) -> Result<Int64, Failure> {
        let t0 = Clock.monotonicUs()
        return recorded(t0, Outcome(calls: 1), .success(m.delete(id)))
    }

    func memoryInspect(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, scaleMs: Int64) -> Result<Inspection, Failure> {
        let t0 = Clock.monotonicUs()
        let now = Clock.realtimeMs()
        let w = idiv(now, scaleMs)
        let left = (w + 1) * scaleMs - now
        return recorded(t0, Outcome(calls: 1), .success(m.with(id, create: false) { s, mono in
            let b = s.bucket(w, mono)
            return Inspection(count: b?.count ?? 0, created: b?.created ?? 0, updated: b?.updated ?? 0, msToNext: left)
        }))
    }

    /// One decision, uncounted (single calls and batches count it).
    func memoryDecide(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                      now: Int64?) -> Result<Decision, Failure> {
        let t = now ?? Clock.realtimeMs()
        return m.with(id, create: mode != .peek) { s, mono in s.decide(lim, mode: mode, cost: cost, now: t, mono: mono) }
    }

    func memoryLimit(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                     now: Int64?) -> Result<Decision, Failure> {
        let t0 = Clock.monotonicUs()
        let d = memoryDecide(m, id: id, lim, mode: mode, cost: cost, now: now)
        var o = Outcome(calls: 1)
        o.add(d)
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return d
    }

    func memoryCountHits(_ m: MemoryStore, _ reqs: [Result<CountRequest, Failure>]) -> [Result<Int64, Failure>] {
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(reqs.count))
        let results = reqs.map { req -> Result<Int64, Failure> in
            let r = req.flatMap { r in
                m.with(r.id, create: true) { s, mono in
                    s.countHit(r.bucket, incr: r.increment, now: r.nowMs, ttl: config.expiryMs, refresh: true,
                               mono: mono)
                }
            }
            if let f = r.failureValue { o.fail(f.status) }
            return r
        }
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }

    func memoryDecideMany(_ m: MemoryStore, _ reqs: [Result<DecisionRequest, Failure>]) -> [Result<Decision, Failure>] {
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(reqs.count))
        let results = reqs.map { req -> Result<Decision, Failure> in
            let d = req.flatMap { r in memoryDecide(m, id: r.id, r.lim, mode: r.mode, cost: r.cost, now: r.now) }
            o.add(d)
            return d
        }
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }
}
