// The Redis implementation of every algorithm against its pure Swift model: long randomized sequences of times,
// costs and peeks through hammer_hit_at / hammer_peek_at, compared decision by decision; and the properties each
// algorithm promises, checked on the same runs. MemoryModelComparisonTests runs them all on memory://.
import CHammer
import CHiredis
@testable import Hammer
import HammerCore
import XCTest

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int64>) -> Int64 {
        let span = UInt64(range.upperBound - range.lowerBound) &+ 1
        return range.lowerBound + Int64(next() % span)
    }
}

class ModelComparisonTests: XCTestCase {
    static var server: RedisProcess!
    var h: OpaquePointer?

    override class func setUp() {
        super.setUp()
        server = try! RedisProcess()
    }

    override class func tearDown() {
        server = nil
        super.tearDown()
    }

    override func setUp() {
        XCTAssertEqual(hammer_open(Self.server.url(), &h), 0, String(cString: hammer_last_error()))
    }

    override func tearDown() { hammer_close(h) }

    func decide(_ id: String, _ lim: Limit, cost: Int64, now: Int64, peek: Bool) -> Decision {
        var cl = hammer_limit(algorithm: lim.algorithm.rawValue, limit: lim.limit, period_ms: lim.periodMs,
                              burst: lim.burst)
        var out = hammer_decision()
        let st = peek ? hammer_peek_at(h, id, &cl, now, &out) : hammer_hit_at(h, id, &cl, cost, now, &out)
        XCTAssertEqual(st, 0, String(cString: hammer_last_error()))
        return Decision(allowed: out.allowed == 1, count: out.count, limit: out.limit, remaining: out.remaining,
                        retryAfterMs: out.retry_after_ms, resetAfterMs: out.reset_after_ms)
    }

    /// One randomized run: returns the allowed hits (time, cost) for the property checks.
    func run(_ algorithm: Algorithm, seed: UInt64, steps: Int) -> (Limit, [(Int64, Int64)]) {
        var rng = SplitMix(state: seed)
        let limit = rng.int(1...12)
        let period = [100, 1000, 60_000, 3_600_000][Int(rng.int(0...3))]
        let burst = rng.int(0...2) == 0 ? 0 : rng.int(1...20)
        let lim = Limit(algorithm: algorithm, limit: limit, periodMs: Int64(period), burst: burst)
        let id = "model:\(algorithm):\(seed)"
        var model = LimiterModel()
        var now = rng.int(1_000_000_000_000...1_800_000_000_000)
        var allowed: [(Int64, Int64)] = []
        var retryCheck: (cost: Int64, at: Int64)? = nil
        for i in 0..<steps {
            var cost: Int64
            var peek = false
            if let rc = retryCheck {
                // A denied hit said "retry after r ms": the same hit, exactly r ms later, passes.
                now = rc.at
                cost = rc.cost
            } else {
                switch rng.int(0...9) {
                case 0: now += 0
                case 1...5: now += rng.int(0...(Int64(period) / 10 + 1))
                case 6...8: now += rng.int(0...Int64(period))
                default: now += rng.int(0...(Int64(period) * 3))
                }
                switch rng.int(0...19) {
                case 0: cost = 0
                case 1: cost = lim.capacity + rng.int(1...3)
                case 2...4: cost = rng.int(1...max(1, lim.capacity))
                case 5...6: cost = 1; peek = true
                default: cost = 1
                }
            }
            let before = model
            let want = model.apply(lim, mode: peek ? .peek : .hit, cost: cost, now: now)
            let got = decide(id, lim, cost: cost, now: now, peek: peek)
            XCTAssertEqual(got, want, "\(algorithm) seed \(seed) step \(i): cost \(cost) peek \(peek) now \(now) \(lim)")
            if got != want { break }
            if retryCheck != nil {
                XCTAssertTrue(got.allowed, "\(algorithm) seed \(seed) step \(i): waiting retry_after_ms did not pass")
                retryCheck = nil
            }
            if got.allowed && !peek && cost > 0 { allowed.append((now, cost)) }
            if !got.allowed && !peek && got.retryAfterMs > 0 {
                // Minimal too: one ms earlier the same hit would still be denied (asked of the model only).
                var probe = before
                let early = probe.apply(lim, mode: .hit, cost: cost, now: now + got.retryAfterMs - 1)
                XCTAssertFalse(early.allowed, "\(algorithm) seed \(seed) step \(i): retry_after_ms is not minimal")
                if rng.int(0...2) == 0 { retryCheck = (cost, now + got.retryAfterMs) }
            }
            if got.retryAfterMs == -1 { XCTAssertTrue(cost > lim.capacity || (peek && lim.capacity < 1)) }
        }
        return (lim, allowed)
    }

    /// Never more than the limiter allows in any stretch of time.
    func checkBound(_ lim: Limit, _ hits: [(Int64, Int64)], _ what: String) {
        let P = lim.periodMs
        if lim.algorithm == .slidingCounter {
            checkCounterBound(lim, hits, what)
            return
        }
        for (i, start) in hits.enumerated() {
            var sum: Int64 = 0
            for j in i..<hits.count {
                let (t, c) = hits[j]
                switch lim.algorithm {
                case .fixedWindow:
                    if idiv(t, P) != idiv(start.0, P) { continue }
                    sum += c
                    XCTAssertLessThanOrEqual(sum, lim.limit, "\(what): fixed window over limit")
                case .slidingWindow:
                    if t - start.0 >= P { break }
                    sum += c
                    XCTAssertLessThanOrEqual(sum, lim.limit, "\(what): sliding window over limit in a period")
                default:
                    // In [start, t]: at most capacity + refill over the stretch.
                    sum += c
                    let refill = (t - start.0) * lim.limit
                    XCTAssertLessThanOrEqual(sum * P, lim.capacity * P + refill, "\(what): bucket over capacity+rate")
                }
            }
        }
    }

    /// The sliding counter's error bound against the exact log (hammer.h): a calendar window holds at most L, and a
    /// span (t - P, t] ending e ms into its window at most L + floor(L * e / P). The hits in a span change only at
    /// hit times and the bound only falls at window starts, so spans ending there are the ones to check.
    func checkCounterBound(_ lim: Limit, _ hits: [(Int64, Int64)], _ what: String) {
        let L = lim.limit, P = lim.periodMs
        guard let first = hits.first?.0, let last = hits.last?.0 else { return }
        var ends = hits.map { $0.0 }
        var w = idiv(first, P) + 1
        while w * P <= last + P && ends.count < hits.count + 2000 { ends.append(w * P); w += 1 }
        for t in ends {
            let e = t - idiv(t, P) * P
            let inSpan = hits.reduce(Int64(0)) { $1.0 > t - P && $1.0 <= t ? $0 + $1.1 : $0 }
            XCTAssertLessThanOrEqual(inSpan, L + L * e / P, "\(what): span ending \(t) over the counter's bound")
            let inWindow = hits.reduce(Int64(0)) { idiv($1.0, P) == idiv(t, P) ? $0 + $1.1 : $0 }
            XCTAssertLessThanOrEqual(inWindow, L, "\(what): calendar window over limit")
        }
    }

    /// The bound is reached: a previous window's hits crowded at its end, then the counter lets through nearly L
    /// more within one period (the exact log would not), in Redis as in the model.
    func testSlidingCounterWorstCaseIsTheDocumentedBound() {
        let lim = Limit(algorithm: .slidingCounter, limit: 10, periodMs: 1000)
        let log = Limit(algorithm: .slidingWindow, limit: 10, periodMs: 1000)
        let base: Int64 = 1_700_000_000_000     // a window start
        var allowed: Int64 = 0, exact: Int64 = 0
        for _ in 0..<10 {
            XCTAssertTrue(decide("worst:c", lim, cost: 1, now: base + 999, peek: false).allowed)
            XCTAssertTrue(decide("worst:l", log, cost: 1, now: base + 999, peek: false).allowed)
        }
        for _ in 0..<12 {
            if decide("worst:c", lim, cost: 1, now: base + 1900, peek: false).allowed { allowed += 1 }
            if decide("worst:l", log, cost: 1, now: base + 1900, peek: false).allowed { exact += 1 }
        }
        // Span (base + 900, base + 1900]: 10 + 9 = 19 = L + floor(L * 900 / 1000) hits; the exact log allows none.
        XCTAssertEqual(allowed, 9)
        XCTAssertEqual(exact, 0)
        let d = decide("worst:c", lim, cost: 1, now: base + 1900, peek: true)
        XCTAssertFalse(d.allowed)
        XCTAssertEqual(d.count, 10)   // 10 * 100 / 1000 + 9, rounded up
        // The next hit passes at the next window's start: the crowded window weighs nothing, and 9 + 1 <= 10.
        XCTAssertEqual(d.retryAfterMs, 100)
    }

    func testEveryAlgorithmMatchesItsModel() {
        for algorithm in Algorithm.allCases {
            for seed in UInt64(1)...20 {
                let (lim, hits) = run(algorithm, seed: seed &* 7919 &+ UInt64(algorithm.rawValue), steps: 300)
                checkBound(lim, hits, "\(algorithm) seed \(seed)")
            }
        }
    }

    func testCheckRateMatchesHammerSemantics() {
        var rng = SplitMix(state: 42)
        var model = LimiterModel()
        let lim = Limit(algorithm: .fixedWindow, limit: 5, periodMs: 1000)
        var now: Int64 = 1_700_000_000_000
        for i in 0..<300 {
            now += rng.int(0...400)
            let inc = rng.int(0...3)
            let want = model.apply(lim, mode: .check, cost: inc, now: now)
            var out = hammer_decision()
            XCTAssertEqual(hammer_check_rate_at(h, "check:model", 1000, 5, inc, now, &out), 0)
            let got = Decision(allowed: out.allowed == 1, count: out.count, limit: out.limit, remaining: out.remaining,
                               retryAfterMs: out.retry_after_ms, resetAfterMs: out.reset_after_ms)
            XCTAssertEqual(got, want, "step \(i) inc \(inc) now \(now)")
        }
    }

    func testPeekNeverChangesRedis() {
        for algorithm in Algorithm.allCases {
            let lim = Limit(algorithm: algorithm, limit: 3, periodMs: 60_000)
            let id = "peek:\(algorithm)"
            var now: Int64 = 1_700_000_000_000
            for _ in 0..<2 { _ = decide(id, lim, cost: 1, now: now, peek: false) }
            let before = snapshot(id, window: now / 60_000)
            for k in 0..<5 {
                now += Int64(k) * 700
                _ = decide(id, lim, cost: 1, now: now, peek: true)
            }
            XCTAssertEqual(snapshot(id, window: now / 60_000), before, "\(algorithm): peek changed Redis")
            XCTAssertFalse(before.isEmpty)
        }
    }

    func testLoweringAnIdsLimitGivesNoNegativeRemaining() {
        // State written under a larger limit (the caller lowered it): a hit of cost 0 is allowed and must answer
        // remaining 0, not limit - count < 0 (found by the fuzzer); Redis and the model agree throughout.
        for algorithm in Algorithm.allCases {
            let big = Limit(algorithm: algorithm, limit: 10, periodMs: 60_000)
            let small = Limit(algorithm: algorithm, limit: 1, periodMs: 60_000)
            let id = "lowered:\(algorithm)"
            var model = LimiterModel()
            let now: Int64 = 1_700_000_000_000
            for (lim, cost, peek) in [(big, 1, false), (big, 1, false), (big, 1, false), (big, 1, false),
                                      (small, 0, false), (small, 1, true), (small, 1, false), (big, 0, false)] {
                let want = model.apply(lim, mode: peek ? .peek : .hit, cost: Int64(cost), now: now)
                let got = decide(id, lim, cost: Int64(cost), now: now, peek: peek)
                XCTAssertEqual(got, want, "\(algorithm) limit \(lim.limit) cost \(cost) peek \(peek)")
                XCTAssertGreaterThanOrEqual(got.remaining, 0, "\(algorithm) limit \(lim.limit) cost \(cost)")
            }
        }
    }

    func testDeniedHitNeverChangesRedis() {
        // The fixed window adds a hit first and takes it back when over the limit: the bucket must come out
        // byte-identical, as for every algorithm, and also for a batch.
        for algorithm in Algorithm.allCases {
            let lim = Limit(algorithm: algorithm, limit: 3, periodMs: 60_000)
            let id = "denied:\(algorithm)"
            let now: Int64 = 1_700_000_000_000
            for _ in 0..<3 { XCTAssertTrue(decide(id, lim, cost: 1, now: now, peek: false).allowed) }
            let before = snapshot(id, window: now / 60_000)
            XCTAssertFalse(before.isEmpty)
            for cost: Int64 in [1, 2, 3] {
                let d = decide(id, lim, cost: cost, now: now + 10, peek: false)
                XCTAssertFalse(d.allowed, "\(algorithm) cost \(cost)")
                XCTAssertEqual(d.count, 3, "\(algorithm) cost \(cost)")
            }
            var cl = hammer_limit(algorithm: algorithm.rawValue, limit: 3, period_ms: 60_000, burst: 0)
            var out = [hammer_decision](repeating: hammer_decision(), count: 2)
            id.withCString { idp in
                withUnsafePointer(to: &cl) { lp in
                    let reqs = [hammer_hit_request(id: idp, lim: lp, cost: 1, now_ms: now + 20),
                                hammer_hit_request(id: idp, lim: lp, cost: 2, now_ms: now + 20)]
                    XCTAssertEqual(hammer_hit_many(h, reqs, 2, &out, nil), 0)
                }
            }
            XCTAssertEqual(out.map { $0.allowed }, [0, 0], "\(algorithm) batch")
            XCTAssertEqual(snapshot(id, window: now / 60_000), before, "\(algorithm): a denied hit changed Redis")
        }
    }

    /// The id's keys and their contents (not TTLs), read through a second connection of the handle's kind.
    func snapshot(_ id: String, window: Int64) -> [String] {
        var out: [String] = []
        let hd = handle(h)!
        _ = hd.pool.with { conn -> Result<Void, Failure> in
            for suffix in ["sw", "swm", "tb", "lb", "gcra", "swc", "\(window)"] {
                conn.args.reset()
                conn.args.add("DUMP")
                conn.args.add(Array("Hammer:Redis:\(id):\(suffix)".utf8))
                if case let .success(r) = conn.run() {
                    out.append("\(suffix)=\(Array(Connection.bytes(r)))")
                    freeReplyObject(r)
                }
            }
            return .success(())
        }
        return out.filter { !$0.hasSuffix("=[]") }
    }

    func testConcurrentHitsNeverExceedTheLimit() {
        for algorithm in Algorithm.allCases {
            let limit: Int64 = 50
            var cl = hammer_limit(algorithm: algorithm.rawValue, limit: limit, period_ms: 3_600_000, burst: 0)
            let id = "conc:\(algorithm)"
            let now: Int64 = 1_700_000_000_000
            let threads = 8, each = 40
            let counter = UnsafeMutablePointer<Int64>.allocate(capacity: threads)
            counter.initialize(repeating: 0, count: threads)
            defer { counter.deallocate() }
            let handle = h
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for _ in 0..<each {
                    var out = hammer_decision()
                    if hammer_hit_at(handle, id, &cl, 1, now, &out) == 0 && out.allowed == 1 { counter[t] += 1 }
                }
            }
            let total = (0..<threads).reduce(Int64(0)) { $0 + counter[$1] }
            XCTAssertEqual(total, limit, "\(algorithm): \(total) allowed of \(threads * each), limit \(limit)")
        }
    }
}
