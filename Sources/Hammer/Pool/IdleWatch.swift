// Idle connections watched. Once a handle's engine runs (its first hammer_submit), every open connection resting in
// one of the handle's pools is in an epoll set that the engine's deadline thread waits on. So bytes that arrive
// while nothing is in flight (a stray reply, Redis closing the connection) close it at once, not only at its next
// lend, which checks too. A handle that only makes blocking calls has no such thread, and its pools skip the
// epoll_ctl calls.
import CHiredis   // sys/epoll.h (shim.h)
import Glibc
import Synchronization

final class IdleWatch {
    private let epoch = ForkEpoch()
    /// The engine's epoll set for idle connections, or -1 while none runs.
    private let set = Atomic<Int32>(-1)

    /// In a fork's child the set is the parent engine's: never touched here; the child's engine brings its own.
    private func afterFork() { set.store(-1, ordering: .releasing) }

    func activate(_ epollFd: Int32) {
        epoch.check(afterFork)
        set.store(epollFd, ordering: .releasing)
    }

    /// Called by the pool, under its lock, as `conn` goes idle (open) and as it is lent.
    @inline(__always)
    func idle(_ conn: Connection) {
        let ep = current()
        guard ep >= 0, conn.isOpen else { return }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        ev.data.fd = conn.fd
        _ = epoll_ctl(ep, EPOLL_CTL_ADD, conn.fd, &ev)
    }

    @inline(__always)
    func lent(_ conn: Connection) {
        let ep = current()
        guard ep >= 0, conn.isOpen else { return }
        _ = epoll_ctl(ep, EPOLL_CTL_DEL, conn.fd, nil)
    }

    @inline(__always)
    private func current() -> Int32 {
        epoch.check(afterFork)
        return set.load(ordering: .acquiring)
    }
}
