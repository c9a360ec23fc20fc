// How many CPUs a process may use: the fewest of the machine's, its affinity mask's and its cgroups' CPU quotas
// (a container limited to 2 CPUs on a 64-core host polls on 2, not 32). Pure: the library passes the files' text.

public enum CPUs {
    /// The budget: online CPUs, narrowed by the affinity count and the quota when known; at least 1.
    public static func budget(online: Int, affinity: Int?, quota: Int?) -> Int {
        var n = max(1, online)
        if let a = affinity, a > 0 { n = min(n, a) }
        if let q = quota, q > 0 { n = min(n, q) }
        return n
    }

    /// CPUs in the affinity mask of /proc/<pid>/status ("Cpus_allowed:\tff,ffffffff"), or nil.
    public static func fromStatus(_ text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("Cpus_allowed:") {
            var n = 0
            for c in line.dropFirst("Cpus_allowed:".count) {
                guard let v = c.hexDigitValue else { continue }
                n += v.nonzeroBitCount
            }
            return n > 0 ? n : nil
        }
        return nil
    }

    /// CPUs from a quota per period, rounded up (1.5 CPUs may keep 2 threads busy part of the time); nil without one.
    public static func fromQuota(_ quota: Int64, period: Int64) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        let (q, r) = quota.quotientAndRemainder(dividingBy: period)
        let n = r > 0 ? q + 1 : q
        return Int(clamping: max(1, n))
    }

    /// cgroup v2's cpu.max: "max 100000" (no quota) or "150000 100000".
    public static func fromCpuMax(_ text: String) -> Int? {
        let f = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard f.count >= 2, f[0] != "max", let q = Int64(f[0]), let p = Int64(f[1]) else { return nil }
        return fromQuota(q, period: p)
    }

    /// The smallest quota along the process's cgroup path and its ancestors, from /proc/self/cgroup's text:
    /// v2 ("0::/a/b" -> root/a/b/cpu.max, root/a/cpu.max, root/cpu.max) and v1 ("4:cpu,cpuacct:/a" ->
    /// root/cpu,cpuacct/a/cpu.cfs_quota_us and cpu.cfs_period_us, and up). `read` returns a file's text or nil.
    public static func quota(procSelfCgroup: String, root: String, read: (String) -> String?) -> Int? {
        var best: Int? = nil
        func take(_ n: Int?) { if let n { best = min(best ?? n, n) } }
        for line in procSelfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            let controllers = parts[1].split(separator: ",")
            for dir in ancestors(String(parts[2])) {
                if parts[0] == "0" && parts[1].isEmpty {
                    take(read(root + dir + "cpu.max").flatMap(fromCpuMax))
                } else if controllers.contains("cpu") {
                    let base = root + "/" + parts[1] + dir
                    guard let q = read(base + "cpu.cfs_quota_us").flatMap({ Int64(trimmed($0)) }),
                          let p = read(base + "cpu.cfs_period_us").flatMap({ Int64(trimmed($0)) }) else { continue }
                    take(fromQuota(q, period: p))
                }
            }
        }
        return best
    }

    /// "/a/b" -> ["/a/b/", "/a/", "/"]: the cgroup and each ancestor, as directory prefixes.
    static func ancestors(_ path: String) -> [String] {
        var parts = path.split(separator: "/").map(String.init)
        var out: [String] = []
        while true {
            out.append("/" + parts.map { $0 + "/" }.joined())
            if parts.isEmpty { break }
            parts.removeLast()
        }
        return out
    }

    static func trimmed(_ s: String) -> Substring {
        s.split(whereSeparator: { $0 == "\n" || $0 == " " }).first ?? ""
    }
}
