// The latency histogram: bucket bounds, and percentiles within 1/16 of the true value.
@testable import HammerCore
import XCTest

final class StatsTests: XCTestCase {
    func testEveryValueFallsInABucketWhoseBoundsHoldIt() {
        var values: [UInt64] = Array(0...5000)
        var x: UInt64 = 1
        while x < UInt64.max / 3 { values += [x - 1, x, x + 1, x * 3 / 2]; x *= 2 }
        values.append(UInt64.max)
        for v in values {
            let i = LatencyHistogram.index(v)
            XCTAssertTrue(i >= 0 && i < LatencyHistogram.bucketCount, "\(v) -> \(i)")
            XCTAssertGreaterThanOrEqual(LatencyHistogram.upperBound(i), v, "\(v) above its bucket \(i)")
            if i > 0 { XCTAssertLessThan(LatencyHistogram.upperBound(i - 1), v, "\(v) belongs to an earlier bucket") }
            // A bucket is at most 1/16 of its values wide.
            if v >= 16 { XCTAssertLessThanOrEqual(LatencyHistogram.upperBound(i) - v, v / 16 + 1) }
        }
    }

    func testQuantilesOfAKnownDistribution() {
        var h = LatencyHistogram()
        XCTAssertEqual(h.quantile(0.5), 0)
        for v in 1...10_000 { h.record(UInt64(v)) }
        XCTAssertEqual(h.total, 10_000)
        for (q, exact) in [(0.5, 5000.0), (0.99, 9900.0), (0.999, 9990.0)] {
            let got = Double(h.quantile(q))
            XCTAssertGreaterThanOrEqual(got, exact, "q\(q)")
            XCTAssertLessThanOrEqual(got, exact * (1 + 1.0 / 16) + 1, "q\(q)")
        }
        var other = LatencyHistogram()
        other.record(1_000_000)
        h.merge(other)
        XCTAssertEqual(h.total, 10_001)
        XCTAssertGreaterThanOrEqual(h.quantile(1.0), 1_000_000)
    }
}

/// The models never trap, whatever validated numbers they get (they decide in-process under fallback=local).
final class ModelBoundsTests: XCTestCase {
    func testExtremeValidatedInputsDoNotTrap() {
        let costs: [Int64] = [0, 1, 2, Limit.maxLimit]
        for a in Algorithm.allCases {
            for (limit, period, burst) in [(Int64(1), Int64(1), Int64(0)), (Limit.maxLimit, Int64(1), Int64(0)),
                                           (Int64(1), Limit.maxPeriodMs, Int64(0)), (Int64(4096), Int64(1 << 40), Int64(0))] {
                guard case let .success(lim) = Limit.validate(algorithm: a.rawValue, limit: limit, periodMs: period,
                                                              burst: burst) else { continue }
                var m = LimiterModel()
                for (i, now) in [Int64(0), 1, Limit.maxNowMs / 2, Limit.maxNowMs, 5].enumerated() {
                    let d = m.apply(lim, mode: [.hit, .peek, .check][i % 3], cost: costs[i % costs.count], now: now)
                    XCTAssertGreaterThanOrEqual(d.remaining, 0)
                    XCTAssertGreaterThanOrEqual(d.retryAfterMs, -1)
                }
            }
        }
    }
}
