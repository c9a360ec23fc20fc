// fork(): a child process that goes on using its parent's handle must never read or write the parent's sockets
// (both would read each other's replies). pthread_atfork's child handler counts forks; each object with
// per-process state (a pool, the local fallback) compares the count with its own on use and, in a child, resets.
import Glibc
import Synchronization

enum Fork {
    /// Forks this process has been the child of (0 in the process that loaded the library).
    static let generation = Atomic<Int>(0)

    /// Installs the handler once per process (the first pool does).
    static let installed: Bool = {
        pthread_atfork(nil, nil, {
            // Only atomics here: the child has one thread, and whatever other threads held is held forever.
            Fork.generation.add(1, ordering: .releasing)
            SpinGate.shared.resetAfterFork()
        }) == 0
    }()
}

/// The fork generation an object's state belongs to. `check` runs the object's reset once in a child, before any
/// caller of that child goes on; the parent pays one atomic load per call.
final class ForkEpoch {
    private static let resetting = -1
    private let seen: Atomic<Int>

    init() {
        _ = Fork.installed
        seen = Atomic(Fork.generation.load(ordering: .acquiring))
    }

    @inline(__always)
    func check(_ reset: () -> Void) {
        let g = Fork.generation.load(ordering: .acquiring)
        if g != seen.load(ordering: .acquiring) { slow(g, reset) }
    }

    private func slow(_ g: Int, _ reset: () -> Void) {
        while true {
            let s = seen.load(ordering: .acquiring)
            if s == g { return }
            if s != ForkEpoch.resetting,
               seen.compareExchange(expected: s, desired: ForkEpoch.resetting, ordering: .acquiringAndReleasing).exchanged {
                reset()
                seen.store(g, ordering: .releasing)
                return
            }
            sched_yield()   // another thread of the child is resetting
        }
    }
}
