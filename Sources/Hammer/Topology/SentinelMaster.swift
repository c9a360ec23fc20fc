// Sentinel's part of the topology (redis+sentinel://): which master a pool's connections go to. The pool asks for
// the address at each lend and connects there; a connection made under an older generation (Sentinel has named
// another master since) is closed rather than lent. A sentinel is asked when no master is known, when the last
// answer is older than SentinelWatch.pollUs, or after a failure; while one thread asks, the others use what is
// known, or (none known) wait for its answer within their own deadline. No lock is held while a sentinel is asked.
// When no sentinel answers but a master is known, it stays in use (its own failures show).
import Glibc
import HammerCore

final class SentinelMaster {
    private let config: Config
    private let tls: Result<TLSContext, Failure>?
    /// Guards all below; `lock.cond` tells the threads waiting for an answer that the asking one is done.
    private var lock = Lock()
    private var watch: SentinelWatch
    private var master: Endpoint? = nil
    private var generation = 0
    private var checkedUs: Int64 = 0
    /// A thread is asking the sentinels (it alone uses `watch`).
    private var asking = false
    private var failingOverNow = false

    init(_ config: Config, tls: Result<TLSContext, Failure>?) {
        self.config = config
        self.tls = tls
        watch = SentinelWatch(config, tls: tls)
    }

    deinit { watch.close() }

    /// The master to use and its generation, within `deadlineUs`. `waited`: the failure is this call's deadline
    /// passing while another thread asked (it says nothing of Redis).
    func current(until deadlineUs: Int64, waited: inout Bool) -> Result<(Endpoint, Int), Failure> {
        lock.lock()
        while true {
            if let m = master, asking || Clock.monotonicUs() &- checkedUs < SentinelWatch.pollUs {
                let g = generation
                lock.unlock()
                return .success((m, g))
            }
            if !asking { break }
            // No master known and another thread is asking: wait for its answer.
            let left = deadlineUs &- Clock.monotonicUs()
            if left <= 0 {
                lock.unlock()
                waited = true
                return .failure(Failure(.timeout, "timed out waiting for Sentinel to name the master of '\(config.sentinel?.service ?? "")'"))
            }
            lock.wait(until: deadlineUs)
        }
        asking = true
        let known = master
        let w = watch
        lock.unlock()
        let r = w.master(known: known, until: deadlineUs)
        lock.lock()
        defer { lock.unlock() }
        asking = false
        pthread_cond_broadcast(lock.cond)
        switch r {
        case let .success(addr):
            failingOverNow = false
            if addr != master {
                master = addr
                generation &+= 1
            }
            checkedUs = Clock.monotonicUs()
            return .success((addr, generation))
        case let .failure(f):
            failingOverNow = w.failingOver
            if failingOverNow {
                // No writes until the new master is named; the connections to the old one go.
                master = nil
                generation &+= 1
                return .failure(f)
            }
            guard let m = master else { return .failure(f) }
            checkedUs = Clock.monotonicUs()
            return .success((m, generation))
        }
    }

    /// A connection of generation `g` may be lent without asking anyone: its master is the one in use and was
    /// confirmed within SentinelWatch.pollUs, and no thread is asking now.
    func confirmed(_ g: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return master != nil && !asking && g == generation && Clock.monotonicUs() &- checkedUs < SentinelWatch.pollUs
    }

    /// A failure to reach or write to the master (connect, timeout, a closed connection, READONLY and the like):
    /// the next call asks the sentinels again.
    func suspect(_ f: Failure) {
        guard f.status == .connect || f.status == .timeout || (f.status == .redis && f.transient) else { return }
        lock.lock()
        checkedUs = 0
        lock.unlock()
    }

    /// The last answer said a failover is in progress (the breaker then retries within 100 ms).
    var failingOver: Bool {
        lock.lock()
        defer { lock.unlock() }
        return failingOverNow
    }

    /// In a fork's child: the sentinel's connection is the parent's (closed without a byte sent), and a parent's
    /// thread may have held the lock or been asking at the fork: both are left as they are, never touched again.
    func afterFork() {
        watch.abandonAfterFork()
        _ = Unmanaged.passRetained(watch)
        _ = Unmanaged.passRetained(lock)
        lock = Lock()
        watch = SentinelWatch(config, tls: tls)
        master = nil
        checkedUs = 0
        asking = false
        failingOverNow = false
    }
}
