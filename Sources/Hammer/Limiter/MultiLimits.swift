// Several limits of one id, one atomic decision (hammer_hit_all, hammer_peek_all, hammer_hit_all_many): one script
// call (lua/decide_all.lua) a request, its limits' keys those of the single calls, so a limit used alone and among
// others is the same state. Batches as the other batches; while Redis cannot answer, the policy decides.
import CHiredis
import HammerCore

/// One request of hammer_hit_all_many (or a single call): the id, its distinct limits (and which of them keep a
/// state of their own: MultiLimit.ownStates), cost and time.
struct MultiRequest {
    let id: UnsafeBufferPointer<UInt8>
    let set: MultiLimit.LimitSet
    let own: [Bool]
    let mode: Mode
    let cost: Int64
    let now: Int64?

    init(id: UnsafeBufferPointer<UInt8>, set: MultiLimit.LimitSet, mode: Mode, cost: Int64, now: Int64?) {
        self.id = id
        self.set = set
        self.own = MultiLimit.ownStates(set)
        self.mode = mode
        self.cost = cost
        self.now = now
    }
}

extension Handle {
    /// Keys of every limit of the set, in order: the single calls' keys, or a limit's own keys and the index.
    func appendAllKeys(_ a: inout Args, _ r: MultiRequest, now: Int64?) {
        for (l, own) in zip(r.set.unique, r.own) { appendDecisionKeys(&a, id: r.id, l, now: now, own: own) }
    }

    static func keyCount(_ r: MultiRequest) -> Int {
        zip(r.set.unique, r.own).reduce(0) { n, x in
            n + Keys.decisionKeyCount(x.0.algorithm) + (x.1 && x.0.algorithm != .fixedWindow ? 1 : 0)
        }
    }

    /// A request's fields after the mode: n, cost, now ('' for Redis's TIME), and five a limit (the fifth 1 when
    /// the limit keeps a state of its own, else 0).
    func appendAllFields(_ a: inout Args, _ r: MultiRequest, now: Int64?) {
        a.add(Int64(r.set.unique.count))
        a.add(r.cost)
        if let now { a.add(now) } else { a.add("") }
        for (l, own) in zip(r.set.unique, r.own) {
            a.add(Int64(l.algorithm.rawValue))
            a.add(l.limit)
            a.add(l.periodMs)
            a.add(l.capacity)
            a.add(Int64(own ? 1 : 0))
        }
    }

    /// A combined decision from six consecutive elements: allowed, count, remaining, retry, reset, and the deciding
    /// limit's place among the distinct ones (mapped back to the caller's index).
    static func allDecisionValues(_ el: UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>,
                                  _ set: MultiLimit.LimitSet) -> Result<Decision, Failure> {
        if let e0 = el[0], let f = Replies.error(e0) { return .failure(f) }
        guard let e5 = el[5], let by = Replies.integer(e5), by >= 0, by < set.unique.count else {
            return .failure(Failure(.protocol, "decide_all: expected an array of 6 integers naming a limit"))
        }
        let k = Int(by)
        return decisionValues(el, set.unique[k]).map { d in
            var d = d
            d.decidedBy = set.firstIndex[k]
            return d
        }
    }

    /// One combined decision; while Redis cannot answer, the on_error / fallback policy may decide instead.
    func limitAll(_ req: MultiRequest) -> Result<Decision, Failure> {
        if let memory { return memoryDecideAll(memory, req, counted: true) }
        let t0 = Clock.monotonicUs()   // before the lane, as in limit()
        if let r = limitAllOnLane(req) { return r }
        let t = time(req.now)
        if let f = MultiLimit.conflict(req.set, now: t) { return .failure(refuse(f)) }
        let r = with(req.id, since: t0, outcome: { r in
            if case let .failure(f) = r, f.transient { return nil }
            var o = Outcome(calls: 1)
            o.add(r)
            return o
        }) { conn -> Result<Decision, Failure> in
            let res = conn.eval(Scripts.decideAll) { a in
                a.add(Int64(Handle.keyCount(req)))
                appendAllKeys(&a, req, now: t)
                a.add(req.mode.letter)
                appendAllFields(&a, req, now: t)
            }
            switch res {
            case let .failure(f): return .failure(f)
            case let .success(r):
                defer { freeReplyObject(r) }
                if let f = Replies.error(r) { return .failure(f) }
                guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == 6, let el = r.pointee.element else {
                    return .failure(Failure(.protocol, "decide_all: expected an array of 6 integers"))
                }
                return Handle.allDecisionValues(el, req.set)
            }
        }
        guard case let .failure(f) = r, f.transient else { return r }
        let d = degradeAll(f, req)
        var o = Outcome(calls: 1)
        o.add(d)
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return d
    }

    /// Requests of several limits each, as one pipeline (on a cluster, per node); a decision or failure each.
    /// Every request of one call has the same mode (a chunk names it once).
    func decideAll(_ reqs: [Result<MultiRequest, Failure>]) -> [Result<Decision, Failure>] {
        if let memory { return memoryDecideAllMany(memory, reqs) }
        let n = reqs.count
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(n))
        var results = reqs.map { $0.flatMap { _ in Handle.unanswered(Decision.self) } }
        var times = [Int64?](repeating: nil, count: n)
        var todo: [Int] = []
        for i in 0..<n {
            switch reqs[i] {
            case let .failure(f): o.fail(f.status)
            case let .success(r):
                times[i] = time(r.now)
                if let f = MultiLimit.conflict(r.set, now: times[i]) {
                    o.fail(f.status)
                    results[i] = .failure(f)
                } else {
                    todo.append(i)
                }
            }
        }
        batches(todo, chunk: Handle.batchChunk / 4, Scripts.decideAll, width: 6, keyCount: { i in
            guard case let .success(r) = reqs[i] else { return 0 }
            return Handle.keyCount(r)
        }, keys: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            appendAllKeys(&a, r, now: times[i])
        }, header: { chunk, a in
            // The mode is the chunk's: callers give one mode per call (hit_all_many: hit; the completions split).
            var mode = Mode.hit
            if let i = chunk.first, case let .success(r) = reqs[i] { mode = r.mode }
            a.add(mode.letter)
        }, fill: { i, a in
            guard case let .success(r) = reqs[i] else { return }
            appendAllFields(&a, r, now: times[i])
        }, take: { i, reply in
            guard case let .success(r) = reqs[i] else { return }
            var d: Result<Decision, Failure>
            switch reply {
            case let .failure(f): d = .failure(f)
            case let .success(e): d = Handle.allDecisionValues(e, r.set)
            }
            if case let .failure(f) = d, f.transient { d = degradeAll(f, r) }
            o.add(d)
            results[i] = d
        }, idOf: { i in
            guard case let .success(r) = reqs[i] else { return nil }
            return r.id
        })
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return results
    }

    /// degrade() for several limits: the local models combined as Redis combines them, or the on_error answer.
    func degradeAll(_ f: Failure, _ r: MultiRequest) -> Result<Decision, Failure> {
        let lims = r.set.unique
        if let local {
            var d = local.decideAll(id: r.id, lims, mode: r.mode, cost: r.cost, now: r.now ?? Clock.realtimeMs())
            d.degraded = true
            d.decidedBy = r.set.firstIndex[d.decidedBy]
            LastError.set("decided in-process (fallback=local): " + f.message)
            return .success(d)
        }
        // on_error: as for one limit, the most restrictive of them (the least capacity) speaks.
        var by = 0
        for (k, l) in lims.enumerated() where l.capacity < lims[by].capacity { by = k }
        return degrade(f, id: r.id, lims[by], mode: r.mode, cost: r.cost, now: r.now).map { d in
            var d = d
            d.decidedBy = r.set.firstIndex[by]
            return d
        }
    }
}
