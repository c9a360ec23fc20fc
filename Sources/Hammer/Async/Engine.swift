// The completions engine of one handle: a queue of submitted ops, one I/O thread that takes everything queued and
// runs it as pipelined batches (Dispatch.swift), a deadline thread that completes ops whose deadline passed, queued
// (unsent) or in flight (their late results dropped), so that no op waits on another op's round trip past its own
// deadline, and the completions with the eventfd that is readable while some wait. No lock is held across network I/O: the I/O thread takes the queue
// under the lock and sends it after unlocking, so submit and drain never wait for Redis.
import CHammer
import CHiredis
import Glibc
import HammerCore

final class Engine {
    let handle: Handle
    let fd: Int32
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
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if fd < 0 { return nil }
        self.handle = handle
        self.fd = fd
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
        queue.append(contentsOf: ops)
        if !ops.isEmpty {
            if ioIdle { pthread_cond_signal(lock.cond) }
        }
        if !refused.isEmpty { complete(refused) }
        return nil
    }

    /// Moves up to `max` completions to `out`.
    func drain(_ out: UnsafeMutablePointer<hammer_completion>, _ max: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let k = min(max, done.count - doneHead)
        if k == 0 { return 0 }
        done.withUnsafeBufferPointer { b in
            out.update(from: b.baseAddress! + doneHead, count: k)
        }
        doneHead += k
        pending -= k
        if doneHead == done.count {
            done.removeAll(keepingCapacity: done.capacity <= 4096)
            doneHead = 0
            var v: UInt64 = 0
            _ = read(fd, &v, 8)   // nothing waits: the descriptor is no longer readable
        } else if doneHead > 4096 && doneHead * 2 > done.count {
            done.removeFirst(doneHead)
            doneHead = 0
        }
        return k
    }

    func pendingCount() -> Int {
        lock.lock()
        defer { lock.unlock() }
        return pending
    }

    /// Adds completions (the lock held) and makes the descriptor readable if it was not.
    private func complete(_ cs: [hammer_completion]) {
        if cs.isEmpty { return }
        let wasEmpty = done.count == doneHead
        done.append(contentsOf: cs)
        if wasEmpty {
            var one: UInt64 = 1
            _ = write(fd, &one, 8)
        }
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
            // With nothing pending, a wait of one op's whole deadline: an op submitted meanwhile has its deadline
            // after that wait ends, so submit never needs to wake this thread (one wake-up per op saved).
            let first = [queuedFirst, flightFirst].compactMap({ $0 }).min() ?? now &+ e.span
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
        close(fd)
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
