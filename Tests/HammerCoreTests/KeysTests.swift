// Keys: the Redis key layout shared with the Elixir backend, byte for byte.
import XCTest
@testable import HammerCore

final class KeysTests: XCTestCase {
    let prefix = bytes("Hammer:Redis:")

    func testBucketKeyLayout() {
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("a"), bucket: 1)), "Hammer:Redis:a:1")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("user42"), bucket: 28_333_333)),
                       "Hammer:Redis:user42:28333333")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("a"), bucket: 0)), "Hammer:Redis:a:0")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("a"), bucket: -5)), "Hammer:Redis:a:-5")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("a"), bucket: Int64.max)),
                       "Hammer:Redis:a:9223372036854775807")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: bytes("a"), bucket: Int64.min)),
                       "Hammer:Redis:a:-9223372036854775808")
        XCTAssertEqual(text(Keys.bucket(prefix: prefix, id: [], bucket: 3)), "Hammer:Redis::3")
        XCTAssertEqual(text(Keys.bucket(prefix: [], id: bytes("x"), bucket: 3)), "x:3")
        XCTAssertEqual(text(Keys.bucket(prefix: bytes("my:app:"), id: bytes("a:b"), bucket: 9)), "my:app:a:b:9")
    }

    func testIndexKeyLayout() {
        XCTAssertEqual(text(Keys.index(prefix: prefix, id: bytes("a"))), "Hammer:Redis:a:index")
        XCTAssertEqual(text(Keys.index(prefix: prefix, id: [])), "Hammer:Redis::index")
        XCTAssertEqual(text(Keys.index(prefix: bytes("p:"), id: bytes("a*b"))), "p:a*b:index")
        XCTAssertEqual(Keys.indexSuffix, bytes("index"))
    }

    func testBinaryIdsAreCopiedByteForByte() {
        var rng = SplitMix64(seed: 99)
        for _ in 0..<500 {
            let id = (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let bucket = Int64(bitPattern: rng.next()) >> Int64(rng.next() % 64)
            let k = Keys.bucket(prefix: prefix, id: id, bucket: bucket)
            XCTAssertEqual(k, prefix + id + [58] + Array(String(bucket).utf8))
            XCTAssertEqual(Keys.index(prefix: prefix, id: id), prefix + id + bytes(":index"))
            XCTAssertTrue(Keys.isBucketKey(k, prefix: prefix, id: id))
        }
        let nul: [UInt8] = [0, 0xFF, 58, 0, 42]
        XCTAssertEqual(Keys.bucket(prefix: prefix, id: nul, bucket: 1), prefix + nul + [58, 49])
    }

    func testAppendIdBase() {
        var out = bytes("junk")
        bytes("id").withUnsafeBufferPointer { Keys.appendIdBase(prefix: bytes("P:"), id: $0, to: &out) }
        XCTAssertEqual(text(out), "junkP:id:")
        var empty: [UInt8] = []
        [UInt8]().withUnsafeBufferPointer { Keys.appendIdBase(prefix: [], id: $0, to: &empty) }
        XCTAssertEqual(empty, [58])
    }

    func testGlobEscape() {
        XCTAssertEqual(text(Keys.globEscape(bytes("plain:id-1"))), "plain:id-1")
        XCTAssertEqual(text(Keys.globEscape(bytes("*"))), "\\*")
        XCTAssertEqual(text(Keys.globEscape(bytes("?"))), "\\?")
        XCTAssertEqual(text(Keys.globEscape(bytes("["))), "\\[")
        XCTAssertEqual(text(Keys.globEscape(bytes("]"))), "\\]")
        XCTAssertEqual(text(Keys.globEscape(bytes("\\"))), "\\\\")
        XCTAssertEqual(text(Keys.globEscape(bytes("a*b?c[d]e\\f"))), "a\\*b\\?c\\[d\\]e\\\\f")
        XCTAssertEqual(text(Keys.globEscape(bytes("[a-z]*"))), "\\[a-z\\]\\*")
        XCTAssertEqual(Keys.globEscape([]), [])
        // Other bytes, including ^ - ! and non-ASCII, pass through.
        let others = (UInt8.min...UInt8.max).filter { ![42, 63, 91, 93, 92].contains($0) }
        XCTAssertEqual(Keys.globEscape(others), others)
    }

    /// An independent glob matcher (Redis's stringmatchlen rules for * ? [..] and \) to show the escape is exact.
    func globMatches(_ p: [UInt8], _ s: [UInt8]) -> Bool {
        func m(_ pi: Int, _ si: Int) -> Bool {
            if pi == p.count { return si == s.count }
            switch p[pi] {
            case 42: return (si...s.count).contains { m(pi + 1, $0) }
            case 63: return si < s.count && m(pi + 1, si + 1)
            case 92:
                guard pi + 1 < p.count else { return si < s.count && s[si] == 92 && m(pi + 1, si + 1) }
                return si < s.count && s[si] == p[pi + 1] && m(pi + 2, si + 1)
            case 91:
                var j = pi + 1, hit = false
                let negate = j < p.count && p[j] == 94
                if negate { j += 1 }
                while j < p.count && p[j] != 93 {
                    if p[j] == 92 && j + 1 < p.count { if si < s.count && p[j + 1] == s[si] { hit = true }; j += 2 }
                    else { if si < s.count && p[j] == s[si] { hit = true }; j += 1 }
                }
                guard si < s.count, hit != negate else { return false }
                return m(min(j + 1, p.count), si + 1)
            default:
                return si < s.count && s[si] == p[pi] && m(pi + 1, si + 1)
            }
        }
        return m(0, 0)
    }

    func testEscapedIdMatchesOnlyItself() {
        let ids = ["a*", "a?", "a[bc]", "a\\", "*", "?", "[", "]", "\\*", "a:b*", "x[^a]y", ""]
        let candidates = ids + ["ab", "a", "ax", "ab]", "ac", "a[bc]x", "b", "\\", "x", "xby", "a\\\\", "a:b", "a:bz"]
        for id in ids {
            let pattern = Keys.globEscape(bytes(id))
            for c in candidates {
                XCTAssertEqual(globMatches(pattern, bytes(c)), id == c, "pattern for '\(id)' vs '\(c)'")
            }
        }
        // The matcher itself is not trivially exact: unescaped, "a*" matches "ab".
        XCTAssertTrue(globMatches(bytes("a*"), bytes("ab")))
    }

    func testIsBucketKeyExactness() {
        let a = bytes("a")
        func key(_ s: String) -> [UInt8] { prefix + bytes(s) }
        XCTAssertTrue(Keys.isBucketKey(key("a:1"), prefix: prefix, id: a))
        XCTAssertTrue(Keys.isBucketKey(key("a:0"), prefix: prefix, id: a))
        XCTAssertTrue(Keys.isBucketKey(key("a:-5"), prefix: prefix, id: a))
        XCTAssertTrue(Keys.isBucketKey(key("a:9223372036854775807"), prefix: prefix, id: a))
        XCTAssertTrue(Keys.isBucketKey(key("a:-9223372036854775808"), prefix: prefix, id: a))
        // Keys of other ids, the index, the limiter state and near misses.
        for s in ["a:b:1", "a:index", "a:1x", "a:x1", "a:", "a", "", "a:-", "a: 1", "a:+1", "a:1.5", "ab:1",
                  "b:1", ":1", "a::1", "a:1:2", "a:sw", "a:gcra", "a:9223372036854775808", "A:1"] {
            XCTAssertFalse(Keys.isBucketKey(key(s), prefix: prefix, id: a), "'\(s)' is not a bucket of 'a'")
        }
        // The bucket of "a:b" is not a bucket of "a" and vice versa.
        XCTAssertTrue(Keys.isBucketKey(key("a:b:1"), prefix: prefix, id: bytes("a:b")))
        XCTAssertFalse(Keys.isBucketKey(key("a:1"), prefix: prefix, id: bytes("a:b")))
        XCTAssertFalse(Keys.isBucketKey(key("a:1"), prefix: prefix, id: bytes("a:1")))
        // Other prefixes, a shorter key than the prefix, and the empty id.
        XCTAssertFalse(Keys.isBucketKey(bytes("Other:a:1"), prefix: prefix, id: a))
        XCTAssertFalse(Keys.isBucketKey(bytes("Hammer:Redis"), prefix: prefix, id: a))
        XCTAssertFalse(Keys.isBucketKey(bytes("hammer:redis:a:1"), prefix: prefix, id: a))
        XCTAssertFalse(Keys.isBucketKey(bytes("XHammer:Redis:a:1"), prefix: prefix, id: a))
        XCTAssertFalse(Keys.isBucketKey([], prefix: prefix, id: a))
        XCTAssertTrue(Keys.isBucketKey(key(":7"), prefix: prefix, id: []))
        XCTAssertFalse(Keys.isBucketKey(key("a:7"), prefix: prefix, id: []))
        XCTAssertTrue(Keys.isBucketKey(bytes("a:7"), prefix: [], id: a))
    }

    func testEveryKeyWeWriteIsRecognisedOnlyForItsOwnId() {
        let ids = ["a", "a:b", "a:1", "a:b:1", "", ":", "1", "a*", "index", "a:index"].map(bytes)
        for id in ids {
            for b: Int64 in [0, 1, -1, 42, Int64.max, Int64.min] {
                let k = Keys.bucket(prefix: prefix, id: id, bucket: b)
                for other in ids {
                    XCTAssertEqual(Keys.isBucketKey(k, prefix: prefix, id: other), other == id,
                                   "key \(text(k)) vs id '\(text(other))'")
                }
            }
            let idx = Keys.index(prefix: prefix, id: id)
            for other in ids {
                XCTAssertFalse(Keys.isBucketKey(idx, prefix: prefix, id: other), "\(text(idx))")
            }
        }
    }

    func testStateSuffixesAreWordsWithoutColons() {
        XCTAssertFalse(Keys.stateSuffixes.isEmpty)
        XCTAssertEqual(Set(Keys.stateSuffixes).count, Keys.stateSuffixes.count)
        for s in Keys.stateSuffixes + [Keys.indexSuffix] {
            XCTAssertFalse(s.isEmpty)
            XCTAssertFalse(s.contains(58), text(s))
            XCTAssertNil(Decimal.parse(s), "a suffix must not read as a bucket number: \(text(s))")
        }
    }

    func testOwnSuffixesAreOneFormWithoutColonsAndNamedByTheLimit() {
        let tb = Limit(algorithm: .tokenBucket, limit: 10, periodMs: 1000, burst: 20)
        XCTAssertEqual(text(Keys.ownSuffix(Array("tb".utf8), tb)), "tb.10.1000.20")
        let sw = Limit(algorithm: .slidingWindow, limit: 3, periodMs: 60_000, burst: 7)
        XCTAssertEqual(Keys.stateKeys(.slidingWindow).map { text(Keys.ownSuffix($0, sw)) },
                       ["sw.3.60000.3", "swm.3.60000.3"], "a window's capacity is its limit")
        XCTAssertEqual(Keys.stateKeys(.fixedWindow), [])
        let max = Limit(algorithm: .gcra, limit: Limit.maxLimit, periodMs: Limit.maxPeriodMs, burst: Limit.maxLimit)
        for w in Keys.stateSuffixes {
            for l in [tb, sw, max] {
                let s = Keys.ownSuffix(w, l)
                XCTAssertTrue(Keys.isOwnSuffix(s), text(s))
                XCTAssertFalse(s.contains(58), text(s))
                XCTAssertNil(Decimal.parse(s), text(s))
            }
        }
        // Anything else in an index names no key of the id.
        XCTAssertTrue(Keys.isOwnSuffix(Array("fw.5.60000.5.28333333".utf8)))
        for bad in ["fw.1.2.3", "fw.1.2.3.4.5", "fw.1.2.3.-4", "tb.1.2", "tb.1.2.3.4", "zz.1.2.3", "tb.1.2.x", "tb..2.3", "tb.1.2.3:1", "x:1", "tb.-1.2.3",
                    "tb.12345678901234567890.1.1", "", "7", "index", "tb", " tb.1.2.3", "TB.1.2.3"] {
            XCTAssertFalse(Keys.isOwnSuffix(Array(bad.utf8)), bad)
        }
    }

    func testOwnStatesFollowTheSetNotItsOrder() {
        let sec = Limit(algorithm: .slidingWindow, limit: 10, periodMs: 1000)
        let day = Limit(algorithm: .slidingWindow, limit: 1000, periodMs: 86_400_000)
        let tb = Limit(algorithm: .tokenBucket, limit: 5, periodMs: 1000)
        let c1 = Limit(algorithm: .slidingCounter, limit: 5, periodMs: 1000)
        let c2 = Limit(algorithm: .slidingCounter, limit: 6, periodMs: 1000)
        let c3 = Limit(algorithm: .slidingCounter, limit: 6, periodMs: 2000)
        let fw1 = Limit(algorithm: .fixedWindow, limit: 5, periodMs: 1000)
        let fw2 = Limit(algorithm: .fixedWindow, limit: 6, periodMs: 60_000)
        func own(_ l: [Limit]) -> [Bool] { MultiLimit.ownStates(MultiLimit.fold(l)) }
        XCTAssertEqual(own([sec, tb, day]), [true, false, true])
        XCTAssertEqual(own([day, sec, tb]), [true, true, false])
        XCTAssertEqual(own([sec, tb]), [false, false], "an algorithm alone keeps the id's state")
        XCTAssertEqual(own([c1, c2, c3]), [true, true, false], "counters share a state per period only")
        XCTAssertEqual(own([fw1, fw2, tb]), [false, false, false], "fixed windows of two periods: Hammer's buckets")
        let fw3 = Limit(algorithm: .fixedWindow, limit: 7, periodMs: 60_000)
        XCTAssertEqual(own([fw1, fw2, fw3]), [false, true, true], "of one period: buckets of their own")
        XCTAssertNil(MultiLimit.conflict(MultiLimit.fold([fw2, fw3]), now: 1_700_000_000_000))
        XCTAssertEqual(own([sec, Limit(algorithm: .slidingWindow, limit: 10, periodMs: 1000, burst: 4)]), [false],
                       "the same limit folds")
        XCTAssertEqual(MultiLimit.fold([tb, Limit(algorithm: .tokenBucket, limit: 5, periodMs: 1000, burst: 5)])
                        .unique.count, 1, "burst 0 is the limit")
        XCTAssertNil(MultiLimit.conflict(MultiLimit.fold([sec, day, tb, c1, c2]), now: 1_700_000_000_000))
        XCTAssertNil(MultiLimit.conflict(MultiLimit.fold([fw1, Limit(algorithm: .fixedWindow, limit: 9,
                                                                      periodMs: 1000)]), now: 1_700_000_000_000))
        // Periods so close that their window numbers meet now: Hammer's buckets would be one.
        let y = Limit(algorithm: .fixedWindow, limit: 5, periodMs: Limit.maxPeriodMs)
        let y2 = Limit(algorithm: .fixedWindow, limit: 5, periodMs: Limit.maxPeriodMs - 1000)
        XCTAssertNotNil(MultiLimit.conflict(MultiLimit.fold([y, y2]), now: 1_700_000_000_000))
        XCTAssertNil(MultiLimit.conflict(MultiLimit.fold([y, y2]), now: Limit.maxPeriodMs - 1), "not at this time")
    }
}
