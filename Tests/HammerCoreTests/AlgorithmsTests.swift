// The pure models of the algorithms (Algorithms.swift), on the points where issue 9 found them wrong: the sliding
// window's reset_after_ms, and the capacity x period bound that windows never needed.
@testable import HammerCore
import XCTest

final class AlgorithmsTests: XCTestCase {
    func testSlidingWindowResetIsTheWaitUntilTheWindowIsEmpty() {
        var m = LimiterModel()
        let one = Limit(algorithm: .slidingWindow, limit: 1, periodMs: 1000)
        let first = m.apply(one, mode: .hit, cost: 1, now: 5000)
        XCTAssertTrue(first.allowed)
        XCTAssertEqual(first.resetAfterMs, 1000)
        let denied = m.apply(one, mode: .hit, cost: 1, now: 5999)
        XCTAssertFalse(denied.allowed)
        XCTAssertEqual(denied.resetAfterMs, 1, "the window holds no hits at 6000")
        XCTAssertEqual(denied.retryAfterMs, 1)
        XCTAssertTrue(m.apply(one, mode: .hit, cost: 1, now: 6000).allowed)

        var n = LimiterModel()
        let three = Limit(algorithm: .slidingWindow, limit: 3, periodMs: 1000)
        _ = n.apply(three, mode: .hit, cost: 1, now: 10_000)
        _ = n.apply(three, mode: .hit, cost: 1, now: 10_300)
        XCTAssertEqual(n.apply(three, mode: .peek, cost: 1, now: 10_500).resetAfterMs, 800)
        XCTAssertEqual(n.apply(three, mode: .peek, cost: 1, now: 11_299).resetAfterMs, 1)
        XCTAssertEqual(n.apply(three, mode: .peek, cost: 1, now: 11_300).resetAfterMs, 0)
    }

    func testWindowsTakeTheWholeRanges() throws {
        let tenYears = Limit.maxPeriodMs
        for a in [Algorithm.fixedWindow, .slidingWindow] {
            for (limit, period) in [(Limit.maxLimit, Int64(86_400_000)), (100_000, tenYears), (Limit.maxLimit, tenYears)] {
                let lim = try Limit.validate(algorithm: a.rawValue, limit: limit, periodMs: period, burst: 0).get()
                var m = LimiterModel()
                let d = m.apply(lim, mode: .hit, cost: limit, now: Limit.maxNowMs)
                XCTAssertTrue(d.allowed, "\(a) \(limit) per \(period)")
                XCTAssertEqual(d.remaining, 0)
                XCTAssertFalse(m.apply(lim, mode: .hit, cost: 1, now: Limit.maxNowMs).allowed)
            }
        }
        for a in [Algorithm.tokenBucket, .leakyBucket, .gcra, .slidingCounter] {
            guard case let .failure(f) = Limit.validate(algorithm: a.rawValue, limit: Limit.maxLimit,
                                                        periodMs: 86_400_000, burst: 0) else {
                return XCTFail("\(a): 10^9 per day must be refused (units over 2^52)")
            }
            XCTAssertEqual(f.status, .invalid)
            XCTAssertTrue(f.message.contains("2^52"), f.message)
            XCTAssertNotNil(try? Limit.validate(algorithm: a.rawValue, limit: 1_000_000, periodMs: 86_400_000,
                                                burst: 0).get())
        }
    }

    /// The sliding counter's wait against brute force: for every state of small limiters, the first ms at which
    /// the weighted count lets `need` hits pass (nothing else hitting) is what passOffset says.
    func testSlidingCounterWaitIsTheFirstPassingMs() {
        for L in Int64(1)...4 {
            for P in [Int64(1), 2, 3, 7, 10] {
                for cur in Int64(0)...L {
                    for prev in Int64(0)...L {
                        for e in Int64(0)..<P {
                            for need in Int64(1)...L {
                                // Offsets from this window's start: window w, then w + 1 (cur is then the
                                // previous window), then w + 2 (nothing weighs).
                                func passes(_ x: Int64) -> Bool {
                                    if x < P { return prev * (P - x) + (cur + need) * P <= L * P }
                                    if x < 2 * P { return cur * (2 * P - x) + need * P <= L * P }
                                    return need <= L
                                }
                                if passes(e) { continue }
                                var first = e
                                while !passes(first) { first += 1 }
                                XCTAssertEqual(SlidingCounter.passOffset(L: L, P: P, cur: cur, prev: prev, e: e,
                                                                         need: need), first,
                                               "L \(L) P \(P) cur \(cur) prev \(prev) e \(e) need \(need)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testSlidingCounterWeighsThePreviousWindowAndRollsOver() {
        let lim = Limit(algorithm: .slidingCounter, limit: 4, periodMs: 1000)
        var m = LimiterModel()
        for _ in 0..<4 { XCTAssertTrue(m.apply(lim, mode: .hit, cost: 1, now: 10_500).allowed) }
        let full = m.apply(lim, mode: .hit, cost: 1, now: 10_600)
        XCTAssertFalse(full.allowed)
        // At 11_000 the 4 hits weigh 4 (whole); one more waits until 4 * (1000 - x) / 1000 <= 3: x = 250.
        XCTAssertEqual(full.retryAfterMs, 650)
        XCTAssertEqual(full.resetAfterMs, 1400)              // until the end of the next window
        XCTAssertFalse(m.apply(lim, mode: .peek, cost: 1, now: 11_249).allowed)
        let p = m.apply(lim, mode: .peek, cost: 1, now: 11_250)
        XCTAssertTrue(p.allowed)
        XCTAssertEqual(p.count, 3)
        XCTAssertEqual(p.remaining, 1)
        XCTAssertTrue(m.apply(lim, mode: .hit, cost: 1, now: 11_250).allowed)
        XCTAssertEqual(m.apply(lim, mode: .peek, cost: 1, now: 13_000).count, 0)
        XCTAssertEqual(m.apply(lim, mode: .peek, cost: 1, now: 13_000).resetAfterMs, 0)
    }
}
