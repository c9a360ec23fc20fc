// What the I/O thread does with the ops it took: those past their deadline complete as TIMEOUT unsent; the rest
// go by kind through the handle's batch paths (count_hits, decide, decideAll: one pipeline each, on every URL kind,
// with the policies and statistics of the batch calls), and the calls without a batch form (get_bucket,
// delete_buckets, inspect_bucket) as their blocking calls, one after the other. The deny cache answers hit / peek
// on the handle's clock as it does for hammer_hit / hammer_peek.
import CHammer
import HammerCore

enum Dispatch {
    static let notSent = Failure(
        .timeout, "hammer_submit: not sent: the op's deadline (connect_timeout_ms + timeout_ms) passed while it was queued")
    /// An op sent whose deadline passed before its reply: completed then; the reply, if any comes, is dropped.
    static let noReply = Failure(
        .timeout, "hammer_submit: no reply within the op's deadline (connect_timeout_ms + timeout_ms); it may have run")

    /// An op that ran out of time: a decision is left to the on_error / fallback policy,
    /// as for a blocking call that times out; `record`: counted in the statistics here (else its batch counts it).
    static func timedOut(_ h: Handle, _ op: AsyncOp, _ f: Failure, record: Bool) -> hammer_completion {
        var o = Outcome(calls: 1)
        var c: hammer_completion
        switch op.body {
        case let .decision(lim, mode, cost, now):
            let d = h.degradeNoted(f, id: op.idBuffer, lim, mode: mode, cost: cost, now: now).0
            o.add(d)
            c = decided(op, d)
        case let .multi(set, mode, cost, now):
            let d = h.degradeAll(f, MultiRequest(id: op.idBuffer, set: set, mode: mode, cost: cost, now: now))
            o.add(d)
            c = decided(op, d)
        default:
            o.fail(f.status)
            c = hammer_completion(tag: op.tag, kind: op.kind, failure: f)
        }
        if record { h.pool.record(o, latencyUs: nil) }
        return c
    }

    /// Each op's completion with its index in `ops`.
    static func run(_ h: Handle, _ ops: [AsyncOp]) -> [(Int, hammer_completion)] {
        var out: [(Int, hammer_completion)] = []
        out.reserveCapacity(ops.count)
        let now = Clock.monotonicUs()
        var counts: [Int] = [], decisions: [Int] = [], multis: [Int] = [], singles: [Int] = []
        for (i, op) in ops.enumerated() {
            if now >= op.deadlineUs {
                out.append((i, timedOut(h, op, notSent, record: true)))
                continue
            }
            switch op.body {
            case .count: counts.append(i)
            case .decision: decisions.append(i)
            case .multi: multis.append(i)
            case .getBucket, .delete, .inspect: singles.append(i)
            }
        }
        if !counts.isEmpty { runCounts(h, ops, counts, &out) }
        if !decisions.isEmpty { runDecisions(h, ops, decisions, &out) }
        if !multis.isEmpty { runMultis(h, ops, multis, &out) }
        for i in singles { out.append((i, runSingle(h, ops[i]))) }
        return out
    }

    private static func runCounts(_ h: Handle, _ ops: [AsyncOp], _ idx: [Int], _ out: inout [(Int, hammer_completion)]) {
        let reqs = idx.map { i -> Result<CountRequest, Failure> in
            guard case let .count(bucket, nowMs, increment) = ops[i].body else { return Handle.unanswered(CountRequest.self) }
            return .success(CountRequest(id: ops[i].idBuffer, bucket: bucket, nowMs: nowMs, increment: increment))
        }
        for (k, r) in h.countHits(reqs).enumerated() {
            let op = ops[idx[k]]
            var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
            if case let .success(n) = r { c.value = n }
            out.append((idx[k], c))
        }
    }

    private static func runDecisions(_ h: Handle, _ ops: [AsyncOp], _ idx: [Int], _ out: inout [(Int, hammer_completion)]) {
        // The deny cache first (hit / peek on the handle's clock only, as hammer_hit): a cached denial completes
        // here; for the others, the time the request is decided at and the cache's bookkeeping for its answer.
        var cached: [Int: (since: Int64, resets: UInt64)] = [:]
        var sent: [Int] = []
        var reqs: [Result<DecisionRequest, Failure>] = []
        for i in idx {
            guard case let .decision(lim, mode, cost, now) = ops[i].body else { continue }
            var at = now
            if let cache = h.denyCache, h.memory == nil, now == nil, mode != .check {
                let t = h.time(nil)
                let cnow = DenyCache.now(h.config, sent: t)
                let (d, resets) = cache.answer(id: ops[i].idBuffer, lim, mode: mode, cost: cost, now: cnow)
                if let d {
                    out.append((i, decided(ops[i], .success(d))))
                    continue
                }
                cached[i] = (DenyCache.since(h.config, cnow), resets)
                at = t
            }
            sent.append(i)
            reqs.append(.success(DecisionRequest(id: ops[i].idBuffer, lim: lim, mode: mode, cost: cost, now: at)))
        }
        if reqs.isEmpty { return }
        for (k, r) in h.decide(reqs).enumerated() {
            let i = sent[k]
            if let cache = h.denyCache, let c = cached[i], case let .success(d) = r,
               case let .decision(lim, mode, cost, _) = ops[i].body {
                cache.offer(id: ops[i].idBuffer, lim, d, mode: mode, cost: cost, now: c.since, resetsBefore: c.resets)
            }
            out.append((i, decided(ops[i], r)))
        }
    }

    private static func runMultis(_ h: Handle, _ ops: [AsyncOp], _ all: [Int], _ out: inout [(Int, hammer_completion)]) {
        // decideAll takes one mode per call: the hits, then the peeks.
        let peeks = all.filter { i in if case .multi(_, .peek, _, _) = ops[i].body { return true } else { return false } }
        let hits = all.filter { i in if case .multi(_, .peek, _, _) = ops[i].body { return false } else { return true } }
        for idx in [hits, peeks] where !idx.isEmpty { runMultiCall(h, ops, idx, &out) }
    }

    private static func runMultiCall(_ h: Handle, _ ops: [AsyncOp], _ idx: [Int], _ out: inout [(Int, hammer_completion)]) {
        let reqs = idx.map { i -> Result<MultiRequest, Failure> in
            guard case let .multi(set, mode, cost, now) = ops[i].body else { return Handle.unanswered(MultiRequest.self) }
            return .success(MultiRequest(id: ops[i].idBuffer, set: set, mode: mode, cost: cost, now: now))
        }
        for (k, r) in h.decideAll(reqs).enumerated() { out.append((idx[k], decided(ops[idx[k]], r))) }
    }

    private static func decided(_ op: AsyncOp, _ r: Result<Decision, Failure>) -> hammer_completion {
        var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
        if case let .success(d) = r { withUnsafeMutablePointer(to: &c.decision) { put($0, d) } }
        return c
    }

    private static func runSingle(_ h: Handle, _ op: AsyncOp) -> hammer_completion {
        let id = op.idBuffer
        switch op.body {
        case let .getBucket(bucket):
            let r = h.getBucket(id: id, bucket: bucket)
            var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
            c.bucket.bucket = bucket
            if case let .success(info?) = r {
                c.bucket.count = info.count
                c.bucket.created = info.created
                c.bucket.updated = info.updated
                c.bucket.found = 1
            }
            return c
        case .delete:
            let r = h.deleteBuckets(id: id)
            var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
            if case let .success(n) = r { c.value = n }
            return c
        case let .inspect(scaleMs, limit):
            let r = h.inspect(id: id, scaleMs: scaleMs, limit: limit)
            var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
            if case let .success(i) = r {
                c.inspection.count = i.count
                c.inspection.remaining = limit - min(max(0, i.count), limit)
                c.inspection.ms_to_next_bucket = i.msToNext
                c.inspection.created = i.created
                c.inspection.updated = i.updated
            }
            return c
        default:
            return hammer_completion(tag: op.tag, kind: op.kind,
                                     failure: Failure(.internal, "hammer_submit: op of an unexpected kind"))
        }
    }
}
