// Idle connections watched. Once a handle's engine runs (its first hammer_submit), every open connection resting in
// one of the handle's pools (idle since before the deadline thread's previous pass; passes come every 50 ms while
// connections wait to join, else within timeout_ms) is in an epoll set that the engine's deadline thread waits on. So bytes that arrive while nothing is in flight (a stray
// reply, Redis closing the connection) close it then, not only at its next lend, which checks too. A connection lent
// call after call is never added (adding and removing it at each call would cost two system calls a call), and a
// handle that only makes blocking calls has no such thread at all.
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

    /// Watches `conn` (the pool's lock held, the connection idle and open).
    func idle(_ conn: Connection) {
        let ep = current()
        guard ep >= 0, conn.isOpen else { return }
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
        ev.data.fd = conn.fd
        if epoll_ctl(ep, EPOLL_CTL_ADD, conn.fd, &ev) == 0 { conn.watched = true }
    }

    /// Stops watching `conn` as it is lent (the pool's lock held).
    func lent(_ conn: Connection) {
        conn.watched = false
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
