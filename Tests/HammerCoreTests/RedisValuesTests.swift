// Values read from Redis may be anything another client wrote: the arithmetic on them clamps, never traps.
import HammerCore
import XCTest

final class RedisValuesTests: XCTestCase {
    func testCheckRateWithAnyCountFromRedis() {
        for count in [Int64.min, Int64.min + 1, -1, 0, 1, 10, 11, Int64.max] {
            let d = Decision.checkRate(count: count, limit: 10, increment: 1, leftMs: 500)
            XCTAssertEqual(d.allowed, count <= 10, "\(count)")
            XCTAssertTrue((0...10).contains(d.remaining), "\(count): remaining \(d.remaining)")
            XCTAssertEqual(d.count, count)
        }
    }

    func testAddingClamped() {
        XCTAssertEqual(Int64.max.addingClamped(1), .max)
        XCTAssertEqual(Int64.min.addingClamped(-1), .min)
        XCTAssertEqual(Int64(5).addingClamped(-7), -2)
        XCTAssertEqual(Int64.max.addingClamped(Int64.min), -1)
    }
}
