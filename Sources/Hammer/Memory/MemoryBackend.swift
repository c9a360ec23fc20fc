// The handle's calls on memory:// (Handle.memory): the same calls, decisions and statistics as against Redis,
// on the process's MemoryStore instead of a connection. Time is the handle's clock (CLOCK_REALTIME) where the
// caller gives none; TTLs run on the monotonic clock. Single calls are counted in their shard's statistics,
// batches and refused calls in the pool's; hammer_stats sums them (Handle.snapshot).
import HammerCore

extension Handle {
    /// A single call's outcome for the statistics (counted in its shard, under the lock it holds anyway).
    private static func counted<T>(_ r: Result<T, Failure>) -> Outcome {
        var o = Outcome(calls: 1)
        if let f = r.failureValue { o.fail(f.status) }
        return o
    }

    static func decided(_ r: Result<Decision, Failure>) -> Outcome {
        var o = Outcome(calls: 1)
        o.add(r)
        return o
    }

    func memoryCountHit(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64,
                        increment: Int64) -> Result<Int64, Failure> {
        m.with(id, create: true, since: Clock.monotonicUs(), count: Handle.counted) { s, mono in
            s.countHit(bucket, incr: increment, now: nowMs, ttl: config.expiryMs, refresh: true, mono: mono)
        }
    }

    func memoryGetBucket(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, bucket: Int64) -> Result<BucketInfo?, Failure> {
        m.with(id, create: false, since: Clock.monotonicUs(), count: Handle.counted) { s, mono in
            .success(s.bucket(bucket, mono).map { BucketInfo(count: $0.count, created: $0.created, updated: $0.updated) })
        }
    }

    func memoryDelete(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>) -> Result<Int64, Failure> {
        let t0 = Clock.monotonicUs()
        let n = m.delete(id)
        pool.record(Outcome(calls: 1), latencyUs: Clock.monotonicUs() - t0)
        return .success(n)
    }

    func memoryInspect(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, scaleMs: Int64) -> Result<Inspection, Failure> {
        let t0 = Clock.monotonicUs()
        let now = Clock.realtimeMs()
        let w = idiv(now, scaleMs)
        let left = (w + 1) * scaleMs - now
        return m.with(id, create: false, since: t0, count: Handle.counted) { s, mono in
            let b = s.bucket(w, mono)
            return .success(Inspection(count: b?.count ?? 0, created: b?.created ?? 0, updated: b?.updated ?? 0,
                                       msToNext: left))
        }
    }

    /// One decision, uncounted (batches count theirs together).
    func memoryDecide(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                      now: Int64?) -> Result<Decision, Failure> {
        let t = now ?? Clock.realtimeMs()
        return m.with(id, create: mode != .peek) { s, mono in s.decide(lim, mode: mode, cost: cost, now: t, mono: mono) }
    }

    func memoryLimit(_ m: MemoryStore, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                     now: Int64?) -> Result<Decision, Failure> {
        let t0 = Clock.monotonicUs()
        let t = now ?? Clock.realtimeMs()
        return m.with(id, create: mode != .peek, since: t0, count: Handle.decided) { s, mono in
            s.decide(lim, mode: mode, cost: cost, now: t, mono: mono)
        }
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

extension Handle {
    /// The statistics hammer_stats reports, and the connections open.
    func snapshot() -> (Stats, Int) {
        var (s, open) = pool.snapshot()
        if let memory { s.merge(memory.stats()) }
        return (s, open)
    }
}

extension Handle {
    /// Several limits of one id, one decision (hammer_hit_all, hammer_peek_all): MultiLimit.decide on the id's state
    /// (a limit's own where MultiLimit.ownStates says), all under its shard's lock, as lua/decide_all.lua decides
    /// them in one script. Counted with `count`.
    func memoryDecideAll(_ m: MemoryStore, _ req: MultiRequest, counted: Bool) -> Result<Decision, Failure> {
        let t0 = Clock.monotonicUs()
        let t = req.now ?? Clock.realtimeMs()
        if let f = MultiLimit.conflict(req.set, now: t) { return .failure(counted ? refuse(f) : f) }
        let lims = req.set.unique
        return m.with(req.id, create: req.mode != .peek, since: t0, count: counted ? Handle.decided : nil) { s, mono in
            var failure: Failure? = nil
            var d = MultiLimit.decide(lims, mode: req.mode, cost: req.cost) { i, mode, cost in
                switch s.decide(lims[i], own: req.own[i], mode: mode, cost: cost, now: t, mono: mono) {
                case let .success(x): return x
                case let .failure(f):
                    // A count past int64 (count_hit's doing): Redis's script fails there too.
                    failure = failure ?? f
                    return Decision(allowed: false, count: 0, limit: lims[i].limit, remaining: 0, retryAfterMs: -1,
                                    resetAfterMs: 0)
                }
            }
            if let failure { return .failure(failure) }
            d.decidedBy = req.set.firstIndex[d.decidedBy]
            return .success(d)
        }
    }

    func memoryDecideAllMany(_ m: MemoryStore, _ reqs: [Result<MultiRequest, Failure>]) -> [Result<Decision, Failure>] {
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(reqs.count))
        let results = reqs.map { req -> Result<Decision, Failure> in
            let d = req.flatMap { memoryDecideAll(m, $0, counted: false) }
            o.add(d)
            return d
        }
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }
}
