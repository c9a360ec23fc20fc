// SHA1: names the Lua scripts for EVALSHA, so it must agree with Redis's SHA-1 exactly.
import XCTest
@testable import HammerCore

final class SHA1Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA1.hex([]), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(SHA1.hex(bytes("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(SHA1.hex(bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
                       "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(SHA1.hex(bytes("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                                      + "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")),
                       "a49b2446a02c645bf419f995b67091253a04a259")
        XCTAssertEqual(SHA1.hex(bytes("The quick brown fox jumps over the lazy dog")),
                       "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12")
        XCTAssertEqual(SHA1.hex((0...255).map { UInt8($0) }), "4916d6bdb7f78e6803698cab32d1586ea457dfc8")
    }

    func testOneMillionA() {
        XCTAssertEqual(SHA1.hex([UInt8](repeating: 97, count: 1_000_000)), "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// Lengths around the padding boundaries: 55 fits the length in one block, 56 needs a second one.
    func testBlockBoundaries() {
        let expected: [Int: String] = [
            55: "c1c8bbdc22796e28c0e15163d20899b65621d65a",
            56: "c2db330f6083854c99d4b5bfb6e8f29f201be699",
            57: "f08f24908d682555111be7ff6f004e78283d989a",
            63: "03f09f5b158a7a8cdad920bddc29b81c18a551f5",
            64: "0098ba824b5c16427bd7a1122a5a442a25ec644d",
            65: "11655326c708d70319be2610e8a57d9a5b959d3b",
            119: "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56",
            120: "f34c1488385346a55709ba056ddd08280dd4c6d6",
            127: "89d95fa32ed44a7c610b7ee38517ddf57e0bb975",
            128: "ad5b3fdbcb526778c2839d2f151ea753995e26a0",
            129: "d96debf1bdcbc896e6c134ea76e8141f40d78536",
        ]
        for (n, hex) in expected {
            XCTAssertEqual(SHA1.hex([UInt8](repeating: 97, count: n)), hex, "\(n) x 'a'")
        }
    }

    /// Every length from 0 to 300 of pseudo-random bytes, checked against coreutils' sha1sum in one run.
    func testAgreesWithSha1sum() throws {
        guard runCommand("command -v sha1sum") != nil else { throw XCTSkip("sha1sum is not installed") }
        let dir = try XCTUnwrap(makeTempDir())
        defer { removeTree(dir) }
        var rng = SplitMix64(seed: 2024)
        var messages: [[UInt8]] = []
        for n in 0...300 {
            let m = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            messages.append(m)
            XCTAssertTrue(writeFile("\(dir)/\(n)", m))
        }
        let names = (0...300).map { "\(dir)/\($0)" }.joined(separator: " ")
        let out = try XCTUnwrap(runCommand("sha1sum \(names)"))
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.count, 301)
        for line in lines {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            let n = try XCTUnwrap(Int(try XCTUnwrap(parts.last).split(separator: "/").last ?? ""))
            XCTAssertEqual(SHA1.hex(messages[n]), String(parts[0]), "length \(n)")
        }
    }

    func testOutputIsFortyLowercaseHexDigits() {
        var rng = SplitMix64(seed: 5)
        for n in [0, 1, 20, 64, 1000] {
            let h = SHA1.hex((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            XCTAssertEqual(h.utf8.count, 40)
            XCTAssertTrue(h.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }, h)
        }
        XCTAssertNotEqual(SHA1.hex(bytes("a")), SHA1.hex(bytes("b")))
        XCTAssertNotEqual(SHA1.hex([0]), SHA1.hex([]))
    }

    func testScriptShasNameTheirSources() throws {
        for s in [Scripts.countHit, Scripts.deleteBuckets] {
            XCTAssertFalse(s.source.isEmpty)
            XCTAssertEqual(text(s.sha), SHA1.hex(s.source))
            XCTAssertEqual(s.sha.count, 40)
        }
        XCTAssertNotEqual(Scripts.countHit.sha, Scripts.deleteBuckets.sha)
        // And against an independent SHA-1: what Redis computes for EVALSHA.
        guard runCommand("command -v sha1sum") != nil else { throw XCTSkip("sha1sum is not installed") }
        let dir = try XCTUnwrap(makeTempDir())
        defer { removeTree(dir) }
        XCTAssertTrue(writeFile("\(dir)/count_hit.lua", Scripts.countHit.source))
        XCTAssertTrue(writeFile("\(dir)/delete.lua", Scripts.deleteBuckets.source))
        let a = try XCTUnwrap(runCommand("sha1sum \(dir)/count_hit.lua"))
        let b = try XCTUnwrap(runCommand("sha1sum \(dir)/delete.lua"))
        XCTAssertEqual(String(a.prefix(40)), text(Scripts.countHit.sha))
        XCTAssertEqual(String(b.prefix(40)), text(Scripts.deleteBuckets.sha))
    }

    func testScriptInit() {
        let s = Script("return 1")
        XCTAssertEqual(s.source, bytes("return 1"))
        XCTAssertEqual(text(s.sha), SHA1.hex(bytes("return 1")))
        XCTAssertEqual(text(Script("").sha), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }
}
