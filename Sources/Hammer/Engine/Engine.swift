// The completions engine of one handle: ops submitted, the threads that run them, and the completions with the
// descriptor that is readable while some wait. An op of one command (every kind but delete_buckets) goes on a lane
// of its pool (Lane.swift): the submitting thread writes it on a pooled connection and the draining thread reads
// its reply, so an op alone in flight costs no thread hand-off. Other ops, and those beyond a lane's depth or met
// with no idle connection, queue for an I/O worker, which takes everything queued and runs it as pipelined batches
// (Dispatch.swift). There is a worker per pool the topology names (a single Redis's, or each cluster node's; at
// most maxWorkers, then shared), so a node that is slow or gone, or a connect, delays only the ops of its own pool.
// A deadline thread completes ops whose deadline passed, queued (unsent), in a batch or on a lane (their late
// results dropped), so that no op waits on another op's round trip past its own deadline; it waits in epoll on the
// pools' idle connections (IdleWatch), and closes one the moment bytes or the server's close arrive on it. hammer_fd is an epoll set
// of the eventfd (readable while completions wait) and the lanes' sockets (readable when a reply comes). No lock is
// held across a wait: a worker runs its batch unlocked, and a lane only writes and reads what its socket takes or
// holds now.
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
    /// Lanes with ops in flight; `active` has the one of each pool that new ops join (the others are retired, see
    /// Lane); `spare`, lanes ended, kept for the next ones.
    var lanes: [Lane] = []
    var active: [ObjectIdentifier: Lane] = [:]
    var spare: [Lane] = []
    /// Blocking calls wait here (with `lock`) for their result, or for their lane's socket to be free to watch.
    let waitCond = Lock.makeCond()
    /// The idle connections' epoll set (IdleWatch), and an eventfd in it that wakes the deadline thread at stop.
    private let watchFd: Int32
    private let wakeFd: Int32
    /// Guards everything here, the lanes and the workers' queues; never held across a wait on the network.
    let lock = Lock()

    /// The I/O workers, and which one serves each pool (by the pool's identity); ops whose node the cluster's map
    /// does not name now (a failover under way) have a worker of their own, `unrouted`, so that their waits for a
    /// new map never hold a healthy node's ops.
    private var workers: [Worker] = []
    private var workerOf: [ObjectIdentifier: Int] = [:]
    private var unrouted: Int? = nil
    static let maxWorkers = 16
    /// How often the deadline thread passes while idle connections wait to be watched: one rests up to twice that
    /// before it is.
    static let restUs: Int64 = 50_000
    var done: [hammer_completion] = []
    private var doneHead = 0
    /// Ops submitted and not yet drained.
    private var pending = 0
    private var started = false
    var closing = false
    /// hammer_shutdown: no op is taken any more; those in flight complete as they come.
    private var shuttingDown = false
    static let shutDown = Failure(.invalid, "not sent: the handle is shutting down (hammer_shutdown)")
    /// connect_timeout_ms + timeout_ms in us: every op's deadline from its submit.
    let span: Int64
    private var threads: [pthread_t] = []

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
        let watchFd = epoll_create1(Int32(EPOLL_CLOEXEC))
        let wakeFd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        var wake = epoll_event()
        wake.events = EPOLLIN.rawValue
        wake.data.fd = wakeFd
        if watchFd < 0 || wakeFd < 0 || epoll_ctl(fd, EPOLL_CTL_ADD, efd, &ev) != 0
            || epoll_ctl(watchFd, EPOLL_CTL_ADD, wakeFd, &wake) != 0 {
            let e = errno
            for d in [efd, fd, watchFd, wakeFd] where d >= 0 { close(d) }
            errno = e
            return nil
        }
        self.handle = handle
        self.fd = fd
        self.efd = efd
        self.watchFd = watchFd
        self.wakeFd = wakeFd
        span = (handle.config.connectTimeoutMs &+ handle.config.timeoutMs) &* 1000
    }

    deinit {
        Lock.freeCond(waitCond)
    }

    /// Queues checked ops and completes refused ones; starts the threads at the first submit.
    func submit(_ ops: [AsyncOp], refused: [hammer_completion]) -> Failure? {
        lock.lock()
        defer { lock.unlock() }
        if closing { return Failure(.invalid, "hammer_submit: the handle is closing") }
        if shuttingDown { return Failure(.invalid, "hammer_submit: the handle is shutting down (hammer_shutdown)") }
        if !started, !ops.isEmpty {
            if let f = start() { return f }
        }
        pending += ops.count + refused.count
        var cs = refused
        var written: [Lane] = []
        for op in ops {
            if let call = handle.laneCall(op) {
                switch onLane(op, call, deferWrite: ops.count > 1) {
                case let .taken(lane):
                    if ops.count > 1 && !written.contains(where: { $0 === lane }) { written.append(lane) }
                    continue
                case let .completed(r):
                    cs.append(Handle.completion(op, r))   // from the deny cache
                    op.release()
                    continue
                case .declined: break
                }
            }
            if let f = enqueue(op) {
                cs.append(hammer_completion(tag: op.tag, kind: op.kind, failure: f))
                op.release()
            }
        }
        // The ops of one submit on one lane go out together: those of one script as one call of it, in one write.
        for lane in written where !lane.ended { writeDeferred(lane) }
        complete(cs)
        signal()   // a lane that failed as it was written completed its ops directly
        return nil
    }

    /// An op of hammer_submit that a lane gave back (Redis redirected it) goes to an I/O worker (the lock held).
    func requeue(_ op: AsyncOp) {
        if let f = shuttingDown ? Engine.shutDown : enqueue(op) {
            // Redis did not run it (it redirected it): it completes unsent, counted as a call that failed.
            var o = Outcome(calls: 1)
            o.fail(f.status)
            handle.pool.record(o, latencyUs: nil)
            complete([hammer_completion(tag: op.tag, kind: op.kind, failure: f)])
            op.release()
        }
    }

    /// Queues `op` for the worker of its pool, started if new (the lock held); a failure when no thread could be
    /// started for it.
    private func enqueue(_ op: AsyncOp) -> Failure? {
        var k: Int
        if let (pool, _) = handle.laneTarget(op.idBuffer) {
            let key = ObjectIdentifier(pool)
            if let i = workerOf[key] {
                k = i
            } else {
                // Pools come and go with the cluster's nodes: the table is rebuilt rather than left to grow.
                if workerOf.count >= 4 * Engine.maxWorkers { workerOf.removeAll(keepingCapacity: true) }
                let nodes = workers.count - (unrouted == nil ? 0 : 1)
                if nodes < Engine.maxWorkers {
                    k = workers.count
                } else {
                    k = workerOf.count % workers.count
                    if k == unrouted { k = (k + 1) % workers.count }
                }
                if k == workers.count, let f = addWorker() { return f }
                workerOf[key] = k
            }
        } else if let u = unrouted {
            k = u
        } else {
            k = workers.count
            if let f = addWorker() { return f }
            unrouted = k
        }
        let w = workers[k]
        w.queue.append(op)
        if w.idle { pthread_cond_signal(w.cond) }
        return nil
    }

    /// Starts one more worker (the lock held).
    private func addWorker() -> Failure? {
        let w = Worker()
        if let f = spawn({ e in Engine.workerMain(e, w) }) { return f }
        workers.append(w)
        return nil
    }

    /// hammer_shutdown: later submits are refused, the ops still queued complete now as HAMMER_ERR_INVALID unsent,
    /// and those in flight (on a lane or in a worker's batch) complete as they would have, within their deadlines;
    /// so the caller drains until nothing is pending, every op completed exactly once, then closes.
    func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        if shuttingDown || closing { return }
        shuttingDown = true
        var cs: [hammer_completion] = []
        for w in workers {
            for op in w.queue[w.head...] {
                cs.append(hammer_completion(tag: op.tag, kind: op.kind, failure: Engine.shutDown))
                op.release()
            }
            w.queue.removeAll()
            w.head = 0
        }
        // Counted as calls that failed, as queued ops that time out are.
        var o = Outcome(calls: UInt64(cs.count))
        for _ in cs { o.fail(.invalid) }
        if !cs.isEmpty { handle.pool.record(o, latencyUs: nil) }
        complete(cs)
    }

    /// Reads the lanes' replies that have come, then moves up to `max` completions to `out`.
    func drain(_ out: UnsafeMutablePointer<hammer_completion>, _ max: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        if !lanes.isEmpty {
            // A lane a blocking call watches is that call's to read.
            for lane in lanes where !lane.driving { pump(lane) }
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
    func signal() {
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

    // MARK: threads

    private func start() -> Failure? {
        if let f = spawn(Engine.timerMain) {
            // The engine stays unusable.
            closing = true
            return f
        }
        started = true
        handle.idleWatch.activate(watchFd)
        return nil
    }

    /// Starts a thread running `body` (the lock held).
    private func spawn(_ body: @escaping (Engine) -> Void) -> Failure? {
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
            return Failure(rc == EAGAIN ? .nomem : .internal, "hammer_submit: no I/O thread could be started")
        }
        threads.append(tid)
        return nil
    }

    private final class ThreadStart {
        let engine: Engine
        let body: (Engine) -> Void
        init(_ e: Engine, _ b: @escaping (Engine) -> Void) { engine = e; body = b }
    }

    /// A worker's loop: takes everything queued for it, runs it unlocked, completes it; until the handle closes.
    private static func workerMain(_ e: Engine, _ w: Worker) {
        e.lock.lock()
        while true {
            while w.queued == 0 && !e.closing {
                w.idle = true
                pthread_cond_wait(w.cond, e.lock.mutex)
                w.idle = false
            }
            if e.closing { break }
            let ops = Array(w.queue[w.head...])
            w.queue.removeAll(keepingCapacity: true)
            w.head = 0
            w.inflight = ops
            w.inflightDone = [Bool](repeating: false, count: ops.count)
            w.inflightNext = 0
            e.lock.unlock()
            let results = Dispatch.run(e.handle, ops)
            e.lock.lock()
            // Released here, under the lock: until now the deadline thread may read an op in flight.
            for op in ops { op.release() }
            var cs: [hammer_completion] = []
            cs.reserveCapacity(results.count)
            for (i, c) in results where !w.inflightDone[i] { cs.append(c) }
            w.inflight = []
            w.inflightDone = []
            w.inflightNext = 0
            e.complete(cs)
        }
        e.lock.unlock()
    }

    /// Completes the ops whose deadline passed: queued ones unsent, and those the I/O thread is running (their
    /// results dropped when they come). Both lists are in submit order, so each one's oldest deadline is first.
    private static func timerMain(_ e: Engine) {
        var events = [epoll_event](repeating: epoll_event(), count: 16)
        var seen: [Int32] = []
        var pass = 0
        var resting = false   // idle connections wait to be watched at a coming pass
        e.lock.lock()
        while !e.closing {
            let now = Clock.monotonicUs()
            var first = e.lanes.isEmpty ? Int64.max : (e.expireLanes(now: now) ?? Int64.max)
            var cs: [hammer_completion] = []
            for w in e.workers {
                w.expire(e.handle, now: now, into: &cs)
                first = min(first, w.firstDeadline() ?? Int64.max)
            }
            e.complete(cs)
            // Never longer than timeout_ms: an op submitted meanwhile has at least that (a lane op has timeout_ms
            // from its write), so submit never needs to wake this thread (a wake-up per op saved). Later ops have
            // later deadlines: nothing else needs to wake this wait before it ends.
            first = min(first, now &+ e.handle.config.timeoutMs &* 1000)
            if resting { first = min(first, now &+ Engine.restUs) }
            let waitMs = Int32(clamping: max(1, (first &- now &+ 999) / 1000))
            e.lock.unlock()
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(e.watchFd, $0.baseAddress, 16, waitMs) }
            seen.removeAll(keepingCapacity: true)
            for i in 0..<max(0, Int(n)) where events[i].data.fd != e.wakeFd { seen.append(events[i].data.fd) }
            let pools = e.handle.topology.pools
            // Bytes on an idle connection: its pool checks it as a lend would, and closes it. One no pool claims
            // (its pool left the map) leaves the set, or its readiness would wake this thread again and again.
            for fd in seen where !pools.contains(where: { $0.checkIdle(fd: fd) }) {
                _ = epoll_ctl(e.watchFd, EPOLL_CTL_DEL, fd, nil)
            }
            pass &+= 1
            resting = false
            for p in pools where p.watchResting(pass: pass) { resting = true }
            e.lock.lock()
        }
        e.lock.unlock()
    }

    /// Stops the threads (after the batch in flight, which its deadlines bound), drops what is queued or waits to
    /// be drained, and closes the descriptor.
    func stop() {
        lock.lock()
        closing = true
        for w in workers { pthread_cond_broadcast(w.cond) }
        if started { handle.idleWatch.activate(-1) }
        var one: UInt64 = 1
        _ = write(wakeFd, &one, 8)
        let ts = threads
        lock.unlock()
        for t in ts { pthread_join(t, nil) }
        for w in workers {
            for op in w.queue[w.head...] { op.release() }
            w.queue = []
            w.head = 0
        }
        // The ops on lanes were written: Redis runs them; their replies go with the connections.
        lock.lock()
        for lane in lanes { failLane(lane, Failure(.invalid, "the handle is closing")) }
        lock.unlock()
        close(fd)
        close(efd)
        close(watchFd)
        close(wakeFd)
    }
}

/// An I/O worker's state, guarded by the engine's lock: its queue, and the ops it is running (in submit order, so
/// their deadlines ascend: the deadline thread completes those whose deadline passes first, and their late results
/// are dropped).
final class Worker {
    var queue: [AsyncOp] = []
    var head = 0
    var inflight: [AsyncOp] = []
    var inflightDone: [Bool] = []
    var inflightNext = 0
    /// Waiting on `cond` for ops.
    var idle = false
    let cond = Lock.makeCond()

    deinit { Lock.freeCond(cond) }

    var queued: Int { queue.count - head }

    /// The earliest deadline of an op queued or running and not completed yet (skipping, for good, the running ops
    /// already completed at the front).
    func firstDeadline() -> Int64? {
        while inflightNext < inflight.count && inflightDone[inflightNext] { inflightNext += 1 }
        let q: Int64? = queued > 0 ? queue[head].deadlineUs : nil
        let f: Int64? = inflightNext < inflight.count ? inflight[inflightNext].deadlineUs : nil
        return [q, f].compactMap({ $0 }).min()
    }

    /// Completes the ops whose deadline passed: queued ones unsent, and running ones (their results dropped when
    /// their batch returns, which counts them).
    func expire(_ h: Handle, now: Int64, into cs: inout [hammer_completion]) {
        while head < queue.count && queue[head].deadlineUs <= now {
            let op = queue[head]
            cs.append(Dispatch.timedOut(h, op, Dispatch.notSent, record: true))
            op.release()
            head += 1
        }
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
        while inflightNext < inflight.count && inflight[inflightNext].deadlineUs <= now {
            let k = inflightNext
            if !inflightDone[k] {
                inflightDone[k] = true
                cs.append(Dispatch.timedOut(h, inflight[k], Dispatch.noReply, record: false))
            }
            inflightNext += 1
        }
    }
}

/// A handle's engine, made at the first blocking call that can use a lane, hammer_fd or hammer_submit. In a fork()ed child the parent's engine (its
/// threads gone, its lock perhaps held forever) is left alone and a fresh one is made.
final class EngineSlot {
    private var lock = Lock()
    private var engine: Engine? = nil
    private var closed = false
    /// hammer_shutdown came before any engine was made: the one made later starts shut down.
    private var submitsEnded = false
    private let epoch = ForkEpoch()

    private func afterFork() {
        // Never touched again in this process: neither freed (its deinit would destroy a lock another thread of
        // the parent may have held at the fork) nor stopped (its threads do not exist here).
        if let e = engine { _ = Unmanaged.passRetained(e) }
        _ = Unmanaged.passRetained(lock)
        engine = nil
        submitsEnded = false   // the child's engine is a fresh one
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
        if submitsEnded { e.shutdown() }
        return .success(e)
    }

    /// hammer_shutdown: the engine shuts down (Engine.shutdown), or, none made yet, the one made later will.
    func endSubmits() {
        epoch.check(afterFork)
        lock.lock()
        let e = engine
        if e == nil { submitsEnded = true }
        lock.unlock()
        e?.shutdown()
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
