// memory:// (Memory/): the model comparison runs over it as over Redis (MemoryModelComparisonTests), and a random
// mix of every call gives the same answers from a memory:// handle as from a Redis one, step by step; expiry,
// the sweep, statistics.
import CHammer
import Dispatch
import Glibc
@testable import Hammer
import HammerCore
import XCTest

/// Every test of ModelComparisonTests, on a memory:// handle.
final class MemoryModelComparisonTests: ModelComparisonTests {
    override class func setUp() {}
    override class func tearDown() {}

    override func setUp() {
        XCTAssertEqual(hammer_open("memory://?expiry_ms=60000", &h), 0, String(cString: hammer_last_error()))
    }

    // Linux XCTest runs only the tests a class declares: each inherited one, named again.
    override func testEveryAlgorithmMatchesItsModel() { super.testEveryAlgorithmMatchesItsModel() }
    override func testSlidingCounterWorstCaseIsTheDocumentedBound() {
        super.testSlidingCounterWorstCaseIsTheDocumentedBound()
    }
    override func testCheckRateMatchesHammerSemantics() { super.testCheckRateMatchesHammerSemantics() }
    override func testPeekNeverChangesRedis() { super.testPeekNeverChangesRedis() }
    override func testLoweringAnIdsLimitGivesNoNegativeRemaining() { super.testLoweringAnIdsLimitGivesNoNegativeRemaining() }
    override func testDeniedHitNeverChangesRedis() { super.testDeniedHitNeverChangesRedis() }
    override func testConcurrentHitsNeverExceedTheLimit() { super.testConcurrentHitsNeverExceedTheLimit() }

    override func snapshot(_ id: String, window: Int64) -> [String] {
        let m = handle(h)!.memory!
        return Array(id.utf8).withUnsafeBufferPointer { idb in m.with(idb, create: false) { s, _ in s.snapshot } }
    }
}

/// The tests of MultiLimitTests that need only a handle, on a memory:// handle.
final class MemoryMultiLimitTests: MultiLimitTests {
    override func setUp() {
        XCTAssertEqual(hammer_open("memory://?expiry_ms=60000", &h), 0, String(cString: hammer_last_error()))
    }

    override func tearDown() { hammer_close(h) }

    override func testCombinedDecisionIsEveryModelAllowing() { super.testCombinedDecisionIsEveryModelAllowing() }
    override func testTheSameLimitAloneAndAmongOthersIsOneState() {
        super.testTheSameLimitAloneAndAmongOthersIsOneState()
    }
    override func testOneLimitIsHammerHit() { super.testOneLimitIsHammerHit() }
    override func testBatchEqualsSingleCallsAndFailsRequestsAlone() {
        super.testBatchEqualsSingleCallsAndFailsRequestsAlone()
    }
    // Redis's clock and Redis going down are Redis's; so are the keys own states have (test_memory.py compares
    // their decisions and delete_buckets' counts with Redis's).
    override func testRepeatsFoldAndFixedWindowsOfClosePeriodsInOneBucketAreRefused() {}
    override func testLocalFallbackCombinesTheModelsWhileRedisIsDown() {}
    override func testRepeatedAlgorithmsKeepStatesOfTheirOwn() {}
    override func testDeleteBucketsDeletesOwnStatesOfExactlyThatId() {}
}

final class MemoryBackendTests: XCTestCase {
    static var server: RedisProcess!

    override class func setUp() {
        super.setUp()
        server = try! RedisProcess()
    }

    override class func tearDown() {
        server = nil
        super.tearDown()
    }

    func open(_ url: String) -> OpaquePointer? {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(url, &h), 0, String(cString: hammer_last_error()))
        return h
    }

    /// One call's answer, as text, from either handle.
    func answer(_ h: OpaquePointer?, _ op: Int64, _ id: String, _ rng: inout SplitMix, now: Int64) -> String {
        switch op {
        case 0:
            var c: Int64 = 0
            let st = hammer_count_hit(h, id, rng.int(0...2), now, rng.int(0...3), &c)
            return "count_hit \(st) \(c)"
        case 1:
            var b = hammer_bucket()
            let st = hammer_get_bucket(h, id, rng.int(0...2), &b)
            return "get_bucket \(st) \(b.found) \(b.count) \(b.created) \(b.updated)"
        case 2:
            var d = hammer_decision()
            let st = hammer_check_rate_at(h, id, [1000, 60_000][Int(rng.int(0...1))], rng.int(1...6), rng.int(0...3),
                                          now, &d)
            return "check_rate \(st) \(d.allowed) \(d.count) \(d.remaining) \(d.retry_after_ms) \(d.reset_after_ms)"
        case 3:
            var n: Int64 = 0
            let st = hammer_delete_buckets(h, id, &n)
            return "delete \(st) \(n)"
        case 4:
            var b = [hammer_decision](repeating: hammer_decision(), count: 3)
            var st = [Int32](repeating: 0, count: 3)
            var lims = (0..<3).map { _ in
                hammer_limit(algorithm: Int32(rng.int(0...5)), limit: rng.int(1...5), period_ms: 1000, burst: 0)
            }
            let costs = (0..<3).map { _ in rng.int(0...2) }
            let rc = id.withCString { idp in
                lims.withUnsafeMutableBufferPointer { lp in
                    let reqs = (0..<3).map { i in
                        hammer_hit_request(id: idp, lim: lp.baseAddress! + i, cost: costs[i], now_ms: now)
                    }
                    return hammer_hit_many(h, reqs, 3, &b, &st)
                }
            }
            return "hit_many \(rc) \(st) " + b.map { "\($0.allowed) \($0.count) \($0.remaining) \($0.retry_after_ms)" }.joined(separator: ",")
        case 8:
            let lims = (0..<rng.int(1...3)).map { _ in
                hammer_limit(algorithm: Int32(rng.int(0...5)), limit: rng.int(1...5),
                             period_ms: [1000, 60_000][Int(rng.int(0...1))], burst: rng.int(0...3))
            }
            var d = hammer_decision()
            let peek = rng.int(0...3) == 0
            let st = peek ? hammer_peek_all_at(h, id, lims, lims.count, now, &d)
                          : hammer_hit_all_at(h, id, lims, lims.count, rng.int(0...3), now, &d)
            return "all \(st) \(d.allowed) \(d.count) \(d.remaining) \(d.retry_after_ms) \(d.reset_after_ms) \(d.decided_by)"
        default:
            var lim = hammer_limit(algorithm: Int32(rng.int(0...5)), limit: rng.int(1...5),
                                   period_ms: [100, 1000, 60_000][Int(rng.int(0...2))], burst: rng.int(0...3))
            var d = hammer_decision()
            let st = rng.int(0...3) == 0 ? hammer_peek_at(h, id, &lim, now, &d)
                                         : hammer_hit_at(h, id, &lim, rng.int(0...3), now, &d)
            return "decide \(st) \(d.allowed) \(d.count) \(d.remaining) \(d.retry_after_ms) \(d.reset_after_ms)"
        }
    }

    func testEveryCallAnswersAsRedisDoes() {
        let redis = open(Self.server.url())
        let memory = open("memory://?expiry_ms=60000")
        defer { hammer_close(redis); hammer_close(memory) }
        for seed in UInt64(1)...30 {
            var pick = SplitMix(state: seed)
            var now: Int64 = 1_700_000_000_000 + pick.int(0...1_000_000)
            for step in 0..<200 {
                now += pick.int(0...300)
                let op = pick.int(0...9)
                let id = "mix:\(seed):\(pick.int(0...2))"
                var a = SplitMix(state: pick.next()), b = a
                let want = answer(redis, op, id, &a, now: now)
                let got = answer(memory, op, id, &b, now: now)
                XCTAssertEqual(got, want, "seed \(seed) step \(step) op \(op) id \(id) now \(now)")
                if got != want { return }
            }
        }
    }

    func testBatchesOfCountsAndChecksAnswerAsRedisDoes() {
        let redis = open(Self.server.url())
        let memory = open("memory://?expiry_ms=60000")
        defer { hammer_close(redis); hammer_close(memory) }
        let now: Int64 = 1_700_000_000_000
        for h in [redis, memory] { var n: Int64 = 0; _ = hammer_delete_buckets(h, "batch:a", &n) }
        func counts(_ h: OpaquePointer?) -> String {
            var out = [Int64](repeating: 0, count: 4), st = [Int32](repeating: 0, count: 4)
            let rc = "batch:a".withCString { a in
                let reqs = [hammer_count_request(id: a, bucket: 1, now_ms: now, increment: 2),
                            hammer_count_request(id: a, bucket: 1, now_ms: now + 1, increment: 3),
                            hammer_count_request(id: nil, bucket: 1, now_ms: now, increment: 1),
                            hammer_count_request(id: a, bucket: 2, now_ms: now + 2, increment: -1)]
                return hammer_count_hits(h, reqs, 4, &out, &st)
            }
            var checks = [hammer_decision](repeating: hammer_decision(), count: 3)
            let rc2 = "batch:a".withCString { a in
                let reqs = (0..<3).map { _ in hammer_check_request(id: a, scale_ms: 60_000, limit: 2, increment: 1) }
                return hammer_check_rates(h, reqs, 3, &checks, nil)
            }
            var b = hammer_bucket()
            _ = hammer_get_bucket(h, "batch:a", 1, &b)
            return "\(rc) \(out) \(st) \(rc2) \(checks.map { $0.allowed }) \(b.count) \(b.created) \(b.updated)"
        }
        XCTAssertEqual(counts(memory), counts(redis))
    }

    func testBucketsExpireAndTheSweepFreesThem() {
        let h = open("memory://?expiry_ms=50")
        defer { hammer_close(h) }
        let m = handle(h)!.memory!
        var c: Int64 = 0
        for i in 0..<2000 { XCTAssertEqual(hammer_count_hit(h, "short:\(i)", 1, 0, 1, &c), 0) }
        XCTAssertEqual(m.count, 2000)
        var b = hammer_bucket()
        XCTAssertEqual(hammer_get_bucket(h, "short:0", 1, &b), 0)
        XCTAssertEqual(b.found, 1)
        // count_hit's buckets live expiry_ms to expiry_ms + 1 s after their latest hit.
        usleep(1_200_000)
        XCTAssertEqual(hammer_get_bucket(h, "short:0", 1, &b), 0)
        XCTAssertEqual(b.found, 0, "expired bucket still found")
        // Calls on one other id sweep every shard: 2 ids of its own and 2 of another, each in turn (about 31 ids a
        // shard; 63 others, visited about 63 times each by 4000 calls).
        for _ in 0..<4000 { XCTAssertEqual(hammer_get_bucket(h, "other", 1, &b), 0) }
        XCTAssertEqual(m.count, 0, "the sweep left \(m.count) expired ids")
    }

    func testStatisticsCountCallsAndNoConnection() {
        let h = open("memory://?expiry_ms=60000")
        defer { hammer_close(h) }
        var lim = hammer_limit(algorithm: 0, limit: 2, period_ms: 60_000, burst: 0)
        var d = hammer_decision()
        for _ in 0..<3 { XCTAssertEqual(hammer_hit(h, "stats", &lim, 1, &d), 0) }
        XCTAssertNotEqual(hammer_hit(h, nil, &lim, 1, &d), 0)
        var s = hammer_stats_t()
        s.size = UInt32(MemoryLayout<hammer_stats_t>.size)
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertEqual(s.calls, 4)
        XCTAssertEqual(s.allowed, 2)
        XCTAssertEqual(s.denied, 1)
        XCTAssertEqual(s.connections, 0)
        XCTAssertGreaterThan(s.p50_us, -1)
    }

    func testThreadsOnOneHandleCountEveryHit() {
        let h = open("memory://?expiry_ms=60000")
        defer { hammer_close(h) }
        let threads = 8, each = 2000
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var c: Int64 = 0
            for i in 0..<each { _ = hammer_count_hit(h, "conc:\(i % 16)", 1, 0, 1, &c) }
        }
        var total: Int64 = 0
        for i in 0..<16 {
            var b = hammer_bucket()
            XCTAssertEqual(hammer_get_bucket(h, "conc:\(i)", 1, &b), 0)
            total += b.count
        }
        XCTAssertEqual(total, Int64(threads * each))
    }
}
