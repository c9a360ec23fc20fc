// The scripts the library sends are the files in lua/: Lua.generated.swift (made by lua/generate.py, committed so
// that a fresh clone builds without it) must hold exactly what lua/*.lua give, includes put in.
@testable import HammerCore
import XCTest

final class ScriptTextTests: XCTestCase {
    /// Every script's text and the file it comes from (the generated constants, by name).
    static let scripts: [(file: String, source: String)] = [
        ("bucket", LuaSource.bucket), ("check_rate", LuaSource.checkRate), ("count_hit", LuaSource.countHit),
        ("count_hits", LuaSource.countHits), ("count_hits_node", LuaSource.countHitsNode),
        ("decide_all", LuaSource.decideAll),
        ("decide_many", LuaSource.decideMany), ("decide_many_node", LuaSource.decideManyNode),
        ("delete_buckets", LuaSource.deleteBuckets), ("fixed_window", LuaSource.fixedWindow),
        ("gcra", LuaSource.gcra), ("sliding_counter", LuaSource.slidingCounter), ("sliding_window", LuaSource.slidingWindow),
    ]

    /// A file of lua/ with each `--#include <path>` line replaced by that file's text, as lua/generate.py does.
    func assembled(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let data = try XCTUnwrap(readFile(repoRoot() + "/lua/" + path), "lua/\(path) is missing", file: file, line: line)
        var out = ""
        for l in text(data).split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if l.hasPrefix("--#include ") {
                out += try assembled(String(l.dropFirst("--#include ".count)), file: file, line: line)
            } else {
                out += l + "\n"
            }
        }
        return out
    }

    func testGeneratedConstantsAreTheLuaFiles() throws {
        for (name, source) in Self.scripts {
            XCTAssertEqual(source, try assembled(name + ".lua"), "Lua.generated.swift is stale for lua/\(name).lua: run `make lua`")
        }
    }

    func testEveryLuaFileIsAScript() throws {
        let listing = try XCTUnwrap(runCommand("ls \(repoRoot())/lua"))
        let files = listing.split(separator: "\n").filter { $0.hasSuffix(".lua") }.map { String($0.dropLast(4)) }
        XCTAssertEqual(files.sorted(), Self.scripts.map(\.file).sorted())
    }

    func testScriptsAreTheirFiles() {
        XCTAssertEqual(Scripts.countHit.source, Array(LuaSource.countHit.utf8))
        XCTAssertEqual(Scripts.checkRate.source, Array(LuaSource.checkRate.utf8))
        XCTAssertEqual(Scripts.countHitMany.source, Array(LuaSource.countHits.utf8))
        XCTAssertEqual(Scripts.limiterMany.source, Array(LuaSource.decideMany.utf8))
        XCTAssertEqual(Scripts.decideAll.source, Array(LuaSource.decideAll.utf8))
        XCTAssertEqual(Scripts.countHitManyNode.source, Array(LuaSource.countHitsNode.utf8))
        XCTAssertEqual(Scripts.limiterManyNode.source, Array(LuaSource.decideManyNode.utf8))
        // Redis reads script flags only from a shebang on the first line.
        for s in [Scripts.countHitManyNode, Scripts.limiterManyNode] {
            XCTAssertTrue(s.source.starts(with: Array("#!lua flags=allow-cross-slot-keys\n".utf8)))
        }
        XCTAssertEqual(Scripts.deleteBuckets.source, Array(LuaSource.deleteBuckets.utf8))
        for a in Algorithm.allCases {
            let name: String
            switch a {
            case .fixedWindow: name = LuaSource.fixedWindow
            case .slidingWindow: name = LuaSource.slidingWindow
            case .tokenBucket, .leakyBucket: name = LuaSource.bucket
            case .gcra: name = LuaSource.gcra
            case .slidingCounter: name = LuaSource.slidingCounter
            }
            XCTAssertEqual(Scripts.limiter(a).source, Array(name.utf8), "\(a)")
        }
    }

    /// The batch scripts read the field counts the library sends.
    func testBatchScriptsNameTheirFieldCounts() {
        XCTAssertTrue(LuaSource.decideMany.contains("for o = 2 + ns * 5, #ARGV - 2, 3 do"))
        XCTAssertEqual(Scripts.limiterManyFields, 3)
        XCTAssertEqual(Scripts.limiterManySpecFields, 5)
        XCTAssertTrue(LuaSource.countHits.contains("for r = 1, #KEYS / 2 do"))
        XCTAssertTrue(LuaSource.countHits.contains("local a = 3 * r - 1"))
        XCTAssertEqual(Scripts.countHitManyFields, 3)
        XCTAssertEqual(Scripts.countHitManyKeys, 2)
        XCTAssertTrue(LuaSource.decideMany.contains("local nkeys = {[0] = 2, [1] = 2, [2] = 1, [3] = 1, [4] = 1, [5] = 1}"))
        XCTAssertTrue(LuaSource.decideAll.contains("local nkeys = {[0] = 2, [1] = 2, [2] = 1, [3] = 1, [4] = 1, [5] = 1}"))
        XCTAssertTrue(LuaSource.decideAll.contains("local f = o + 3 + 5 * (i - 1)"))
        for a in Algorithm.allCases {
            XCTAssertEqual(Keys.decisionKeyCount(a), a == .fixedWindow || a == .slidingWindow ? 2 : 1)
        }
    }
}
