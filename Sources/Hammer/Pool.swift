// The handle's connections: at most pool_size, made lazily, each lent to one thread at a time.
// The lock is held only to take or give back a connection, never across the network.
// After a failed connect, calls fail at once until a back-off (doubling, capped) has passed.
import CHiredis
import Glibc
import HammerCore

enum Clock {
    static func monotonicMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec / 1_000_000)
    }
    static func realtimeMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec / 1_000_000)
    }
}

final class Lock {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    init() {
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }
    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }
    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
}

final class Pool {
    let config: Config
    private let lock = Lock()
    private var idle: [Connection] = []
    private var lent = 0
    // Back-off after failed connects (guarded by lock).
    private var downUntilMs: Int64 = 0
    private var backoffMs: Int64 = 0
    private var lastConnectFailure: Failure? = nil
    static let backoffFirstMs: Int64 = 25
    static let backoffCapMs: Int64 = 1000

    private(set) var reconnects: UInt64 = 0

    init(config: Config) {
        self.config = config
        idle.reserveCapacity(config.poolSize)
    }

    deinit {
        for c in idle { c.close() }
    }

    /// Lends a connected connection to `body`, then takes it back (dropping it if its context broke).
    func with<T>(_ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        let conn: Connection
        switch acquire() {
        case let .failure(f): return .failure(f)
        case let .success(c): conn = c
        }
        let result = body(conn)
        release(conn)
        return result
    }

    private func acquire() -> Result<Connection, Failure> {
        lock.lock()
        var waitedDeadline: Int64 = 0
        while idle.isEmpty && lent >= config.poolSize {
            // All connections are lent: wait for one, at most as long as a call may take.
            let now = Clock.monotonicMs()
            if waitedDeadline == 0 { waitedDeadline = now + config.connectTimeoutMs + config.timeoutMs }
            if now >= waitedDeadline {
                lock.unlock()
                return .failure(Failure(.timeout, "all \(config.poolSize) pooled connections stayed busy; raise pool_size"))
            }
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            let left = waitedDeadline - now
            ts.tv_sec += Int(left / 1000)
            ts.tv_nsec += Int((left % 1000) * 1_000_000)
            if ts.tv_nsec >= 1_000_000_000 { ts.tv_sec += 1; ts.tv_nsec -= 1_000_000_000 }
            pthread_cond_timedwait(lock.cond, lock.mutex, &ts)
        }
        let conn = idle.popLast() ?? Connection()
        lent += 1
        if conn.ctx != nil {
            lock.unlock()
            return .success(conn)
        }
        // Needs a connect: fail fast while the server is known to be down.
        let now = Clock.monotonicMs()
        if now < downUntilMs, let last = lastConnectFailure {
            let wait = downUntilMs - now
            lent -= 1
            idle.insert(conn, at: 0)
            lock.unlock()
            return .failure(Failure(last.status, last.message + " (failing fast; next attempt in \(wait) ms)"))
        }
        lock.unlock()
        if let f = conn.connect(config) {
            lock.lock()
            backoffMs = backoffMs == 0 ? Pool.backoffFirstMs : min(backoffMs * 2, Pool.backoffCapMs)
            downUntilMs = Clock.monotonicMs() + backoffMs
            lastConnectFailure = f
            lent -= 1
            idle.insert(conn, at: 0)
            pthread_cond_signal(lock.cond)
            lock.unlock()
            return .failure(f)
        }
        lock.lock()
        backoffMs = 0
        downUntilMs = 0
        lastConnectFailure = nil
        reconnects &+= 1
        lock.unlock()
        return .success(conn)
    }

    private func release(_ conn: Connection) {
        let broken = conn.isBroken
        if broken { conn.close() }
        lock.lock()
        lent -= 1
        if broken { idle.insert(conn, at: 0) } else { idle.append(conn) }
        pthread_cond_signal(lock.cond)
        lock.unlock()
    }

    /// Number of connections currently open (for tests and stats).
    var openConnections: Int {
        lock.lock()
        defer { lock.unlock() }
        return idle.filter { $0.ctx != nil }.count + lent
    }
}
