// A lane: one pooled connection on which the calling threads write single ops themselves, with the ops in flight
// on it in a first-in-first-out list whose replies are matched in order (Lanes.swift drives it). Here: what a lane
// and its entries hold, and the codec of a lane op: the batch calls' script with one request (so that a reply of
// another shape shows the stream out of step), and its reply decoded into a result, counted in the statistics.
import CHammer
import CHiredis
import Glibc
import HammerCore

/// What a lane op is, decided when it is put on the lane (the id is not read again once it completed).
enum LaneCall {
    case countHit(bucket: Int64, nowMs: Int64, increment: Int64)
    case decision(lim: Limit, mode: Mode, cost: Int64)
    case getBucket(bucket: Int64)
    case inspect(scaleMs: Int64, limit: Int64)
    /// Several limits (hit_all, peek_all); `set` checked for conflicts before it goes on a lane.
    case multi(set: MultiLimit.LimitSet, mode: Mode, cost: Int64)

    /// Whether its single call's reply is an array (a decision's 5 integers), whose shape alone tells it from a
    /// stray reply; count_hit's and check_rate's (at a known time) are an integer, so an op of hammer_submit, or one
    /// on a lane with ops already in flight, goes as the batch script with one request, whose reply is an array.
    func singleIsArray(time: Int64?) -> Bool {
        switch self {
        case .countHit: return false
        case let .decision(_, mode, _): return mode != .check || time == nil
        case .getBucket, .inspect, .multi: return true
        }
    }
}

/// A lane op's result. `note`: what a policy did when Redis could not answer (the caller's hammer_last_error).
enum LaneResult {
    case count(Result<Int64, Failure>)
    case decision(Result<Decision, Failure>, note: String?)
    case bucket(Result<BucketInfo?, Failure>)
    case inspection(Result<Inspection, Failure>)
    /// Redis did not run it and said where it belongs (a cluster's MOVED, ASK, TRYAGAIN, CLUSTERDOWN): it is made
    /// again the way that follows redirections (the I/O thread's batches, or the blocking call's own connection).
    case again

    var failure: Failure? {
        switch self {
        case let .count(r): return r.failureValue
        case let .decision(r, _): return r.failureValue
        case let .bucket(r): return r.failureValue
        case let .inspection(r): return r.failureValue
        case .again: return nil
        }
    }
}

struct LaneEntry {
    let op: AsyncOp
    let call: LaneCall
    /// The time the op is decided at (nil: Redis's TIME).
    let time: Int64?
    /// The deny cache's bookkeeping for the answer (hit / peek on the handle's clock).
    let cached: (since: Int64, resets: UInt64)?
    let t0: Int64
    /// When it times out: timeout_ms after it was written, within the op's own deadline.
    let deadlineUs: Int64
    /// A blocking call's: its result goes to Lane.result, not to the completions.
    let blocking: Bool
    /// Sent as the batch calls' script (alone, or in a chunk: see `chunk`), else as the blocking call's own script.
    var batch: Bool
    /// Ops sharing this entry's reply: 1 alone; k > 1 at the head of k consecutive entries written as one call of
    /// the batch script (one reply of k requests); 0 for the others of such a call. Not written yet: -1.
    var chunk = 1
    /// Sent again by EVAL after Redis answered NOSCRIPT.
    var byEval = false
    /// Completed already (its deadline passed): its reply, when it comes, is dropped.
    var done = false
}

/// Reused from one connection to the next (Engine.spare), so that a call allocates nothing.
final class Lane {
    /// Its connection, and whose it is (the handle's pool, or on a cluster the node's): nil once ended, so that a
    /// spare lane keeps neither alive (a node's pool dropped from the map closes its connections as it goes).
    private(set) var conn: Connection!
    private(set) var fd: Int32 = -1
    private(set) var pool: Pool!
    private(set) var node: NodeAddress? = nil
    var fifo: [LaneEntry] = []
    var head = 0
    /// Ops not yet completed.
    var waiting = 0
    /// No op joins it any more (one timed out): it ends when no op waits on it.
    var retired = false
    /// One of its ops timed out after being sent: Redis is slow or gone (the breaker hears of it).
    var timedOut = false
    /// A reply no op asked for arrived (set while replies are taken).
    var outOfStep = false
    /// In hammer_fd's epoll set (once an op of hammer_submit is on it), and watched for writing there.
    var watched = false
    var watchingWrite = false
    /// A blocking call's thread is waiting on its socket (unlocked): no one else reads it meanwhile.
    var driving = false
    /// Ended: its connection is back in its pool.
    var ended = false
    /// The blocking call's result (a blocking call joins an idle lane only, so there is one at a time).
    var result: LaneResult? = nil
    /// The replies of one read, handed over once the read is known to be in step (Engine.pump).
    var matched: [(LaneEntry, UnsafeMutablePointer<redisReply>, Int)] = []
    /// Replies shared by several matched entries (a batch call's), freed once they are handed over.
    var held: [UnsafeMutablePointer<redisReply>] = []

    init(_ conn: Connection, pool: Pool, node: NodeAddress?) {
        self.conn = conn
        self.pool = pool
        start(conn, pool: pool, node: node)
    }

    /// Takes a connection: a fresh lane.
    func start(_ conn: Connection, pool: Pool, node: NodeAddress?) {
        self.conn = conn
        self.pool = pool
        self.node = node
        fd = conn.fd
        fifo.removeAll(keepingCapacity: true)
        head = 0
        waiting = 0
        retired = false
        timedOut = false
        outOfStep = false
        watched = false
        watchingWrite = false
        driving = false
        ended = false
        result = nil
    }

    /// Ended: lets go of its connection and pool.
    func clear() {
        conn = nil
        pool = nil
        node = nil
        fifo.removeAll(keepingCapacity: true)
        head = 0
    }

    var inFlight: Int { fifo.count - head }

    /// The next entry in reply order, taken off the list.
    func pop() -> LaneEntry? {
        guard head < fifo.count else { return nil }
        let e = fifo[head]
        head += 1
        if head == fifo.count {
            fifo.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= fifo.count {
            fifo.removeFirst(head)
            head = 0
        }
        return e
    }
}

extension Handle {
    /// What `op` is on a lane, or nil when it cannot go on one: lanes carry the calls of one script (count_hit, one
    /// limit's decision).
    func laneCall(_ op: AsyncOp) -> LaneCall? {
        if memory != nil { return nil }
        if hashTags, Keys.tagProblem(id: op.idBuffer) != nil { return nil }
        switch op.body {
        case let .count(bucket, nowMs, increment): return .countHit(bucket: bucket, nowMs: nowMs, increment: increment)
        case let .decision(lim, mode, cost, _): return .decision(lim: lim, mode: mode, cost: cost)
        case let .getBucket(bucket): return .getBucket(bucket: bucket)
        case let .inspect(scaleMs, limit): return .inspect(scaleMs: scaleMs, limit: limit)
        case let .multi(set, mode, cost, now):
            // A conflict of the limits is the batch path's to refuse.
            if MultiLimit.conflict(set, now: time(now)) != nil { return nil }
            return .multi(set: set, mode: mode, cost: cost)
        case .delete: return nil
        }
    }

    /// The pool whose connection an op on `id` goes on (on a cluster: the node serving its slot, as far as the map
    /// says), or nil when none is known now.
    func laneTarget(_ id: UnsafeBufferPointer<UInt8>) -> (Pool, NodeAddress?)? { topology.target(id) }

    /// Appends the entry's command to the connection's queue: the batch calls' script with this one request.
    func appendLaneCommand(_ conn: Connection, _ e: LaneEntry) -> Failure? {
        fillLaneArgs(&conn.args, e)
        return conn.append()
    }

    private func fillLaneArgs(_ a: inout Args, _ e: LaneEntry) {
        let id = e.op.idBuffer
        a.reset()
        a.add(e.byEval ? "EVAL" : "EVALSHA")
        func script(_ s: Script) { a.add(e.byEval ? s.source : s.sha) }
        switch e.call {
        case let .countHit(bucket, nowMs, increment):
            if !e.batch {
                script(Scripts.countHit)
                fillCountHit(&a, id: id, bucket: bucket, nowMs: nowMs, increment: increment)
                return
            }
            script(Scripts.countHitMany)
            a.add(Int64(Scripts.countHitManyKeys))
            Keys.appendIdBase(prefix: config.prefix, id: id, tags: hashTags, to: &a.bytes)
            Decimal.append(bucket, to: &a.bytes)
            a.end()
            Keys.appendIdBase(prefix: config.prefix, id: id, tags: hashTags, to: &a.bytes)
            a.bytes.append(contentsOf: Keys.indexSuffix)
            a.end()
            a.add(config.expiryMs)
            a.add(bucket)
            a.add(increment)
            a.add(nowMs)
        case let .decision(lim, mode, cost):
            if !e.batch {
                if mode == .check, let t = e.time {
                    // Hammer's check_rate at a known time: count_hit on the window's bucket (see Handle.limit).
                    let w = idiv(t, lim.periodMs)
                    script(Scripts.checkRate)
                    fillCountHit(&a, id: id, bucket: w, nowMs: t, increment: cost, ttlMs: (w + 1) * lim.periodMs - t + 1000)
                } else {
                    script(Scripts.limiter(lim.algorithm))
                    fillLimiter(&a, id: id, lim, mode: mode.letter, cost: cost, now: e.time)
                }
                return
            }
            script(Scripts.limiterMany)
            a.add(Int64(Keys.decisionKeyCount(lim.algorithm)))
            appendDecisionKeys(&a, id: id, lim, now: e.time)
            a.add(Int64(1))   // one limiter
            a.add(Int64(lim.algorithm.rawValue))
            a.add(mode.letter)
            a.add(lim.limit)
            a.add(lim.periodMs)
            a.add(lim.capacity)
            a.add(Int64(1))   // the request's limiter
            a.add(cost)
            if let t = e.time { a.add(t) } else { a.add("") }
        case let .getBucket(bucket):
            a.reset()
            a.add("HMGET")
            Keys.appendIdBase(prefix: config.prefix, id: id, tags: hashTags, to: &a.bytes)
            Decimal.append(bucket, to: &a.bytes)
            a.end()
            a.add("count")
            a.add("created")
            a.add("updated")
        case let .inspect(scaleMs, limit):
            script(Scripts.fixedWindow)
            fillLimiter(&a, id: id, Limit(algorithm: .fixedWindow, limit: limit, periodMs: scaleMs), mode: "i", cost: 0,
                        now: e.time)
        case let .multi(set, mode, cost):
            let req = MultiRequest(id: id, set: set, mode: mode, cost: cost, now: e.time)
            script(Scripts.decideAll)
            a.add(Int64(Handle.keyCount(req)))
            appendAllKeys(&a, req, now: e.time)
            a.add(mode.letter)
            appendAllFields(&a, req, now: e.time)
        }
    }

    /// Appends one call of the batch script for entries (of one kind: count_hit, or decisions), as Batches.swift
    /// writes a chunk: every request's keys, the chunk's header (the decisions' distinct limiters), every request's
    /// fields.
    func appendLaneChunk(_ conn: Connection, _ es: ArraySlice<LaneEntry>) -> Failure? {
        fillLaneChunk(&conn.args, es)
        return conn.append()
    }

    private func fillLaneChunk(_ a: inout Args, _ es: ArraySlice<LaneEntry>) {
        a.reset()
        let byEval = es.first?.byEval ?? false
        a.add(byEval ? "EVAL" : "EVALSHA")
        let prefix = config.prefix
        if case .countHit? = es.first?.call {
            a.add(byEval ? Scripts.countHitMany.source : Scripts.countHitMany.sha)
            a.add(Int64(Scripts.countHitManyKeys * es.count))
            for e in es {
                guard case let .countHit(bucket, _, _) = e.call else { continue }
                Keys.appendIdBase(prefix: prefix, id: e.op.idBuffer, tags: hashTags, to: &a.bytes)
                Decimal.append(bucket, to: &a.bytes)
                a.end()
                Keys.appendIdBase(prefix: prefix, id: e.op.idBuffer, tags: hashTags, to: &a.bytes)
                a.bytes.append(contentsOf: Keys.indexSuffix)
                a.end()
            }
            a.add(config.expiryMs)
            for e in es {
                guard case let .countHit(bucket, nowMs, increment) = e.call else { continue }
                a.add(bucket)
                a.add(increment)
                a.add(nowMs)
            }
        } else {
            a.add(byEval ? Scripts.limiterMany.source : Scripts.limiterMany.sha)
            var n = 0
            for e in es { if case let .decision(lim, _, _) = e.call { n += Keys.decisionKeyCount(lim.algorithm) } }
            a.add(Int64(n))
            for e in es {
                guard case let .decision(lim, _, _) = e.call else { continue }
                appendDecisionKeys(&a, id: e.op.idBuffer, lim, now: e.time)
            }
            var specs: [LimiterSpec] = []
            var number: [Int] = []
            for e in es {
                guard case let .decision(lim, mode, _) = e.call else { number.append(0); continue }
                let spec = LimiterSpec(lim: lim, mode: mode)
                if let k = specs.firstIndex(of: spec) {
                    number.append(k + 1)
                } else {
                    specs.append(spec)
                    number.append(specs.count)
                }
            }
            LimiterSpec.append(specs, to: &a)
            for (k, e) in es.enumerated() {
                guard case let .decision(_, _, cost) = e.call else { continue }
                a.add(Int64(number[k]))
                a.add(cost)
                if let t = e.time { a.add(t) } else { a.add("") }
            }
        }
    }

    /// Whether `r` has the shape of the entry's reply: Redis's error, or the array or integer its script answers.
    static func isLaneReply(_ r: UnsafeMutablePointer<redisReply>, _ e: LaneEntry) -> Bool {
        if e.chunk > 1 {
            if case .countHit = e.call { return Replies.isUsableBatch(r, elements: e.chunk) }
            return Replies.isUsableBatch(r, elements: 5 * e.chunk)
        }
        switch e.call {
        case .countHit, .decision:
            if e.batch || e.call.singleIsArray(time: e.time) {
                if case .countHit = e.call { return Replies.isUsableBatch(r, elements: 1) }
                return Replies.isUsableBatch(r, elements: 5)
            }
            return r.pointee.type == REDIS_REPLY_ERROR || Replies.integer(r) != nil
        case .getBucket:
            if r.pointee.type == REDIS_REPLY_ERROR { return true }
            guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == 3, let el = r.pointee.element else { return false }
            for i in 0..<3 {
                guard let x = el[i], x.pointee.type == REDIS_REPLY_NIL || Replies.integer(x) != nil else { return false }
            }
            return true
        case .inspect: return Replies.isUsableBatch(r, elements: 4)
        case .multi: return Replies.isUsableBatch(r, elements: 6)
        }
    }

    /// The entry's result from its reply (checked by Replies.isUsableBatch) or failure, counted in the statistics;
    /// a decision Redis could not make is left to the on_error / fallback policy, as for any call.
    /// `at`: the request's first element in a reply shared by the requests of one batch call (Engine.writeDeferred).
    func laneResult(_ e: LaneEntry, _ reply: Result<UnsafeMutablePointer<redisReply>, Failure>, at: Int = 0) -> LaneResult {
        var o = Outcome(calls: 1)
        // A whole-chunk error (a Redis error reply), or the request's element(s).
        let values = reply.flatMap { r -> Result<UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>, Failure> in
            if let f = Replies.error(r) { return .failure(f) }
            guard let el = r.pointee.element else { return .failure(Failure(.protocol, "batch: missing element")) }
            return .success(el + at)
        }
        let result: LaneResult
        switch e.call {
        case .countHit:
            let r: Result<Int64, Failure> = !e.batch ? reply.flatMap { Replies.int64Value($0, what: "count_hit") }
                : values.flatMap { el in
                    el[0].map { Replies.int64Value($0, what: "count_hit") } ?? .failure(Failure(.protocol, "batch: missing element"))
                }
            if let f = r.failureValue { o.fail(f.status) }
            result = .count(r)
        case let .decision(lim, mode, cost):
            var d: Result<Decision, Failure>
            if e.batch {
                d = values.flatMap { Handle.decisionValues($0, lim) }
            } else if mode == .check, let t = e.time {
                let left = (idiv(t, lim.periodMs) + 1) * lim.periodMs - t
                d = reply.flatMap { Replies.int64Value($0, what: "check_rate") }.map {
                    Decision.checkRate(count: $0, limit: lim.limit, increment: cost, leftMs: left)
                }
            } else {
                d = reply.flatMap { Handle.decisionValue($0, lim) }
            }
            var note: String? = nil
            if let denyCache, let cached = e.cached, case let .success(dec) = d {
                denyCache.offer(id: e.op.idBuffer, lim, dec, mode: mode, cost: cost, now: cached.since,
                                resetsBefore: cached.resets)
            }
            if case let .failure(f) = d, f.transient {
                (d, note) = degradeNoted(f, id: e.op.idBuffer, lim, mode: mode, cost: cost, now: e.time)
            }
            o.add(d)
            result = .decision(d, note: note)
        case .getBucket:
            let r: Result<BucketInfo?, Failure> = reply.flatMap {
                Replies.optionalIntegersValue($0, count: 3, what: "get_bucket").map { v in
                    v[0].map { BucketInfo(count: $0, created: v[1] ?? 0, updated: v[2] ?? 0) }
                }
            }
            if let f = r.failureValue { o.fail(f.status) }
            result = .bucket(r)
        case .inspect:
            let r: Result<Inspection, Failure> = reply.flatMap {
                Replies.optionalIntegersValue($0, count: 4, what: "inspect_bucket").flatMap { v in
                    guard let c = v[0], let cr = v[1], let up = v[2], let next = v[3] else {
                        return .failure(Failure(.protocol, "inspect_bucket: expected 4 integers"))
                    }
                    return .success(Inspection(count: c, created: cr, updated: up, msToNext: next))
                }
            }
            if let f = r.failureValue { o.fail(f.status) }
            result = .inspection(r)
        case let .multi(set, mode, cost):
            let req = MultiRequest(id: e.op.idBuffer, set: set, mode: mode, cost: cost, now: e.time)
            var d: Result<Decision, Failure> = reply.flatMap { r in
                if let f = Replies.error(r) { return .failure(f) }
                guard let el = r.pointee.element else { return .failure(Failure(.protocol, "decide_all: missing element")) }
                return Handle.allDecisionValues(el, set)
            }
            if case let .failure(f) = d, f.transient { d = degradeAll(f, req) }
            o.add(d)
            result = .decision(d, note: nil)
        }
        pool.record(o, latencyUs: Clock.monotonicUs() &- e.t0)
        return result
    }

    /// The completion of a lane op of hammer_submit.
    static func completion(_ op: AsyncOp, _ r: LaneResult) -> hammer_completion {
        var c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failure)
        switch r {
        case let .count(.success(n)): c.value = n
        case let .decision(.success(d), _): withUnsafeMutablePointer(to: &c.decision) { put($0, d) }
        case let .bucket(b):
            if case let .getBucket(bucket) = op.body { c.bucket.bucket = bucket }
            if case let .success(info?) = b {
                c.bucket.count = info.count
                c.bucket.created = info.created
                c.bucket.updated = info.updated
                c.bucket.found = 1
            }
        case let .inspection(.success(i)):
            let limit: Int64
            if case let .inspect(_, l) = op.body { limit = l } else { limit = 0 }
            c.inspection.count = i.count
            c.inspection.remaining = limit - min(max(0, i.count), limit)
            c.inspection.ms_to_next_bucket = i.msToNext
            c.inspection.created = i.created
            c.inspection.updated = i.updated
        default: break
        }
        return c
    }
}
