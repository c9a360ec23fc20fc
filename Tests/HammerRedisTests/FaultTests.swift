// Faults in the middle of a multi-thread hit storm: a restart, a freeze (SIGSTOP/SIGCONT), CLIENT KILL,
// SCRIPT FLUSH, DEBUG SLEEP, maxmemory. For each: which calls failed and with which status, that none took longer
// than its bound, and that afterwards Redis counts every hit that returned OK exactly once: no loss, and nothing
// beyond the calls whose fate was in doubt (sent, then the connection failed), since hammer never resends a hit.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

struct StormResult {
    var ok = 0
    var failed: [Int32: Int] = [:]
    var worstMs: Int64 = 0
    var inDoubt: Int { failed.values.reduce(0, +) }
}

final class FaultTests: XCTestCase {
    /// `threads` threads call count_hit on one bucket until `seconds` have passed; `inject` runs meanwhile.
    func storm(_ h: OpaquePointer?, id: String, threads: Int = 6, seconds: Double = 1.5,
               inject: () -> Void) -> StormResult {
        nonisolated(unsafe) let results = UnsafeMutablePointer<StormResult>.allocate(capacity: threads)
        results.initialize(repeating: StormResult(), count: threads)
        defer { results.deinitialize(count: threads); results.deallocate() }
        let deadline = Clock.monotonicMs() + Int64(seconds * 1000)
        let group = DispatchGroup()
        nonisolated(unsafe) let h = h
        for t in 0..<threads {
            group.enter()
            Thread {
                var r = StormResult()
                while Clock.monotonicMs() < deadline {
                    var c: Int64 = 0
                    let t0 = Clock.monotonicMs()
                    let st = hammer_count_hit(h, id, 1, 1, 1, &c)
                    r.worstMs = max(r.worstMs, Clock.monotonicMs() - t0)
                    if st == 0 { r.ok += 1 } else { r.failed[st, default: 0] += 1 }
                    usleep(200)
                }
                results[t] = r
                group.leave()
            }.start()
        }
        inject()
        group.wait()
        var total = StormResult()
        for t in 0..<threads {
            total.ok += results[t].ok
            total.worstMs = max(total.worstMs, results[t].worstMs)
            for (k, v) in results[t].failed { total.failed[k, default: 0] += v }
        }
        return total
    }

    func counted(_ h: OpaquePointer?, _ id: String) -> Int64 {
        var b = hammer_bucket()
        for _ in 0..<100 {
            if hammer_get_bucket(h, id, 1, &b) == 0 { return b.count }
            usleep(50_000)
        }
        XCTFail("get_bucket did not recover")
        return -1
    }

    func open(_ server: RedisProcess, _ opts: String) -> OpaquePointer? {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url(opts), &h), 0, String(cString: hammer_last_error()))
        return h
    }

    func check(_ r: StormResult, count: Int64, allowed: Set<Int32>, boundMs: Int64, _ what: String) {
        print("\(what): \(r.ok) OK, failed by status \(r.failed), counted \(count), slowest call \(r.worstMs) ms")
        XCTAssertGreaterThan(r.ok, 50, "\(what): the storm hardly ran")
        XCTAssertGreaterThanOrEqual(count, Int64(r.ok), "\(what): lost hits (\(r))")
        XCTAssertLessThanOrEqual(count, Int64(r.ok + r.inDoubt), "\(what): hits counted twice (\(r))")
        XCTAssertTrue(Set(r.failed.keys).isSubset(of: allowed), "\(what): unexpected statuses \(r.failed)")
        XCTAssertLessThanOrEqual(r.worstMs, boundMs, "\(what): a call took \(r.worstMs) ms")
    }

    func testRestartInTheMiddleOfAStorm() throws {
        let server = try RedisProcess(["--appendonly", "yes", "--appendfsync", "always"])
        let h = open(server, "expiry_ms=600000&connect_timeout_ms=300&timeout_ms=300&pool_size=4")
        defer { hammer_close(h) }
        let r = storm(h, id: "restart") {
            usleep(400_000)
            server.stop()
            usleep(300_000)
            try? server.start()
        }
        XCTAssertFalse(r.failed.isEmpty, "the restart should have failed some calls")
        // 4: LOADING, while the restarted server reads its append-only file.
        check(r, count: counted(h, "restart"), allowed: [2, 3, 4], boundMs: 600 + 150, "restart")
    }

    func testFreezeAndThaw() throws {
        let server = try RedisProcess()
        let h = open(server, "expiry_ms=600000&connect_timeout_ms=200&timeout_ms=200&pool_size=4")
        defer { hammer_close(h) }
        let r = storm(h, id: "freeze") {
            usleep(300_000)
            server.pause()
            usleep(600_000)
            server.resume()
        }
        XCTAssertGreaterThan(r.failed[3] ?? 0, 0, "a frozen server gives timeouts")
        check(r, count: counted(h, "freeze"), allowed: [2, 3], boundMs: 400 + 150, "freeze")
    }

    func testClientKillDropsConnectionsAndTheHandleReconnects() throws {
        let server = try RedisProcess()
        let h = open(server, "expiry_ms=600000&pool_size=4")
        defer { hammer_close(h) }
        let r = storm(h, id: "kill") {
            for _ in 0..<3 {
                usleep(300_000)
                server.cli("CLIENT", "KILL", "TYPE", "normal")
            }
        }
        check(r, count: counted(h, "kill"), allowed: [2, 3], boundMs: 2000 + 150, "client kill")
        // Idle pooled connections that the server closed are replaced before use: only calls in flight at a kill
        // (at most one per thread) can fail.
        XCTAssertLessThanOrEqual(r.inDoubt, 3 * 6, "calls failed beyond those in flight: \(r.failed)")
        var s = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertGreaterThan(s.reconnects, 4, "connections were re-opened after CLIENT KILL")
        XCTAssertLessThanOrEqual(s.connections, 4)
    }

    func testScriptFlushIsRecoveredWithoutAFailure() throws {
        let server = try RedisProcess()
        let h = open(server, "expiry_ms=600000&pool_size=4")
        defer { hammer_close(h) }
        let r = storm(h, id: "flush") {
            for _ in 0..<5 {
                usleep(200_000)
                server.cli("SCRIPT", "FLUSH")
            }
        }
        XCTAssertEqual(r.failed, [:], "NOSCRIPT must be recovered transparently")
        XCTAssertEqual(counted(h, "flush"), Int64(r.ok))
    }

    func testDebugSleepGivesTimeoutsWithinTheBound() throws {
        let server = try RedisProcess()
        let h = open(server, "expiry_ms=600000&connect_timeout_ms=200&timeout_ms=200&pool_size=4")
        defer { hammer_close(h) }
        let r = storm(h, id: "sleep") {
            usleep(300_000)
            server.cli("DEBUG", "SLEEP", "0.6")
        }
        XCTAssertGreaterThan(r.failed[3] ?? 0, 0, "DEBUG SLEEP gives timeouts")
        check(r, count: counted(h, "sleep"), allowed: [2, 3], boundMs: 400 + 150, "debug sleep")
    }

    func testMaxmemoryGivesAClearErrorAndTheAllowPolicyKeepsServing() throws {
        let server = try RedisProcess(["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"])
        let h = open(server, "expiry_ms=600000")
        let hAllow = open(server, "expiry_ms=600000&on_error=allow")
        defer { hammer_close(h); hammer_close(hAllow) }
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "before", 1, 1, 1, &c), 0)
        server.cli("DEBUG", "POPULATE", "100000", "fill", "64")
        XCTAssertEqual(hammer_count_hit(h, "oom", 1, 1, 1, &c), 4)
        let msg = String(cString: hammer_last_error())
        XCTAssertTrue(msg.contains("out of memory"), msg)
        var lim = hammer_limit(algorithm: 2, limit: 5, period_ms: 1000, burst: 0)
        var d = hammer_decision()
        XCTAssertEqual(hammer_hit(h, "oom", &lim, 1, &d), 4)
        XCTAssertEqual(hammer_hit(hAllow, "oom", &lim, 1, &d), 0)
        XCTAssertEqual([d.allowed, d.degraded], [1, 1])
        // Reads still work, and writes come back once memory is freed.
        var b = hammer_bucket()
        XCTAssertEqual(hammer_get_bucket(h, "before", 1, &b), 0)
        XCTAssertEqual(b.count, 1)
        server.cli("FLUSHALL")
        XCTAssertEqual(hammer_count_hit(h, "oom", 1, 1, 1, &c), 0)
        XCTAssertEqual(c, 1)
    }

    /// Open file descriptors of this process.
    func fds() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }

    /// What the process's descriptors point at (sockets, pipes, files), for a message when their number grew.
    func fdTargets() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }.sorted()
    }

    /// Resident memory of this process in KiB.
    func rssKiB() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    /// A bounded soak: mixed calls from several threads with faults injected; afterwards the process holds no more
    /// sockets than before, and its memory has not grown past noise. SOAK_SECONDS stretches it (default 8).
    func testSoakWithFaultsLeaksNeitherSocketsNorMemory() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["SOAK_SECONDS"] ?? "") ?? 8
        let server = try RedisProcess()
        let fdsBefore = fds()
        let socketsBefore = fdTargets().filter { $0.hasPrefix("socket:") }
        var h: OpaquePointer? = open(server, "expiry_ms=60000&pool_size=4&timeout_ms=300&connect_timeout_ms=300")
        // Warm up, then measure memory.
        _ = storm(h, id: "warm", seconds: 0.5) {}
        let rssWarm = rssKiB()
        let deadline = Clock.monotonicMs() + Int64(seconds * 1000)
        let group = DispatchGroup()
        nonisolated(unsafe) let handle = h
        for t in 0..<4 {
            group.enter()
            Thread {
                var lims = Algorithm.allCases.map { hammer_limit(algorithm: $0.rawValue, limit: 20, period_ms: 1000, burst: 0) }
                let batchIds = (0..<8).map { strdup("soak:\(t):batch:\($0)")! }
                defer { batchIds.forEach { free($0) } }
                var i = 0
                while Clock.monotonicMs() < deadline {
                    var d = hammer_decision()
                    var c: Int64 = 0
                    let id = "soak:\(t):\(i % 50)"
                    switch i % 6 {
                    case 0: _ = hammer_count_hit(handle, id, Int64(i % 7), 1, 1, &c)
                    case 1: _ = hammer_check_rate(handle, id, 1000, 10, 1, &d)
                    case 2: _ = hammer_hit(handle, id, &lims[i % 5], 1, &d)
                    case 3: _ = hammer_peek(handle, id, &lims[(i + 1) % 5], &d)
                    case 4:
                        // A batch of good requests and one bad (NULL id).
                        var out = [hammer_decision](repeating: hammer_decision(), count: 8)
                        lims.withUnsafeBufferPointer { lp in
                            let reqs = (0..<8).map { k in
                                hammer_hit_request(id: k == 7 ? nil : UnsafePointer(batchIds[k]), lim: lp.baseAddress! + k % 5,
                                                   cost: 1, now_ms: -1)
                            }
                            _ = hammer_hit_many(handle, reqs, 8, &out, nil)
                        }
                    default: _ = hammer_delete_buckets(handle, id, &c)
                    }
                    i += 1
                }
                group.leave()
            }.start()
        }
        var round = 0
        while Clock.monotonicMs() < deadline {
            usleep(700_000)
            switch round % 3 {
            case 0: server.cli("CLIENT", "KILL", "TYPE", "normal")
            case 1: server.cli("SCRIPT", "FLUSH")
            default: server.cli("DEBUG", "SLEEP", "0.4")
            }
            round += 1
        }
        group.wait()
        var s = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertLessThanOrEqual(s.connections, 4, "the pool never holds more than pool_size connections")
        XCTAssertGreaterThan(s.calls, 1000)
        let rssEnd = rssKiB()
        print("soak \(seconds) s: \(s.calls) calls, errors \(s.errors), reconnects \(s.reconnects), " +
              "RSS \(rssWarm) -> \(rssEnd) KiB, fds \(fdsBefore) before")
        hammer_close(h)
        h = nil
        // Sockets exactly as before (the runtime may add an eventfd or two of its own to the other descriptors).
        let socketsAfter = fdTargets().filter { $0.hasPrefix("socket:") }
        XCTAssertEqual(socketsAfter, socketsBefore, "sockets leaked")
        XCTAssertLessThanOrEqual(fds(), fdsBefore + 4, "descriptors leaked: \(fdTargets())")
        XCTAssertLessThan(rssEnd - rssWarm, 8 * 1024, "memory grew from \(rssWarm) KiB to \(rssEnd) KiB")
    }
}
