// The batch calls in Swift terms: requests that the C layer checked in, one result per request out, each failed
// request alone; the whole batch is counted in the statistics as it is answered.
import CHiredis
import HammerCore

/// One count_hit of a batch.
struct CountRequest {
    let id: UnsafeBufferPointer<UInt8>
    let bucket: Int64
    let nowMs: Int64
    let increment: Int64
}

/// One decision of a batch (hit_many, check_rates).
struct DecisionRequest {
    let id: UnsafeBufferPointer<UInt8>
    let lim: Limit
    let mode: Mode
    let cost: Int64
    let now: Int64?
}

/// A limiter and mode as a batch names it once per chunk.
struct LimiterSpec: Hashable {
    let lim: Limit
    let mode: Mode

    /// A chunk's header: how many limiters, then each one's fields.
    static func append(_ specs: [LimiterSpec], to a: inout Args) {
        a.add(Int64(specs.count))
        for s in specs {
            a.add(Int64(s.lim.algorithm.rawValue))
            a.add(s.mode.letter)
            a.add(s.lim.limit)
            a.add(s.lim.periodMs)
            a.add(s.lim.capacity)
        }
    }
}

extension Handle {
    /// What a request the batch never answered gets (none should be).
    static func unanswered<T>(_: T.Type) -> Result<T, Failure> {
        .failure(Failure(.internal, "batch: the request was not answered"))
    }

    /// count_hit for each request (a failure: refused by the caller's checks, and failed alone).
    func countHits(_ reqs: [Result<CountRequest, Failure>]) -> [Result<Int64, Failure>] {
        if let memory { return memoryCountHits(memory, reqs) }
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(reqs.count))
        var results = reqs.map { $0.flatMap { _ in Handle.unanswered(Int64.self) } }
        let todo = reqs.indices.filter { i in
            guard case let .failure(f) = reqs[i] else { return true }
            o.fail(f.status)
            return false
        }
        batches(todo, chunk: Handle.batchChunk, Scripts.countHitMany, nodeScript: Scripts.countHitManyNode, keyCount: { _ in Scripts.countHitManyKeys },
                keys: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            Keys.appendIdBase(prefix: config.prefix, id: r.id, tags: hashTags, to: &a.bytes)
            Decimal.append(r.bucket, to: &a.bytes)
            a.end()
            Keys.appendIdBase(prefix: config.prefix, id: r.id, tags: hashTags, to: &a.bytes)
            a.bytes.append(contentsOf: Keys.indexSuffix)
            a.end()
        }, header: { _, a in
            a.add(config.expiryMs)
        }, fill: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            a.add(r.bucket)
            a.add(r.increment)
            a.add(r.nowMs)
        }, take: { i, reply in
            let v: Result<Int64, Failure>
            switch reply {
            case let .failure(f): v = .failure(f)
            case let .success(e):
                v = e[0].map { Replies.int64Value($0, what: "count_hit") }
                    ?? .failure(Failure(.protocol, "batch: missing element"))
            }
            if case let .failure(f) = v { o.fail(f.status) }
            results[i] = v
        }, idOf: { i in
            guard case let .success(r) = reqs[i] else { return nil }
            return r.id
        })
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }

    /// A decision for each request; while Redis cannot answer, the on_error / fallback policy decides as for
    /// single calls. Each request's time is fixed once, so a NOSCRIPT resend decides at the same time.
    func decide(_ reqs: [Result<DecisionRequest, Failure>]) -> [Result<Decision, Failure>] {
        if let memory { return memoryDecideMany(memory, reqs) }
        let n = reqs.count
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(n))
        var results = reqs.map { $0.flatMap { _ in Handle.unanswered(Decision.self) } }
        var times = [Int64?](repeating: nil, count: n)
        var todo: [Int] = []
        // The deny cache, as for single calls: requests on the handle's clock (now_ms < 0), check_rates excepted.
        var cached: [Int: (since: Int64, resets: UInt64)] = [:]
        for i in 0..<n {
            switch reqs[i] {
            case let .failure(f): o.fail(f.status)
            case let .success(r):
                times[i] = time(r.now)
                if let denyCache, r.now == nil, r.mode != .check {
                    let cnow = DenyCache.now(config, sent: times[i])
                    let (d, resets) = denyCache.answer(id: r.id, r.lim, mode: r.mode, cost: r.cost, now: cnow)
                    if let d {
                        results[i] = .success(d)
                        o.calls &-= 1   // counted by the cache
                        continue
                    }
                    cached[i] = (DenyCache.since(config, cnow), resets)
                }
                todo.append(i)
            }
        }
        // Each chunk names its distinct limiters once; a request carries its limiter's number in the chunk.
        var spec = [Int](repeating: 0, count: n)
        batches(todo, chunk: Handle.batchChunk, Scripts.limiterMany, nodeScript: Scripts.limiterManyNode, width: 5,
                keyCount: { i in
            guard case let .success(r) = reqs[i] else { return 0 }
            return Keys.decisionKeyCount(r.lim.algorithm)
        }, keys: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            appendDecisionKeys(&a, id: r.id, r.lim, now: times[i])
        }, header: { chunk, a in
            var numbers: [LimiterSpec: Int] = [:]
            var specs: [LimiterSpec] = []
            for i in chunk {
                guard case let .success(r) = reqs[i] else { continue }
                let key = LimiterSpec(lim: r.lim, mode: r.mode)
                if let k = numbers[key] { spec[i] = k; continue }
                specs.append(key)
                numbers[key] = specs.count
                spec[i] = specs.count
            }
            LimiterSpec.append(specs, to: &a)
        }, fill: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            a.add(Int64(spec[i]))
            a.add(r.cost)
            if let t = times[i] { a.add(t) } else { a.add("") }
        }, take: { i, reply in
            guard case let .success(r) = reqs[i] else { return }
            var d: Result<Decision, Failure>
            switch reply {
            case let .failure(f): d = .failure(f)
            case let .success(e): d = Handle.decisionValues(e, r.lim)
            }
            if let denyCache, let c = cached[i], case let .success(dec) = d {
                denyCache.offer(id: r.id, r.lim, dec, mode: r.mode, cost: r.cost, now: c.since, resetsBefore: c.resets)
            }
            if case let .failure(f) = d, f.transient {
                d = degrade(f, id: r.id, r.lim, mode: r.mode, cost: r.cost, now: r.now)
            }
            o.add(d)
            results[i] = d
        }, idOf: { i in
            guard case let .success(r) = reqs[i] else { return nil }
            return r.id
        })
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }
}
