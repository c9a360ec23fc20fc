// A lane: one pooled connection on which the thread that submits writes single ops itself, and whose replies the
// thread that drains reads, so that an op costs no hand-off to the I/O thread: the caller's loop wakes on the socket
// (hammer_fd is an epoll set holding it). The ops in flight form a first-in-first-out list and replies are matched
// in order: an op whose deadline passes completes as TIMEOUT but keeps its place to absorb its late reply; a reply
// that cannot be matched or read fails every op in flight on the lane, resends none, and closes the connection; a
// NOSCRIPT answer (Redis did not run it) is the one resend, by EVAL. Guarded by the engine's lock: nothing here
// waits (only what the socket takes or holds now is written or read).
import CHammer
import CHiredis
import Glibc
import HammerCore

struct LaneEntry {
    let op: AsyncOp
    /// The time the op is decided at (nil: Redis's TIME).
    let time: Int64?
    /// The deny cache's bookkeeping for the answer (hit / peek on the handle's clock).
    let cached: (since: Int64, resets: UInt64)?
    let t0: Int64
    /// Sent again by EVAL after Redis answered NOSCRIPT.
    var byEval = false
    /// Completed already (its deadline passed): its reply, when it comes, is dropped.
    var done = false
}

final class Lane {
    let conn: Connection
    let fd: Int32
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
    var watchingWrite = false

    init(_ conn: Connection) {
        self.conn = conn
        fd = conn.fd
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

/// What a lane's op is, decided at submit.
enum LaneCall {
    case countHit(bucket: Int64, nowMs: Int64, increment: Int64)
    case decision(lim: Limit, mode: Mode, cost: Int64)
}

extension Handle {
    /// Whether `op` can go on a lane: the single-Redis calls of one script (count_hit, one limit's decision).
    func laneCall(_ op: AsyncOp) -> LaneCall? {
        if router != nil || memory != nil { return nil }
        if tags, Keys.tagProblem(id: op.idBuffer) != nil { return nil }
        switch op.body {
        case let .count(bucket, nowMs, increment): return .countHit(bucket: bucket, nowMs: nowMs, increment: increment)
        case let .decision(lim, mode, cost, _): return .decision(lim: lim, mode: mode, cost: cost)
        default: return nil
        }
    }

    /// Appends the op's command to the connection's queue: the batch calls' script with this one request (a reply
    /// whose shape is not that request's then shows the stream out of step, see Engine.pump).
    func appendLaneCommand(_ conn: Connection, _ e: LaneEntry) -> Failure? {
        guard let call = laneCall(e.op) else { return Failure(.internal, "hammer_submit: not a lane op") }
        let id = e.op.idBuffer
        var a = conn.args
        a.reset()
        a.add(e.byEval ? "EVAL" : "EVALSHA")
        switch call {
        case let .countHit(bucket, nowMs, increment):
            let script = Scripts.countHitMany
            a.add(e.byEval ? script.source : script.sha)
            a.add(Int64(Scripts.countHitManyKeys))
            Keys.appendIdBase(prefix: config.prefix, id: id, tags: tags, to: &a.bytes)
            Decimal.append(bucket, to: &a.bytes)
            a.end()
            Keys.appendIdBase(prefix: config.prefix, id: id, tags: tags, to: &a.bytes)
            a.bytes.append(contentsOf: Keys.indexSuffix)
            a.end()
            a.add(config.expiryMs)
            a.add(bucket)
            a.add(increment)
            a.add(nowMs)
        case let .decision(lim, mode, cost):
            let script = Scripts.limiterMany
            a.add(e.byEval ? script.source : script.sha)
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
        }
        conn.args = a
        return conn.append()
    }

    /// Elements of a lane op's reply.
    func laneWidth(_ op: AsyncOp) -> Int {
        if case .decision? = laneCall(op) { return 5 }
        return 1
    }

    /// The op's completion from its reply (or failure), counted in the statistics; a decision Redis could not
    /// make is left to the on_error / fallback policy, as for the blocking call.
    func laneCompletion(_ e: LaneEntry, _ reply: Result<UnsafeMutablePointer<redisReply>, Failure>) -> hammer_completion {
        let op = e.op
        var o = Outcome(calls: 1)
        var c: hammer_completion
        // A whole-chunk error (a Redis error reply), or the request's element(s).
        let values = reply.flatMap { r -> Result<UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>, Failure> in
            if let f = Replies.error(r) { return .failure(f) }
            guard let el = r.pointee.element else { return .failure(Failure(.protocol, "batch: missing element")) }
            return .success(el)
        }
        switch laneCall(op) {
        case .countHit?:
            let r: Result<Int64, Failure> = values.flatMap { el in
                el[0].map { Replies.int64Value($0, what: "count_hit") } ?? .failure(Failure(.protocol, "batch: missing element"))
            }
            if let f = r.failureValue { o.fail(f.status) }
            c = hammer_completion(tag: op.tag, kind: op.kind, failure: r.failureValue)
            if case let .success(n) = r { c.value = n }
        case let .decision(lim, mode, cost)?:
            var d: Result<Decision, Failure> = values.flatMap { Handle.decisionValues($0, lim) }
            if let denyCache, let cached = e.cached, case let .success(dec) = d {
                denyCache.offer(id: op.idBuffer, lim, dec, mode: mode, cost: cost, now: cached.since,
                                resetsBefore: cached.resets)
            }
            if case let .failure(f) = d, f.transient {
                d = degrade(f, id: op.idBuffer, lim, mode: mode, cost: cost, now: e.time)
            }
            o.add(d)
            c = hammer_completion(tag: op.tag, kind: op.kind, failure: d.failureValue)
            if case let .success(dec) = d { withUnsafeMutablePointer(to: &c.decision) { put($0, dec) } }
        case nil:
            o.fail(.internal)
            c = hammer_completion(tag: op.tag, kind: op.kind, failure: Failure(.internal, "hammer_submit: not a lane op"))
        }
        pool.record(o, latencyUs: Clock.monotonicUs() &- e.t0)
        return c
    }
}
