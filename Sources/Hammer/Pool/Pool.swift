// The handle's connections: at most pool_size, made lazily, each lent to one thread at a time.
// The lock is held only to take or give back a connection and to count, never across the network.
// A circuit breaker keeps calls calm while Redis is down: after a connect failure or a timeout of a command that was
// sent and had its whole timeout_ms, calls fail at once until a back-off (25 ms doubling to 1 s; to 100 ms when the
// connection was refused) has passed; then one call tries again, and a success closes it. A call that ran out of
// time waiting for a busy pool says nothing about Redis and opens nothing. While open, calls fail with the failure
// that opened it, transient or not: a wrong password stays HAMMER_ERR_REDIS, never answered by on_error.
import CHiredis
import Glibc
import HammerCore
import Synchronization

final class Pool {
    let config: Config
    private var lock = Lock()
    private var idle: [Connection] = []
    private var lent = 0
    /// Every connection made, idle or lent (at most pool_size): a fork's child must close them all.
    private var all: [Connection] = []
    private let epoch = ForkEpoch()
    let gate = SpinGate.shared
    // Circuit breaker (guarded by lock).
    private var downUntilMs: Int64 = 0
    private var backoffMs: Int64 = 0
    private var lastFailure: Failure? = nil
    static let backoffFirstMs: Int64 = 25
    static let backoffCapMs: Int64 = 1000
    static let refusedCapMs: Int64 = 100
    // Statistics (guarded by lock).
    private var stats = Stats()
    /// Calls waiting for a connection (guarded by lock): lendNow() leaves the connection given back to them.
    private var waiters = 0
    /// lazy_connect: hammer_open did not check the server (ServerCheck), so the first connection made does; a
    /// refusal (a server too old) then answers every call, as it would have answered the open (guarded by lock).
    private var serverUnchecked: Bool
    private var refusal: Failure? = nil

    /// The TLS context of a rediss:// handle, made once (or why not: every connect then fails with it).
    let tls: Result<TLSContext, Failure>?
    /// redis+sentinel://: the topology's word on which master the connections go to (SentinelMaster).
    private let sentinel: SentinelMaster?
    /// The handle's watch of idle connections (IdleWatch): the connections that rest are added to it by
    /// watchResting, and taken out as they are lent. `pass`: the watch's last pass (guarded by lock), stamped on
    /// each connection given back.
    private let watch: IdleWatch?
    private var pass = 0

    /// `tls`: a TLS context to share (a cluster's nodes share the handle's); by default one is made from config.
    init(config: Config, tls shared: Result<TLSContext, Failure>?? = nil, watch: IdleWatch? = nil) {
        self.config = config
        self.watch = watch
        self.tls = shared ?? config.tls.map(TLSContext.make)
        self.sentinel = config.sentinel == nil ? nil : SentinelMaster(config, tls: tls)
        self.serverUnchecked = config.lazyConnect
        idle.reserveCapacity(config.poolSize)
    }

    deinit {
        // A child closing the handle it inherited (a worker exiting) must not say goodbye on its parent's
        // connections (a TLS close_notify would end the parent's session): they are abandoned first.
        epoch.check(afterFork)
        for c in idle {
            // Out of the watch first: a copy of the socket a forked child still holds would keep it there.
            if c.watched { watch?.lent(c) }
            c.close()
        }
    }

    /// Lends a connected connection to `body`, then takes it back (dropping it if it broke, or if the call got a
    /// reply it could not use or more than its replies: a connection out of step is never lent again).
    /// Transport failures (connect, timeout) trip the breaker; a success resets it.
    /// `until`: the call's deadline (monotonic us) when it began before this (a cluster's redirected command).
    func with<T>(until: Int64? = nil, _ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        with(since: 0, until: until, outcome: { _ in nil }, body)
    }

    /// As with(_:), and counts the call (started at t0) in the statistics under the lock that takes the
    /// connection back: `outcome` says what the result counts as, or nil when the caller counts it itself.
    func with<T>(since t0: Int64, until: Int64? = nil, outcome: (Result<T, Failure>) -> Outcome?,
                 _ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        epoch.check(afterFork)
        gate.active.add(1, ordering: .relaxed)
        defer { gate.active.subtract(1, ordering: .relaxed) }
        // One deadline for the whole call: the wait for a connection, the connect and every command's writes and
        // reads. Commands get timeout_ms from when they start, within it.
        let start = Clock.monotonicUs()
        let deadline = until ?? start &+ (config.connectTimeoutMs &+ config.timeoutMs) &* 1000
        let conn: Connection
        switch acquire(until: deadline) {
        case let .failure(f):
            let r = Result<T, Failure>.failure(f)
            if let o = outcome(r) { record(o, latencyUs: Clock.monotonicUs() - t0) }
            return r
        case let .success(c): conn = c
        }
        let whole = Clock.monotonicUs() &+ config.timeoutMs &* 1000
        conn.begin(until: min(deadline, whole))
        conn.cutShort = deadline < whole
        var result = body(conn)
        if conn.hasUnread && !conn.isBroken {
            // More than the call's replies (after an answer or a Redis error alike): out of step.
            conn.broken = true
            result = .failure(Failure(.protocol, "Redis sent a reply that no command asked for; the connection is dropped"))
        } else if case let .failure(f) = result, f.status == .protocol {
            // A reply the library could not use: the stream may be out of step, so the connection goes.
            conn.broken = true
        }
        // A command that was sent and outlived its whole timeout_ms: Redis is slow or gone.
        let timedOut = result.failureValue?.status == .timeout && conn.wrote && !conn.cutShort
        release(conn, result.failureValue, trips: timedOut,
                counting: outcome(result).map { ($0, Clock.monotonicUs() - t0) })
        return result
    }

    /// In a child after fork(): the inherited connections are the parent's sockets. Our copies of their file
    /// descriptors are closed without a byte sent, and the pool starts afresh: a new lock (a parent's thread may
    /// have held the old one at the fork, so it is left as it is, never destroyed), no breaker, no statistics.
    private func afterFork() {
        _ = Unmanaged.passRetained(lock)
        lock = Lock()
        for c in all { c.abandon(inUse: !idle.contains { $0 === c }) }
        all.removeAll()
        idle.removeAll()
        lent = 0
        pass = 0   // the child's engine counts its own passes
        downUntilMs = 0
        backoffMs = 0
        lastFailure = nil
        stats = Stats()
        sentinel?.afterFork()   // the same for the sentinel's connection
    }

    /// Milliseconds until the breaker lets a call through (0 when closed).
    var backoffLeftMs: Int64 {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        return max(0, downUntilMs - Clock.monotonicMs())
    }

    /// A connection for a call that must end by `deadlineUs` (monotonic): the wait for a free one and the connect
    /// both count. Its callers ran the fork check.
    private func acquire(until deadlineUs: Int64) -> Result<Connection, Failure> {
        // A call memory:// does not answer in the process must never reach a Redis at the default address.
        if config.memory { return .failure(Failure(.internal, "memory://: this call has no in-process answer")) }
        lock.lock()
        if let r = refusal {
            lock.unlock()
            return .failure(r)
        }
        let start = Clock.monotonicMs()
        if start < downUntilMs, let last = lastFailure {
            let wait = downUntilMs - start
            lock.unlock()
            return .failure(Failure(last.status, last.message + " (failing fast; next attempt in \(wait) ms)",
                                    transient: last.transient))
        }
        let deadline = deadlineUs / 1000
        let waits = idle.isEmpty && lent >= config.poolSize
        if waits { waiters += 1 }
        while idle.isEmpty && lent >= config.poolSize {
            // All connections are lent: wait for one, at most until the call's deadline.
            let now = Clock.monotonicMs()
            if now >= deadline {
                waiters -= 1
                lock.unlock()
                return .failure(Failure(.timeout, "all \(config.poolSize) pooled connections stayed busy; raise pool_size",
                                        transient: true))
            }
            lock.wait(until: deadlineUs)
        }
        if waits { waiters -= 1 }
        let conn: Connection
        if let c = idle.popLast() {
            conn = c
            if c.watched { watch?.lent(c) }
        } else {
            conn = Connection(spinUs: config.spinUs, gate: gate)
            all.append(conn)
        }
        lent += 1
        lock.unlock()
        var target = config
        var generation = 0
        if let sentinel {
            var waited = false
            switch sentinel.current(until: deadlineUs, waited: &waited) {
            case let .failure(f):
                release(conn, f, connectFailed: true, trips: !waited)
                return .failure(f)
            case let .success((addr, g)):
                if conn.isOpen && conn.generation != g { conn.close() }   // a connection to an old master
                target.endpoint = addr
                target.sentinel = nil
                generation = g
            }
        }
        if conn.isOpen {
            // Every time, however recently it came back: a reply nobody asked for may arrive at any moment, and one
            // that is there now must not be read as the next command's reply (one recv that does not wait).
            if !conn.isStale { return .success(conn) }
            conn.close()
        }
        // The connect gets connect_timeout_ms within the call's deadline; one the deadline cut short, or that never
        // began (the deadline passed while this call waited), says nothing about Redis.
        let now = Clock.monotonicUs()
        let whole = now &+ config.connectTimeoutMs &* 1000
        if now >= deadlineUs {
            let f = Failure(.timeout, "the call's deadline passed before it could connect to Redis")
            release(conn, f, trips: false, tried: false)
            return .failure(f)
        }
        if let f = conn.connect(target, tls: tls, until: min(deadlineUs, whole)) {
            release(conn, f, connectFailed: true, trips: f.status != .timeout || deadlineUs >= whole)
            return .failure(f)
        }
        conn.generation = generation
        lock.lock()
        stats.reconnects &+= 1
        let check = serverUnchecked
        lock.unlock()
        if check, case let .failure(f) = ServerCheck.run(conn, target) {
            if !f.transient && f.status == .redis {
                lock.lock()
                refusal = f
                lock.unlock()
            }
            release(conn, f, connectFailed: true, trips: f.transient)
            return .failure(f)
        } else if check {
            lock.lock()
            serverUnchecked = false
            lock.unlock()
        }
        return .success(conn)
    }

    /// An open idle connection lent at once, or nil when that would mean waiting or talking to anyone (none idle and
    /// open, the breaker open, the server not checked yet, Sentinel's master due for a look-up): the completions
    /// engine then hands the op to its I/O thread, which may wait within the op's deadline.
    func lendNow() -> Connection? {
        epoch.check(afterFork)
        lock.lock()
        guard refusal == nil, !serverUnchecked, waiters == 0, Clock.monotonicMs() >= downUntilMs,
              let conn = idle.last, conn.isOpen else {
            lock.unlock()
            return nil
        }
        if let sentinel, !sentinel.confirmed(conn.generation) {
            lock.unlock()
            return nil
        }
        idle.removeLast()
        if conn.watched { watch?.lent(conn) }
        lent += 1
        lock.unlock()
        if conn.isStale {
            conn.close()
            release(conn, nil, trips: false, tried: false)
            return nil
        }
        return conn
    }

    /// The engine's deadline thread, at its pass `p`: the open idle connections that have rested since before its
    /// previous pass go into the watch (one epoll_ctl each, under the lock so that none is lent meanwhile); those
    /// given back since rest a while first, so a connection lent call after call costs no system call. True when
    /// some still wait to be watched (the thread comes back soon for them).
    func watchResting(pass p: Int) -> Bool {
        epoch.check(afterFork)
        guard let watch else { return false }
        lock.lock()
        defer { lock.unlock() }
        pass = p
        var waiting = false
        for c in idle where c.isOpen && !c.watched {
            if c.restPass < p &- 1 { watch.idle(c) } else { waiting = true }
        }
        return waiting
    }

    /// The engine's deadline thread saw bytes (or the end) on an idle connection's descriptor `fd`: that connection,
    /// if it is still idle here, is checked as a lend checks it and closed if anything came (a stray reply or the
    /// server's close), before any request is written on it.
    /// False when no idle connection of this pool has that descriptor.
    @discardableResult
    func checkIdle(fd: Int32) -> Bool {
        epoch.check(afterFork)
        lock.lock()
        guard let k = idle.lastIndex(where: { $0.isOpen && $0.fd == fd }) else {
            lock.unlock()
            return false
        }
        let conn = idle.remove(at: k)
        if conn.watched { watch?.lent(conn) }
        lent += 1
        lock.unlock()
        if conn.isStale { conn.close() }
        release(conn, nil, trips: false, tried: false)
        return true
    }

    /// Takes back a connection lendNow() lent: `failure` and `trips` as for a call's (release()).
    func giveBack(_ conn: Connection, _ failure: Failure?, trips: Bool) {
        epoch.check(afterFork)
        release(conn, failure, trips: trips, tried: true)
    }

    /// `connectFailed`: connecting (or finding the master) failed. `trips`: the failure opens the breaker. `tried`:
    /// Redis was talked to (a success then closes the breaker). Its callers ran the fork check.
    private func release(_ conn: Connection, _ failure: Failure?, connectFailed: Bool = false, trips: Bool,
                         tried: Bool = true, counting: (Outcome, Int64)? = nil) {
        let broken = conn.isBroken
        if broken { conn.close() }
        if let sentinel, tried, let f = failure { sentinel.suspect(f) }
        let failingOver = sentinel?.failingOver ?? false
        lock.lock()
        lent -= 1
        if broken { idle.insert(conn, at: 0) } else { idle.append(conn) }
        conn.restPass = pass
        // Connect failures and timeouts of sent commands trip the breaker; a connection that broke under a command
        // does not (the server may simply have closed it), nor does an answer from Redis, nor a call that ran out
        // of time before its command was sent.
        if let f = failure, trips {
            // A refused connection (nothing listens: Redis restarting) costs no wait to retry, so its back-off stops
            // at 100 ms and a restarted Redis is used again within that; timeouts back off to 1 s.
            // So does a server that answered it cannot serve yet (LOADING after a restart).
            let answered = f.status == .redis && f.transient
            // And a Sentinel failover in progress: the new master is used within 100 ms of being named.
            let cap = connectFailed && (conn.refused || answered || failingOver) ? Pool.refusedCapMs : Pool.backoffCapMs
            backoffMs = backoffMs == 0 ? Pool.backoffFirstMs : min(backoffMs * 2, cap)
            downUntilMs = Clock.monotonicMs() + backoffMs
            lastFailure = f
        } else if tried, backoffMs != 0, failure.map({ $0.status != .connect && $0.status != .timeout }) ?? true {
            backoffMs = 0
            downUntilMs = 0
            lastFailure = nil
        }
        if let (o, latency) = counting { add(o, latencyUs: latency) }
        pthread_cond_signal(lock.cond)
        lock.unlock()
    }

    /// Adds one call's outcome and latency (nil: refused before any work, e.g. a bad argument) to the statistics.
    func record(_ o: Outcome, latencyUs: Int64?) {
        epoch.check(afterFork)
        lock.lock()
        add(o, latencyUs: latencyUs)
        lock.unlock()
    }

    /// record() with the lock held.
    private func add(_ o: Outcome, latencyUs: Int64?) {
        stats.calls &+= o.calls
        stats.allowed &+= o.allowed
        stats.denied &+= o.denied
        stats.degraded &+= o.degraded
        for i in 1..<Status.limit { stats.errors[i] &+= o.errors[i] }
        if let latencyUs { stats.latency.record(UInt64(max(0, latencyUs))) }
    }

    func snapshot() -> (Stats, Int) {
        epoch.check(afterFork)
        lock.lock()
        defer { lock.unlock() }
        return (stats, idle.filter { $0.isOpen }.count + lent)
    }
}

extension Result where Failure == HammerCore.Failure {
    var failureValue: HammerCore.Failure? {
        if case let .failure(f) = self { return f }
        return nil
    }
}
