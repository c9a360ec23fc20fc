// Decimal: exact Int64 <-> decimal bytes, the only way numbers travel to and from Redis.
import XCTest
@testable import HammerCore

final class DecimalTests: XCTestCase {
    func testBytesOfKnownValues() {
        XCTAssertEqual(text(Decimal.bytes(0)), "0")
        XCTAssertEqual(text(Decimal.bytes(7)), "7")
        XCTAssertEqual(text(Decimal.bytes(10)), "10")
        XCTAssertEqual(text(Decimal.bytes(-1)), "-1")
        XCTAssertEqual(text(Decimal.bytes(-10)), "-10")
        XCTAssertEqual(text(Decimal.bytes(1_000_000_007)), "1000000007")
        XCTAssertEqual(text(Decimal.bytes(Int64.max)), "9223372036854775807")
        XCTAssertEqual(text(Decimal.bytes(Int64.min)), "-9223372036854775808")
        XCTAssertEqual(text(Decimal.bytes(Int64.min + 1)), "-9223372036854775807")
        XCTAssertEqual(text(Decimal.bytes(Int64.max - 1)), "9223372036854775806")
    }

    func testBytesAgreeWithTheStandardLibrary() {
        var rng = SplitMix64(seed: 42)
        var values: [Int64] = [0, 1, -1, 9, -9, 10, -10, 99, 100, Int64.max, Int64.min]
        var p: Int64 = 1
        for _ in 0..<18 {
            p *= 10
            values += [p - 1, p, p + 1, -(p - 1), -p, -(p + 1)]
        }
        for _ in 0..<20_000 {
            let raw = Int64(bitPattern: rng.next())
            // Mix magnitudes: shift right by a random amount so short numbers are as common as long ones.
            values.append(raw >> Int64(rng.next() % 64))
        }
        for v in values {
            XCTAssertEqual(text(Decimal.bytes(v)), String(v), "\(v)")
        }
    }

    func testAppendAddsToExistingBytes() {
        var out = bytes("key:")
        Decimal.append(-42, to: &out)
        Decimal.append(0, to: &out)
        Decimal.append(Int64.min, to: &out)
        XCTAssertEqual(text(out), "key:-420-9223372036854775808")
    }

    func testParseAccepts() {
        XCTAssertEqual(Decimal.parse("0"), 0)
        XCTAssertEqual(Decimal.parse("-0"), 0)
        XCTAssertEqual(Decimal.parse("000123"), 123)
        XCTAssertEqual(Decimal.parse("-5"), -5)
        XCTAssertEqual(Decimal.parse("9223372036854775807"), Int64.max)
        XCTAssertEqual(Decimal.parse("-9223372036854775808"), Int64.min)
        XCTAssertEqual(Decimal.parse("-9223372036854775807"), Int64.min + 1)
        XCTAssertEqual(Decimal.parse("00000000000000000000000000009223372036854775807"), Int64.max)
    }

    func testParseRejects() {
        let refused = ["", "-", "+1", " 1", "1 ", "1a", "a1", "--1", "-+1", "1-", "1.0", "1e3", "0x10", "１",
                       "9223372036854775808", "-9223372036854775809", "18446744073709551615",
                       "18446744073709551616", "99999999999999999999", "-99999999999999999999",
                       "184467440737095516150", "\u{0}", "1\u{0}"]
        for s in refused {
            XCTAssertNil(Decimal.parse(s), "'\(s)' should be refused")
            XCTAssertNil(Decimal.parse(bytes(s)), "'\(s)' as bytes should be refused")
        }
        // Every single byte that is not a digit is refused alone and inside a number.
        for b in UInt8.min...UInt8.max where !(48...57).contains(b) {
            XCTAssertNil(Decimal.parse([b]), "byte \(b)")
            XCTAssertNil(Decimal.parse([49, b, 50]), "byte \(b)")
            if b != 45 { XCTAssertNil(Decimal.parse([b, 49]), "byte \(b)") }
        }
    }

    func testRoundTrip() {
        var rng = SplitMix64(seed: 7)
        for i in 0..<20_000 {
            let v = Int64(bitPattern: rng.next()) >> Int64(i % 64)
            XCTAssertEqual(Decimal.parse(Decimal.bytes(v)), v)
        }
        for v in [Int64.min, Int64.min + 1, -1, 0, 1, Int64.max - 1, Int64.max] {
            XCTAssertEqual(Decimal.parse(Decimal.bytes(v)), v)
            XCTAssertEqual(Decimal.parse(String(v)), v)
        }
    }

    func testParseOfSlices() {
        // Slices keep their parent's indices; parse must read only the slice.
        let b = bytes("key:12345:x")
        XCTAssertEqual(Decimal.parse(b[4..<9]), 12345)
        XCTAssertNil(Decimal.parse(b[4..<10]))
        XCTAssertNil(Decimal.parse(b[4..<4]))
        XCTAssertEqual(Decimal.parse(bytes("-7")[0...]), -7)
        XCTAssertEqual(Decimal.parse("9".utf8), 9)
    }
}
