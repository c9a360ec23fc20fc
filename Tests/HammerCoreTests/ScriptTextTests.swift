// The Lua texts as built in Swift: batch versions of the algorithms return their decision as several values (no
// table per request), and the single-call scripts still return one table.
@testable import HammerCore
import XCTest

final class ScriptTextTests: XCTestCase {
    func testMultipleReturnsRewritesOnlyWholeReturnLines() {
        let body = """
          local x = {1, 2}
          if a then
            return {ok, B, 0, retry, reset}
          end
          return {ok, cdiv(Da, P), rem}
          return {x = 1} -- a comment keeps it a table
        """
        XCTAssertEqual(Scripts.multipleReturns(body), """
          local x = {1, 2}
          if a then
            return ok, B, 0, retry, reset
          end
          return ok, cdiv(Da, P), rem
          return {x = 1} -- a comment keeps it a table
        """)
    }

    func testBatchFunctionsReturnNoTables() {
        for (name, body) in [("fixed_window", Scripts.fixedWindowBody), ("bucket", Scripts.bucketBody),
                             ("gcra", Scripts.gcraBody)] {
            let text = Scripts.function(name, body)
            XCTAssertTrue(body.contains("return {"), name)
            XCTAssertFalse(text.contains("return {"), "\(name): a decision still returned as a table")
        }
        XCTAssertFalse(Scripts.slidingWindowLua.contains("return {"))
        // The single-call scripts answer one array of 5.
        let single = String(decoding: Scripts.slidingWindow.source, as: UTF8.self)
        XCTAssertTrue(single.contains("return {sliding_window("))
        XCTAssertTrue(String(decoding: Scripts.bucket.source, as: UTF8.self).contains("return {ok,"))
    }

    func testBatchScriptsNameTheirFieldCounts() {
        let many = String(decoding: Scripts.limiterMany.source, as: UTF8.self)
        XCTAssertTrue(many.contains("local o, last = 2 + ns * 5, #ARGV - 3"))
        XCTAssertEqual(Scripts.limiterManyFields, 4)
        XCTAssertEqual(Scripts.limiterManySpecFields, 5)
        let counts = String(decoding: Scripts.countHitMany.source, as: UTF8.self)
        XCTAssertTrue(counts.contains("for o = 1, #ARGV - 4, 4 do"))
        XCTAssertEqual(Scripts.countHitManyFields, 4)
    }
}
