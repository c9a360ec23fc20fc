// Batches (one pipeline) against single calls, the on_error / fallback policies while Redis is down, the circuit
// breaker's bound on each call, and the statistics.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

final class BatchPolicyStatsTests: XCTestCase {
    var server: RedisProcess!

    override func setUp() { server = try! RedisProcess() }
    override func tearDown() { server = nil }

    func open(_ opts: String = "expiry_ms=60000") -> OpaquePointer? {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url(opts), &h), 0, String(cString: hammer_last_error()))
        return h
    }

    func testHitManyEqualsSingleCallsInOrder() {
        let h = open()
        defer { hammer_close(h) }
        let lims = Algorithm.allCases.map { a in
            UnsafeMutablePointer<hammer_limit>.allocate(capacity: 1).then {
                $0.pointee = hammer_limit(algorithm: a.rawValue, limit: 5, period_ms: 10_000, burst: 0)
            }
        }
        defer { lims.forEach { $0.deallocate() } }
        let ids = (0..<6).map { strdup("batch:\($0)")! }
        let single = (0..<6).map { strdup("single:\($0)")! }
        defer { (ids + single).forEach { free($0) } }
        var reqs: [hammer_hit_request] = []
        var rng = SplitMix(state: 7)
        var now: Int64 = 1_700_000_000_000
        for _ in 0..<64 {
            now += rng.int(0...500)
            let k = Int(rng.int(0...5))
            reqs.append(hammer_hit_request(id: ids[k], lim: lims[k % 5], cost: rng.int(0...3), now_ms: now))
        }
        var out = [hammer_decision](repeating: hammer_decision(), count: 64)
        var st = [Int32](repeating: -1, count: 64)
        XCTAssertEqual(hammer_hit_many(h, reqs, 64, &out, &st), 0, String(cString: hammer_last_error()))
        for (i, r) in reqs.enumerated() {
            let k = ids.firstIndex(of: UnsafeMutablePointer(mutating: r.id!))!
            var d = hammer_decision()
            XCTAssertEqual(hammer_hit_at(h, single[k], r.lim, r.cost, r.now_ms, &d), 0)
            XCTAssertEqual(st[i], 0)
            XCTAssertEqual(out[i].allowed, d.allowed, "request \(i)")
            XCTAssertEqual(out[i].count, d.count, "request \(i)")
            XCTAssertEqual(out[i].remaining, d.remaining, "request \(i)")
            XCTAssertEqual(out[i].retry_after_ms, d.retry_after_ms, "request \(i)")
            XCTAssertEqual(out[i].reset_after_ms, d.reset_after_ms, "request \(i)")
        }
        XCTAssertTrue(out.contains { $0.allowed == 0 } && out.contains { $0.allowed == 1 })
    }

    func testBadRequestsFailAloneAndNoScriptIsRecovered() {
        let h = open()
        defer { hammer_close(h) }
        var lim = hammer_limit(algorithm: 2, limit: 10, period_ms: 1_000_000, burst: 0)   // no refill while the test runs
        var bad = hammer_limit(algorithm: 9, limit: 10, period_ms: 1000, burst: 0)
        let id = strdup("mixed")!
        defer { free(id) }
        withUnsafePointer(to: &lim) { lp in
            withUnsafePointer(to: &bad) { bp in
                let reqs = [hammer_hit_request(id: id, lim: lp, cost: 1, now_ms: -1),
                            hammer_hit_request(id: nil, lim: lp, cost: 1, now_ms: -1),
                            hammer_hit_request(id: id, lim: bp, cost: 1, now_ms: -1),
                            hammer_hit_request(id: id, lim: lp, cost: -1, now_ms: -1),
                            hammer_hit_request(id: id, lim: nil, cost: 1, now_ms: -1),
                            hammer_hit_request(id: id, lim: lp, cost: 1, now_ms: -1)]
                var out = [hammer_decision](repeating: hammer_decision(), count: reqs.count)
                var st = [Int32](repeating: -1, count: reqs.count)
                XCTAssertEqual(hammer_hit_many(h, reqs, reqs.count, &out, &st), 1)
                XCTAssertEqual(st, [0, 1, 1, 1, 1, 0])
                XCTAssertEqual(out[0].count, 1)
                XCTAssertEqual(out[5].count, 2)
                XCTAssertTrue(String(cString: hammer_last_error()).contains("request 1"))
                // After SCRIPT FLUSH every EVALSHA of the pipeline answers NOSCRIPT; the batch still succeeds.
                server.cli("SCRIPT", "FLUSH")
                let good = [reqs[0], reqs[5], reqs[0]]
                var out2 = [hammer_decision](repeating: hammer_decision(), count: 3)
                XCTAssertEqual(hammer_hit_many(h, good, 3, &out2, nil), 0, String(cString: hammer_last_error()))
                XCTAssertEqual(out2.map { $0.count }, [3, 4, 5])
            }
        }
        // Empty batches and NULL arrays.
        XCTAssertEqual(hammer_hit_many(h, nil, 0, nil, nil), 0)
        var d = hammer_decision()
        XCTAssertEqual(hammer_hit_many(h, nil, 3, &d, nil), 1)
        XCTAssertEqual(hammer_hit_many(nil, nil, 0, nil, nil), 1)
    }

    func testCountHitsAndCheckRatesMatchSingleCalls() {
        let h = open()
        defer { hammer_close(h) }
        let ids = (0..<4).map { strdup("ch:\($0)")! }
        defer { ids.forEach { free($0) } }
        var reqs: [hammer_count_request] = []
        for i in 0..<100 { reqs.append(hammer_count_request(id: ids[i % 4], bucket: Int64(i % 3), now_ms: Int64(i), increment: Int64(i % 5))) }
        var counts = [Int64](repeating: -1, count: 100)
        XCTAssertEqual(hammer_count_hits(h, reqs, 100, &counts, nil), 0)
        var expect: [String: Int64] = [:]
        for (i, r) in reqs.enumerated() {
            let key = "\(i % 4):\(r.bucket)"
            expect[key, default: 0] += r.increment
            XCTAssertEqual(counts[i], expect[key], "request \(i)")
        }
        var b = hammer_bucket()
        XCTAssertEqual(hammer_get_bucket(h, ids[1], 1, &b), 0)
        XCTAssertEqual(b.count, expect["1:1"])
        XCTAssertEqual(b.created, 1 + 0)  // first hit of ids[1] bucket 1 is request 1 (now 1)

        let cr = (0..<10).map { _ in hammer_check_request(id: ids[0], scale_ms: 3_600_000, limit: 7, increment: 1) }
        var out = [hammer_decision](repeating: hammer_decision(), count: 10)
        XCTAssertEqual(hammer_check_rates(h, cr, 10, &out, nil), 0)
        XCTAssertEqual(out.map { $0.allowed }, [1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
        XCTAssertEqual(out.map { $0.count }, Array(1...10).map(Int64.init))
    }

    func testStatsCountCallsDecisionsErrorsAndLatency() {
        let h = open("expiry_ms=60000&pool_size=2")
        defer { hammer_close(h) }
        var lim = hammer_limit(algorithm: 0, limit: 3, period_ms: 3_600_000, burst: 0)
        var d = hammer_decision()
        for _ in 0..<5 { XCTAssertEqual(hammer_hit(h, "stats", &lim, 1, &d), 0) }
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "stats", 1, 1, 1, &c), 0)
        server.cli("SET", "Hammer:Redis:wrong:1", "x")
        XCTAssertEqual(hammer_count_hit(h, "wrong", 1, 1, 1, &c), 4)
        var s = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertEqual(s.calls, 7)
        XCTAssertEqual(s.allowed, 3)
        XCTAssertEqual(s.denied, 2)
        XCTAssertEqual(s.errors.4, 1)
        XCTAssertEqual(s.degraded, 0)
        XCTAssertGreaterThanOrEqual(s.reconnects, 1)
        XCTAssertGreaterThan(s.p50_us, 0)
        XCTAssertGreaterThanOrEqual(s.p99_us, s.p50_us)
        XCTAssertGreaterThanOrEqual(s.p999_us, s.p99_us)
        XCTAssertGreaterThanOrEqual(s.connections, 1)
        XCTAssertLessThanOrEqual(s.connections, 2)
        var zeroed = s
        XCTAssertEqual(hammer_stats(nil, &zeroed), 1)
        XCTAssertEqual(zeroed.calls, 0)
        XCTAssertEqual(hammer_stats(h, nil), 1)
        // Every refused or failed request counts once, in calls and in errors by status, single or batched.
        var bad = hammer_limit(algorithm: 9, limit: 1, period_ms: 1, burst: 0)
        XCTAssertEqual(hammer_hit_at(h, "stats", &lim, -1, 1, &d), 1)
        XCTAssertEqual(hammer_hit(h, nil, &lim, 1, &d), 1)
        XCTAssertEqual(hammer_count_hit(h, "stats", 1, 1, -1, &c), 1)
        let sid = strdup("stats")!
        defer { free(sid) }
        withUnsafePointer(to: &bad) { bp in
            withUnsafePointer(to: &lim) { lp in
                let reqs = [hammer_hit_request(id: sid, lim: bp, cost: 1, now_ms: -1),
                            hammer_hit_request(id: sid, lim: lp, cost: -1, now_ms: -1),
                            hammer_hit_request(id: nil, lim: lp, cost: 1, now_ms: -1),
                            hammer_hit_request(id: sid, lim: lp, cost: 1, now_ms: -1)]
                var out = [hammer_decision](repeating: hammer_decision(), count: 4)
                XCTAssertEqual(hammer_hit_many(h, reqs, 4, &out, nil), 1)
            }
        }
        var s2 = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(h, &s2), 0)
        XCTAssertEqual(s2.calls - s.calls, 3 + 4)
        XCTAssertEqual(s2.errors.1 - s.errors.1, 3 + 3)
        XCTAssertEqual(s2.denied - s.denied, 1)
    }

    /// Waits until the breaker lets calls reach Redis again and `body` succeeds; bounded.
    func eventually(_ what: String, _ body: () -> Bool) {
        for _ in 0..<100 {
            if body() { return }
            usleep(50_000)
        }
        XCTFail("\(what): not recovered within 5 s")
    }

    func testOnErrorPoliciesAndLocalFallbackWhileRedisIsDown() throws {
        let opts = "expiry_ms=60000&connect_timeout_ms=200&timeout_ms=200"
        let hErr = open(opts), hAllow = open(opts + "&on_error=allow"), hDeny = open(opts + "&on_error=deny")
        let hLocal = open(opts + "&fallback=local")
        defer { [hErr, hAllow, hDeny, hLocal].forEach { hammer_close($0) } }
        var lim = hammer_limit(algorithm: 2, limit: 3, period_ms: 3_600_000, burst: 0)
        var d = hammer_decision()
        XCTAssertEqual(hammer_hit(hErr, "p", &lim, 1, &d), 0)
        XCTAssertEqual(d.degraded, 0)
        server.stop()
        // Each handle meets the outage on its own; none may take longer than connect + command timeout.
        var worst: Int64 = 0
        func timed(_ f: () -> Int32) -> Int32 {
            let t0 = Clock.monotonicMs()
            let rc = f()
            worst = max(worst, Clock.monotonicMs() - t0)
            return rc
        }
        for _ in 0..<20 {
            let rc = timed { hammer_hit(hErr, "p", &lim, 1, &d) }
            XCTAssertTrue(rc == 2 || rc == 3, "on_error=error gives CONNECT or TIMEOUT, not \(rc)")
            XCTAssertEqual(timed { hammer_hit(hAllow, "p", &lim, 1, &d) }, 0)
            XCTAssertEqual(d.allowed, 1)
            XCTAssertEqual(d.degraded, 1)
            XCTAssertEqual(timed { hammer_hit(hDeny, "p", &lim, 1, &d) }, 0)
            XCTAssertEqual(d.allowed, 0)
            XCTAssertEqual(d.degraded, 1)
            XCTAssertGreaterThanOrEqual(d.retry_after_ms, 1)
        }
        XCTAssertLessThanOrEqual(worst, 400 + 100, "a call took \(worst) ms while Redis was down")
        XCTAssertTrue(String(cString: hammer_last_error()).contains("on_error=deny"))
        // fallback=local: the limit still holds in-process.
        var allowed = 0
        for _ in 0..<6 {
            XCTAssertEqual(hammer_hit(hLocal, "p", &lim, 1, &d), 0)
            XCTAssertEqual(d.degraded, 1)
            allowed += Int(d.allowed)
        }
        XCTAssertEqual(allowed, 3)
        var s = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(hLocal, &s), 0)
        XCTAssertEqual(s.degraded, 6)
        // Redis returns: the same handles recover by themselves, and decide by Redis again.
        try server.start()
        eventually("on_error=error") { hammer_hit(hErr, "p", &lim, 1, &d) == 0 && d.degraded == 0 }
        eventually("fallback=local") { hammer_hit(hLocal, "p", &lim, 1, &d) == 0 && d.degraded == 0 }
        eventually("on_error=allow") { hammer_hit(hAllow, "p", &lim, 1, &d) == 0 && d.degraded == 0 }
    }

    func testFrozenServerFailsWithinTheBoundAndRecovers() {
        let h = open("expiry_ms=60000&connect_timeout_ms=150&timeout_ms=150&pool_size=2")
        defer { hammer_close(h) }
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "frozen", 1, 1, 1, &c), 0)
        server.pause()
        var statuses: Set<Int32> = []
        var worst: Int64 = 0
        for _ in 0..<10 {
            let t0 = Clock.monotonicMs()
            statuses.insert(hammer_count_hit(h, "frozen", 1, 1, 1, &c))
            worst = max(worst, Clock.monotonicMs() - t0)
        }
        server.resume()
        XCTAssertTrue(statuses.isSubset(of: [2, 3]) && statuses.contains(3), "statuses \(statuses)")
        XCTAssertLessThanOrEqual(worst, 300 + 100)
        eventually("after SIGCONT") { hammer_count_hit(h, "frozen", 1, 1, 1, &c) == 0 }
        // Timeouts back off up to 1 s.
        XCTAssertGreaterThan(Pool.backoffCapMs, Pool.refusedCapMs)
    }

    func testRefusedConnectionsBackOffAtMost100msSoARestartedServerIsUsedSoon() {
        let h = open("expiry_ms=60000&connect_timeout_ms=300&timeout_ms=300&pool_size=2")
        defer { hammer_close(h) }
        let hd = handle(h)!
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "refused", 1, 1, 1, &c), 0)
        server.stop()
        // A second of calls against a closed port: every attempt is refused at once, so the back-off, which would
        // reach 1 s for timeouts, stays at most 100 ms.
        var statuses: Set<Int32> = []
        var longest: Int64 = 0
        let end = Clock.monotonicMs() + 1000
        while Clock.monotonicMs() < end {
            statuses.insert(hammer_count_hit(h, "refused", 1, 1, 1, &c))
            longest = max(longest, hd.pool.backoffLeftMs)
            usleep(2_000)
        }
        XCTAssertEqual(statuses, [2], "refused connections are HAMMER_ERR_CONNECT")
        XCTAssertGreaterThan(longest, 0, "the breaker opened")
        XCTAssertLessThanOrEqual(longest, Pool.refusedCapMs)
        try? server.start()
        eventually("after the restart") { hammer_count_hit(h, "refused", 1, 1, 1, &c) == 0 }
    }
}

extension UnsafeMutablePointer {
    func then(_ f: (UnsafeMutablePointer) -> Void) -> UnsafeMutablePointer { f(self); return self }
}

extension RedisProcess {
    /// One command through redis-cli, apart from the handle's connections.
    @discardableResult
    func cli(_ args: String...) -> String { cli(args) }
}
