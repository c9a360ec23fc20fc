import HammerCore
import XCTest

final class CPUsTests: XCTestCase {
    func testBudgetIsTheSmallestKnownBound() {
        XCTAssertEqual(CPUs.budget(online: 64, affinity: nil, quota: nil), 64)
        XCTAssertEqual(CPUs.budget(online: 64, affinity: 8, quota: nil), 8)
        XCTAssertEqual(CPUs.budget(online: 64, affinity: 8, quota: 2), 2)
        XCTAssertEqual(CPUs.budget(online: 64, affinity: 1, quota: 2), 1)
        XCTAssertEqual(CPUs.budget(online: 0, affinity: 0, quota: 0), 1)
    }

    func testAffinityMaskFromStatus() {
        XCTAssertEqual(CPUs.fromStatus("Name:\tx\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n"), 2)
        XCTAssertEqual(CPUs.fromStatus("Cpus_allowed:\tffffffff,ffffffff\n"), 64)
        XCTAssertEqual(CPUs.fromStatus("Cpus_allowed:\t00000000,00000001\n"), 1)
        XCTAssertNil(CPUs.fromStatus("Cpus_allowed:\t0\n"))
        XCTAssertNil(CPUs.fromStatus("no such line"))
    }

    func testQuotasRoundUp() {
        XCTAssertEqual(CPUs.fromQuota(200_000, period: 100_000), 2)
        XCTAssertEqual(CPUs.fromQuota(150_000, period: 100_000), 2)
        XCTAssertEqual(CPUs.fromQuota(50_000, period: 100_000), 1)
        XCTAssertNil(CPUs.fromQuota(-1, period: 100_000))           // v1: no quota
        XCTAssertNil(CPUs.fromQuota(100, period: 0))
        XCTAssertEqual(CPUs.fromQuota(Int64.max, period: 1), Int.max)
        XCTAssertEqual(CPUs.fromCpuMax("150000 100000\n"), 2)
        XCTAssertNil(CPUs.fromCpuMax("max 100000\n"))
        XCTAssertNil(CPUs.fromCpuMax("garbage"))
        XCTAssertNil(CPUs.fromCpuMax(""))
    }

    func testV2PathAndAncestorsTheSmallestWins() {
        let files = ["/cg/kube/pod1/ctr/cpu.max": "max 100000\n",
                     "/cg/kube/pod1/cpu.max": "200000 100000\n",
                     "/cg/kube/cpu.max": "800000 100000\n"]
        XCTAssertEqual(CPUs.quota(procSelfCgroup: "0::/kube/pod1/ctr\n", root: "/cg", read: { files[$0] }), 2)
        XCTAssertNil(CPUs.quota(procSelfCgroup: "0::/\n", root: "/cg", read: { files[$0] }))
        // A cgroup namespace shows "/": the container's own cpu.max is at the root.
        XCTAssertEqual(CPUs.quota(procSelfCgroup: "0::/\n", root: "/cg", read: { $0 == "/cg/cpu.max" ? "300000 100000" : nil }), 3)
    }

    func testV1CpuController() {
        let files = ["/cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "150000\n",
                     "/cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
                     "/cg/cpu,cpuacct/docker/cpu.cfs_quota_us": "-1\n",
                     "/cg/cpu,cpuacct/docker/cpu.cfs_period_us": "100000\n"]
        let text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
        XCTAssertEqual(CPUs.quota(procSelfCgroup: text, root: "/cg", read: { files[$0] }), 2)
        XCTAssertNil(CPUs.quota(procSelfCgroup: "4:cpu,cpuacct:/other\n", root: "/cg", read: { files[$0] }))
        XCTAssertNil(CPUs.quota(procSelfCgroup: "garbage without colons\n\n::\n", root: "/cg", read: { files[$0] }))
    }
}
