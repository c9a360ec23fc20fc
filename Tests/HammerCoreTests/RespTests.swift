// Commands written in RESP by the library itself (instead of hiredis's formatting).
@testable import HammerCore
import XCTest

final class RespTests: XCTestCase {
    func resp(_ args: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        for a in args {
            bytes += a
            ends.append(bytes.count)
        }
        var out: [UInt8] = [1, 2]   // appended after what is there
        Resp.appendCommand(bytes: bytes, ends: ends, to: &out)
        XCTAssertEqual(Array(out.prefix(2)), [1, 2])
        return Array(out.dropFirst(2))
    }

    func testCommandsAreArraysOfBulkStrings() {
        XCTAssertEqual(resp([Array("PING".utf8)]), Array("*1\r\n$4\r\nPING\r\n".utf8))
        XCTAssertEqual(resp([Array("EVALSHA".utf8), Array("ab".utf8), [], Array("12345678901".utf8)]),
                       Array("*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$0\r\n\r\n$11\r\n12345678901\r\n".utf8))
        // Binary-safe: NUL, CR, LF and '$' inside an argument are its bytes, counted by its length.
        XCTAssertEqual(resp([[0, 13, 10, 36, 255]]), Array("*1\r\n$5\r\n".utf8) + [0, 13, 10, 36, 255] + [13, 10])
        XCTAssertEqual(resp([]), Array("*0\r\n".utf8))
        let long = [UInt8](repeating: 120, count: 70_000)
        XCTAssertEqual(resp([long]), Array("*1\r\n$70000\r\n".utf8) + long + [13, 10])
    }
}
