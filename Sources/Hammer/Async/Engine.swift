// The completions engine of one handle: ops submitted, the threads that run them, and the completions with the
// descriptor that is readable while some wait. A single-script op (count_hit, one limit's decision) on a single Redis
// goes on a lane (Lane.swift): the submitting thread writes it on a pooled connection and the draining thread reads
// its reply, so an op alone in flight costs no thread hand-off. Other ops, and those beyond a lane's depth or met
// with no idle connection, queue for the I/O thread, which takes everything queued and runs it as pipelined batches
// (Dispatch.swift). A deadline thread completes ops whose deadline passed, queued (unsent), in a batch or on a lane
// (their late results dropped), so that no op waits on another op's round trip past its own deadline. hammer_fd is
// an epoll set of the eventfd (readable while completions wait) and the lanes' sockets (readable when a reply
// comes). No lock is held across a wait: the I/O thread runs its batch unlocked, and a lane only writes and reads
// what its socket takes or holds now.
import CHammer
import CHiredis
import Glibc
import HammerCore

final class Engine {
    let handle: Handle
    /// hammer_fd: the epoll set of `efd` and the lanes' sockets.
    let fd: Int32
    /// Readable while completions wait (`signalled`).
    private let efd: Int32
    private var signalled = false
    /// Lanes with ops in flight; `active` is the one new ops join (the others are retired, see Lane).
    private var lanes: [Lane] = []
    private var active: Lane? = nil
    /// Ops in flight on a lane before more go to the I/O thread's batches, which share one script call.
    static let laneDepth: Int = {
        if let s = getenv("HAMMER_LANE_DEPTH"), let n = Int(String(cString: s)), n >= 0 { return min(n, 1024) }
        return 8
    }()
    private let lock = Lock()                 // lock.cond: the I/O thread waits there for ops
    private let timerCond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    private var queue: [AsyncOp] = []
    private var queueHead = 0
    private var done: [hammer_completion] = []
    private var doneHead = 0
    /// Ops submitted and not yet drained.
    private var pending = 0
    private var started = false
    private var closing = false
    private var ioIdle = false
    /// connect_timeout_ms + timeout_ms in us: every op's deadline from its submit.
    let span: Int64
    private var threads: [pthread_t] = []
    /// The ops the I/O thread is running (in submit order, so their deadlines ascend): the deadline thread
    /// completes those whose deadline passes first, and their late results are dropped.
    private var inflight: [(tag: UInt64, kind: Int32, deadlineUs: Int64)] = []
    private var inflightDone: [Bool] = []
    private var inflightNext = 0

    init?(_ handle: Handle) {
        let efd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if efd < 0 { return nil }
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 {
            let e = errno
            close(efd)
            errno = e
            return nil
        }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        if epoll_ctl(fd, EPOLL_CTL_ADD, efd, &ev) != 0 {
            let e = errno
            close(efd)
            close(fd)
            errno = e
            return nil
        }
        self.handle = handle
        self.fd = fd
        self.efd = efd
        span = (handle.config.connectTimeoutMs &+ handle.config.timeoutMs) &* 1000
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(timerCond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(timerCond)
        timerCond.deallocate()
    }

    private var queued: Int { queue.count - queueHead }

    /// Queues checked ops and completes refused ones; starts the threads at the first submit.
    func submit(_ ops: [AsyncOp], refused: [hammer_completion]) -> Failure? {
        lock.lock()
        defer { lock.unlock() }
        if closing { return Failure(.invalid, "hammer_submit: the handle is closing") }
        if !started, !ops.isEmpty {
            if let f = start() { return f }
        }
        pending += ops.count + refused.count
        var cs = refused
        var queued = 0
        for op in ops {
            if let call = handle.laneCall(op) {
                switch onLane(op, call) {
                case .taken: continue
                case let .completed(c): cs.append(c); continue
                case .declined: break
                }
            }
            queue.append(op)
            queued += 1
        }
        if queued > 0 && ioIdle { pthread_cond_signal(lock.cond) }
        complete(cs)
        return nil
    }

    /// Reads the lanes' replies that have come, then moves up to `max` completions to `out`.
    func drain(_ out: UnsafeMutablePointer<hammer_completion>, _ max: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if !lanes.isEmpty {
            for lane in lanes { pump(lane) }
        }
        let k = min(max, done.count - doneHead)
        if k > 0 {
            done.withUnsafeBufferPointer { b in
                out.update(from: b.baseAddress! + doneHead, count: k)
            }
            doneHead += k
            pending -= k
        }
        if doneHead == done.count {
            done.removeAll(keepingCapacity: done.capacity <= 4096)
            doneHead = 0
        } else if doneHead > 4096 && doneHead * 2 > done.count {
            done.removeFirst(doneHead)
            doneHead = 0
        }
        signal()
        return k
    }

    /// The eventfd readable exactly while completions wait.
    private func signal() {
        let waiting = doneHead < done.count
        if waiting == signalled { return }
        if waiting {
            var one: UInt64 = 1
            _ = write(efd, &one, 8)
        } else {
            var v: UInt64 = 0
            _ = read(efd, &v, 8)
        }
        signalled = waiting
    }

    func pendingCount() -> Int {
        lock.lock()
        defer { lock.unlock() }
        return pending
    }

    /// Adds completions (the lock held) and makes the descriptor readable if it was not.
    private func complete(_ cs: [hammer_completion]) {
        if cs.isEmpty { return }
        done.append(contentsOf: cs)
        signal()
    }

    // MARK: lanes (the lock held)

    private enum LaneTake {
        case taken
        case completed(hammer_completion)
        case declined
    }

    /// Puts `op` on the active lane (a new one if there is none and an open connection is idle), or answers it from
    /// the deny cache; declined when the lane is full or no connection is at hand without waiting.
    private func onLane(_ op: AsyncOp, _ call: LaneCall) -> LaneTake {
        let h = handle
        let lane: Lane
        if let a = active, !a.retired {
            if a.inFlight >= Engine.laneDepth { return .declined }
            lane = a
        } else {
            guard let conn = h.pool.lendNow() else { return .declined }
            let l = Lane(conn)
            var ev = epoll_event()
            ev.events = EPOLLIN.rawValue
            if epoll_ctl(fd, EPOLL_CTL_ADD, l.fd, &ev) != 0 {
                h.pool.giveBack(conn, nil, trips: false)
                return .declined
            }
            lanes.append(l)
            active = l
            lane = l
        }
        var time: Int64? = nil
        var cached: (since: Int64, resets: UInt64)? = nil
        if case let .decision(lim, mode, cost) = call, case let .decision(_, _, _, now) = op.body {
            time = h.time(now)
            if let cache = h.denyCache, now == nil, mode != .check {
                let cnow = DenyCache.now(h.config, sent: time)
                let (d, resets) = cache.answer(id: op.idBuffer, lim, mode: mode, cost: cost, now: cnow)
                if let d {
                    var c = hammer_completion(tag: op.tag, kind: op.kind, failure: nil)
                    withUnsafeMutablePointer(to: &c.decision) { put($0, d) }
                    op.release()
                    if lane.inFlight == 0 { endLane(lane, nil, trips: false) }
                    return .completed(c)
                }
                cached = (DenyCache.since(h.config, cnow), resets)
            }
        }
        let e = LaneEntry(op: op, time: time, cached: cached, t0: Clock.monotonicUs())
        lane.fifo.append(e)
        lane.waiting += 1
        if let f = h.appendLaneCommand(lane.conn, e) {
            failLane(lane, f)
        } else {
            flush(lane)
        }
        return .taken
    }

    /// Sends what the lane's socket takes now, and watches it for writing while the rest waits.
    private func flush(_ lane: Lane) {
        switch lane.conn.sendSome() {
        case let .failure(f): failLane(lane, f)
        case let .success(events):
            let all = events == 0
            if all == lane.watchingWrite {
                var ev = epoll_event()
                ev.events = EPOLLIN.rawValue | (all ? 0 : EPOLLOUT.rawValue)
                _ = epoll_ctl(fd, EPOLL_CTL_MOD, lane.fd, &ev)
                lane.watchingWrite = !all
            }
        }
    }

    /// Sends what waits, takes the replies that have come (each to the op at the head of the list), and ends the
    /// lane once no op waits on it.
    private func pump(_ lane: Lane) {
        let h = handle
        if lane.conn.unsent {
            flush(lane)
            if !lane.conn.isOpen { return }
        }
        var cs: [hammer_completion] = []
        var resend = false
        let f = lane.conn.receiveSome { r in
            defer { freeReplyObject(r) }
            if lane.outOfStep { return }
            guard var e = lane.pop() else { lane.outOfStep = true; return }
            if !Replies.isUsableBatch(r, elements: h.laneWidth(e.op)) {
                // Not this request's reply: the stream is out of step, and every op on it fails (failLane).
                lane.outOfStep = true
                if !e.done {
                    cs.append(h.laneCompletion(e, .failure(Engine.outOfStep)))
                    lane.waiting -= 1
                    e.op.release()
                }
                return
            }
            if e.done { return }
            if !e.byEval && Connection.isNoScript(r) {
                // Redis did not run it (a flushed or restarted server): the one resend, by EVAL, which loads it.
                e.byEval = true
                lane.fifo.append(e)
                if h.appendLaneCommand(lane.conn, e) == nil { resend = true; return }
                _ = lane.fifo.popLast()
                cs.append(h.laneCompletion(e, .failure(Failure(.internal, "hammer_submit: EVAL could not be queued"))))
            } else {
                cs.append(h.laneCompletion(e, .success(r)))
            }
            lane.waiting -= 1
            e.op.release()
        }
        done.append(contentsOf: cs)
        if let f {
            failLane(lane, f)
        } else if lane.outOfStep {
            failLane(lane, Engine.outOfStep)
        } else if resend {
            flush(lane)
        }
        if lane.conn.isOpen && lane.waiting == 0 {
            if lane.timedOut {
                endLane(lane, overdue, trips: true)
            } else if lane.inFlight == 0 {
                endLane(lane, nil, trips: false)
            }
        }
    }

    private static let outOfStep = Failure(.protocol, "Redis sent a reply that no command asked for, or not the one asked for; the connection is dropped")

    private var overdue: Failure {
        Failure(.timeout, "hammer_submit: no reply within the op's deadline (connect_timeout_ms + timeout_ms)")
    }

    /// Fails every op waiting on the lane (none is resent: each may have run) and closes its connection.
    private func failLane(_ lane: Lane, _ f: Failure) {
        var cs: [hammer_completion] = []
        while let e = lane.pop() {
            if !e.done {
                cs.append(handle.laneCompletion(e, .failure(f)))
                e.op.release()
            }
        }
        lane.waiting = 0
        done.append(contentsOf: cs)
        lane.conn.close()
        endLane(lane, f, trips: false)
    }

    /// Takes the lane out of the set and gives its connection back (closed unless it ended in step).
    private func endLane(_ lane: Lane, _ f: Failure?, trips: Bool) {
        _ = epoll_ctl(fd, EPOLL_CTL_DEL, lane.fd, nil)
        if lane.inFlight > 0 || f != nil { lane.conn.close() }
        lanes.removeAll { $0 === lane }
        if active === lane { active = nil }
        handle.pool.giveBack(lane.conn, f, trips: trips)
    }

    /// The deadline thread's part: lane ops past their deadline complete as TIMEOUT (counted in the statistics)
    /// and keep their place; their lane takes no new op, and ends once no op waits on it. The earliest deadline
    /// still waiting, if any.
    private func expireLanes(now: Int64) -> Int64? {
        var first: Int64? = nil
        for lane in lanes {
            var expired = 0
            for k in lane.head..<lane.fifo.count where !lane.fifo[k].done {
                let d = lane.fifo[k].op.deadlineUs
                if d > now {
                    first = min(first ?? d, d)
                    continue
                }
                lane.fifo[k].done = true
                let op = lane.fifo[k].op
                done.append(hammer_completion(tag: op.tag, kind: op.kind, failure: Failure(
                    .timeout, "hammer_submit: no reply within the op's deadline (connect_timeout_ms + timeout_ms); it may have run")))
                op.release()
                expired += 1
            }
            if expired == 0 { continue }
            lane.waiting -= expired
            lane.retired = true
            lane.timedOut = true
            if active === lane { active = nil }
            handle.recordExpired(expired)
        }
        for lane in lanes where lane.timedOut && lane.waiting == 0 {
            // Nobody waits for what is still on its way: the connection goes, with its late replies.
            endLane(lane, overdue, trips: true)
        }
        for lane in lanes where lane.timedOut && lane.conn.unsent {
            // Not written in time: what is left of it must not go out after its op was told it timed out.
            failLane(lane, Failure(.timeout, "hammer_submit: not sent within the op's deadline; the connection is dropped"))
        }
        signal()
        return first
    }

    // MARK: threads

    private func start() -> Failure? {
        for body in [Engine.ioMain, Engine.timerMain] {
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setstacksize(&attr, 1 << 20)
            var tid = pthread_t()
            let box = Unmanaged.passRetained(ThreadStart(self, body))
            let rc = pthread_create(&tid, &attr, { raw in
                let s = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
                s.body(s.engine)
                return nil
            }, box.toOpaque())
            pthread_attr_destroy(&attr)
            if rc != 0 {
                box.release()
                // The thread already started stops at once (closing), and the engine stays unusable.
                closing = true
                pthread_cond_broadcast(lock.cond)
                return Failure(rc == EAGAIN ? .nomem : .internal, "hammer_submit: no I/O thread could be started")
            }
            threads.append(tid)
        }
        started = true
        return nil
    }

    private final class ThreadStart {
        let engine: Engine
        let body: (Engine) -> Void
        init(_ e: Engine, _ b: @escaping (Engine) -> Void) { engine = e; body = b }
    }

    /// Takes everything queued, runs it unlocked, completes it; until the handle closes.
    private static func ioMain(_ e: Engine) {
        e.lock.lock()
        while true {
            while e.queued == 0 && !e.closing {
                e.ioIdle = true
                pthread_cond_wait(e.lock.cond, e.lock.mutex)
                e.ioIdle = false
            }
            if e.closing { break }
            let ops = Array(e.queue[e.queueHead...])
            e.queue.removeAll(keepingCapacity: true)
            e.queueHead = 0
            e.inflight = ops.map { ($0.tag, $0.kind, $0.deadlineUs) }
            e.inflightDone = [Bool](repeating: false, count: ops.count)
            e.inflightNext = 0
            e.lock.unlock()
            let results = Dispatch.run(e.handle, ops)
            e.lock.lock()
            var cs: [hammer_completion] = []
            cs.reserveCapacity(results.count)
            for (i, c) in results where !e.inflightDone[i] { cs.append(c) }
            e.inflight = []
            e.inflightDone = []
            e.inflightNext = 0
            e.complete(cs)
        }
        e.lock.unlock()
    }

    /// Completes the ops whose deadline passed: queued ones unsent, and those the I/O thread is running (their
    /// results dropped when they come). Both lists are in submit order, so each one's oldest deadline is first.
    private static func timerMain(_ e: Engine) {
        e.lock.lock()
        while !e.closing {
            while e.inflightNext < e.inflight.count && e.inflightDone[e.inflightNext] { e.inflightNext += 1 }
            let queuedFirst: Int64? = e.queued > 0 ? e.queue[e.queueHead].deadlineUs : nil
            let flightFirst: Int64? = e.inflightNext < e.inflight.count ? e.inflight[e.inflightNext].deadlineUs : nil
            let now = Clock.monotonicUs()
            let laneFirst = e.lanes.isEmpty ? nil : e.expireLanes(now: now)
            // With nothing pending, a wait of one op's whole deadline: an op submitted meanwhile has its deadline
            // after that wait ends, so submit never needs to wake this thread (one wake-up per op saved).
            let first = [queuedFirst, flightFirst, laneFirst].compactMap({ $0 }).min() ?? now &+ e.span
            if now < first {
                // Later ops have later deadlines: nothing needs to wake this wait before it ends.
                var ts = timespec(tv_sec: Int(first / 1_000_000), tv_nsec: Int(first % 1_000_000) * 1000)
                pthread_cond_timedwait(e.timerCond, e.lock.mutex, &ts)
                continue
            }
            var cs: [hammer_completion] = []
            while e.queueHead < e.queue.count && e.queue[e.queueHead].deadlineUs <= now {
                let op = e.queue[e.queueHead]
                cs.append(Dispatch.expired(op))
                op.release()
                e.queueHead += 1
            }
            if e.queueHead == e.queue.count { e.queue.removeAll(keepingCapacity: true); e.queueHead = 0 }
            var late = 0
            while e.inflightNext < e.inflight.count && e.inflight[e.inflightNext].deadlineUs <= now {
                let k = e.inflightNext
                if !e.inflightDone[k] {
                    e.inflightDone[k] = true
                    cs.append(Dispatch.overdue(tag: e.inflight[k].tag, kind: e.inflight[k].kind))
                    late += 1
                }
                e.inflightNext += 1
            }
            e.handle.recordExpired(cs.count - late)
            e.complete(cs)
        }
        e.lock.unlock()
    }

    /// Stops the threads (after the batch in flight, which its deadlines bound), drops what is queued or waits to
    /// be drained, and closes the descriptor.
    func stop() {
        lock.lock()
        closing = true
        pthread_cond_broadcast(lock.cond)
        pthread_cond_broadcast(timerCond)
        let ts = threads
        lock.unlock()
        for t in ts { pthread_join(t, nil) }
        for op in queue[queueHead...] { op.release() }
        queue = []
        queueHead = 0
        // The ops on lanes were written: Redis runs them; their replies go with the connections.
        lock.lock()
        for lane in lanes {
            while let e = lane.pop() { if !e.done { e.op.release() } }
            lane.waiting = 0
            endLane(lane, Failure(.invalid, "the handle is closing"), trips: false)
        }
        lock.unlock()
        close(fd)
        close(efd)
    }
}

extension Handle {
    /// Ops that expired in the queue count as failed requests, as a batch's timeouts do.
    func recordExpired(_ n: Int) {
        if n == 0 { return }
        var o = Outcome(calls: UInt64(n))
        o.errors[Int(Status.timeout.rawValue)] &+= UInt64(n)
        pool.record(o, latencyUs: nil)
    }
}

/// A handle's engine, made at the first hammer_fd / hammer_submit. In a fork()ed child the parent's engine (its
/// threads gone, its lock perhaps held forever) is left alone and a fresh one is made.
final class EngineSlot {
    private var lock = Lock()
    private var engine: Engine? = nil
    private var closed = false
    private let epoch = ForkEpoch()

    private func afterFork() {
        // Never touched again in this process: neither freed (its deinit would destroy a lock another thread of
        // the parent may have held at the fork) nor stopped (its threads do not exist here).
        if let e = engine { _ = Unmanaged.passRetained(e) }
        _ = Unmanaged.passRetained(lock)
        engine = nil
        lock = Lock()
    }

    /// The engine, made if needed; nil after close or when no eventfd could be made.
    func get(_ h: Handle) -> Result<Engine, Failure> {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        if closed { return .failure(Failure(.invalid, "the handle is closed")) }
        if let engine { return .success(engine) }
        guard let e = Engine(h) else {
            return .failure(Failure(errno == ENOMEM ? .nomem : .internal, "eventfd failed: errno \(errno)"))
        }
        engine = e
        return .success(e)
    }

    /// The engine if one was made (for drain and pending: no need to make one).
    func existing() -> Engine? {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        return engine
    }

    func shutdown() {
        epoch.check(afterFork)
        lock.lock()
        let e = engine
        engine = nil
        closed = true
        lock.unlock()
        e?.stop()
    }
}
