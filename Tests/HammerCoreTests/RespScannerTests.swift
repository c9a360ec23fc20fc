// The check of the reply stream before hiredis's reader: valid replies pass in any split, oversized or malformed
// headers are refused as soon as their bytes show it.
@testable import HammerCore
import XCTest

final class RespScannerTests: XCTestCase {
    /// Scans `text` in pieces of `piece` bytes; nil when all of it passed, else the first refusal.
    func scan(_ text: [UInt8], piece: Int = .max, _ limits: RespLimits = .single) -> String? {
        var s = RespScanner(limits: limits)
        var i = 0
        while i < text.count {
            let end = min(text.count, i + min(piece, text.count - i))
            let why = text[i..<end].withUnsafeBytes { s.scan($0) }
            if let why { return why }
            i = end
        }
        return nil
    }

    func testValidRepliesPassWhateverTheSplit() {
        let replies = [
            ":1\r\n", ":-9223372036854775808\r\n", "+OK\r\n", "-ERR wrong\r\n", "$-1\r\n", "*-1\r\n", "$0\r\n\r\n",
            "$5\r\nab\r\nc\r\n",   // a bulk's bytes may hold CR LF: they are counted, not parsed
            "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n",
            "*2\r\n$1\r\n0\r\n*3\r\n$3\r\nk:1\r\n$0\r\n\r\n$-1\r\n",
            "*0\r\n",
        ]
        let all = Array(replies.joined().utf8)
        for piece in [1, 2, 3, 7, 1000] {
            XCTAssertNil(scan(all, piece: piece), "piece \(piece)")
        }
    }

    func testOversizedHeadersAreRefusedBeforeTheirEnd() {
        // The first bytes that exceed the limit are refused: no CRLF needed, nothing more read.
        XCTAssertNotNil(scan(Array("*2147483647".utf8)))
        XCTAssertNotNil(scan(Array("*65".utf8)))                    // a single call expects at most 64 elements
        XCTAssertNil(scan(Array("*64\r\n".utf8)))
        XCTAssertNotNil(scan(Array("$2147483647".utf8)))
        XCTAssertNotNil(scan(Array("$1048577".utf8)))
        XCTAssertNotNil(scan(Array("$99999999999999999999999999".utf8)))   // no overflow either
        XCTAssertNotNil(scan([43] + [UInt8](repeating: 120, count: 70_000)))
        let batch = RespLimits(elements: 648)
        XCTAssertNil(scan(Array("*648\r\n".utf8), batch))
        XCTAssertNotNil(scan(Array("*649\r\n".utf8), batch))
    }

    func testMalformedStreamsAreRefused() {
        for bad in ["!3\r\n", "*-5\r\n", "*-1x\r\n", "$1x\r\n", "*\r\n", "*1\rX", "$3\r\nabcXY", "$3\r\nabc\rX",
                    "$2\r\n42:7\r\n", "\r\n", "*--1\r\n"] {
            XCTAssertNotNil(scan(Array(bad.utf8)), bad.debugDescription)
        }
    }

    func testTheWholeCallIsBounded() {
        var s = RespScanner(limits: RespLimits(elements: 8, totalBytes: 10))
        XCTAssertNil(":1\r\n:2\r\n".utf8.withContiguousStorageIfAvailable { s.scan(UnsafeRawBufferPointer($0)) }!)
        XCTAssertNotNil(":3\r\n".utf8.withContiguousStorageIfAvailable { s.scan(UnsafeRawBufferPointer($0)) }!)
        // A new call starts its count from zero, at the same place in the stream.
        s.begin(RespLimits(elements: 8, totalBytes: 10))
        XCTAssertNil(":4\r\n".utf8.withContiguousStorageIfAvailable { s.scan(UnsafeRawBufferPointer($0)) }!)
    }
}
