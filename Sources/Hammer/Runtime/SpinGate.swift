// The process's polling budget: how many calls may busy-poll for their replies at once.
import Glibc
import HammerCore
import Synchronization

/// Busy-polling for replies. A thread that sleeps in read() while a nearby Redis answers pays a wake-up (tens of
/// microseconds on a virtual machine) on top of the round trip; polling the socket for up to spin_us first saves
/// it. Polling takes a CPU, so a call polls only while the process's calls in progress (all handles) are no more
/// than the CPUs the process may use, and while fewer than half of them (at least one) already poll.
final class SpinGate {
    let maxActive: Int
    let maxSpinners: Int
    /// Calls in progress (between taking a connection and giving it back).
    let active = Atomic<Int>(0)
    let spinners = Atomic<Int>(0)

    init(cpus: Int) {
        maxActive = max(1, cpus)
        maxSpinners = max(1, cpus / 2)
    }

    /// A child process has none of its parent's calls in progress (fork() copied the counters mid-flight).
    func resetAfterFork() {
        active.store(0, ordering: .relaxed)
        spinners.store(0, ordering: .relaxed)
    }

    /// The CPUs this process may use, read once: its affinity mask and its cgroup's CPU quota, the smaller.
    static let cpus: Int = CPUBudget.read()
    /// The process's gate, shared by every handle.
    static let shared = SpinGate(cpus: cpus)
}

/// Reads what bounds the process's CPUs: the affinity mask (Cpus_allowed, as sched_getaffinity gives it), and the CPU
/// quota of its cgroup and every ancestor
/// (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us). The arithmetic is CPUs in HammerCore.
enum CPUBudget {
    static func read(root: String = "/sys/fs/cgroup") -> Int {
        let online = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let quota = readFile("/proc/self/cgroup").map { CPUs.quota(procSelfCgroup: $0, root: root, read: readFile) }
        let affinity = readFile("/proc/thread-self/status").flatMap(CPUs.fromStatus)
        return CPUs.budget(online: online, affinity: affinity, quota: quota ?? nil)
    }

    /// A small file's text (at most 4 KiB), or nil.
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        var n = 0
        while n < buf.count {
            let r = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + n, $0.count - n) }
            if r < 0 && errno == EINTR { continue }
            if r <= 0 { break }
            n += r
        }
        return String(decoding: buf[..<n], as: UTF8.self)
    }
}
