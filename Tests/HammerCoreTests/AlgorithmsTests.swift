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
        for a in [Algorithm.tokenBucket, .leakyBucket, .gcra] {
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
}
