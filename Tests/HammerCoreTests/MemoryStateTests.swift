// memory:// in HammerCore: the URL (Config.parse) and the state of one id (MemoryState): Hammer's buckets and
// their TTLs, the keys delete_buckets counts, expiry of every part. Decisions are compared with Redis's in
// HammerRedisTests (MemoryBackendTests, MemoryModelComparisonTests).
@testable import HammerCore
import XCTest

final class MemoryStateTests: XCTestCase {
    func testMemoryURLs() throws {
        let c = try Config.parse("memory://?expiry_ms=60000").get()
        XCTAssertTrue(c.memory)
        XCTAssertEqual(c.expiryMs, 60000)
        XCTAssertEqual(c.clock, .local)
        XCTAssertTrue(try Config.parse("MEMORY://?expiry_ms=1&clock=local").get().memory)
        XCTAssertFalse(try Config.parse("redis://h/?expiry_ms=1").get().memory)
        func refused(_ url: String, _ word: String) {
            switch Config.parse(url) {
            case .success: XCTFail("\(url) accepted")
            case let .failure(f):
                XCTAssertEqual(f.status, .invalid, url)
                XCTAssertTrue(f.message.contains(word), "\(url): \(f.message)")
            }
        }
        // expiry_ms is count_hit's alone: without it memory:// opens, and count_hit names the option.
        XCTAssertTrue(try Config.parse("memory://").get().countHitProblem?.contains("expiry_ms") ?? false)
        refused("memory://localhost/?expiry_ms=1", "no host or path")
        refused("memory:///0?expiry_ms=1", "no host or path")
        refused("memory://?expiry_ms=1&clock=redis", "clock must be local")
        for opt in ["prefix=x", "fallback=local", "on_error=allow", "pool_size=2", "timeout_ms=5", "hash_tags=true",
                    "scan_delete=true", "db=1", "password=x"] {
            refused("memory://?expiry_ms=1&\(opt)", "means nothing without Redis")
        }
        refused("memory://?expiry_ms=1&password=hunter2", "not shown")
        refused("nosuch", "memory://")
    }

    func testCountHitStampsAndRefreshesLikeTheScript() throws {
        var s = MemoryState()
        XCTAssertEqual(try s.countHit(7, incr: 2, now: 100, ttl: 5000, refresh: true, mono: 0).get(), 2)
        XCTAssertEqual(s.bucket(7, 0), MemoryBucket(count: 2, created: 100, updated: 100, expires: 6000))
        // Within ttl ... ttl + 1 s of what is left: the TTL stays.
        XCTAssertEqual(try s.countHit(7, incr: 1, now: 200, ttl: 5000, refresh: true, mono: 900).get(), 3)
        XCTAssertEqual(s.bucket(7, 900)?.expires, 6000)
        XCTAssertEqual(s.bucket(7, 900)?.updated, 200)
        // Less than ttl left: set again to ttl + 1 s.
        XCTAssertEqual(try s.countHit(7, incr: 0, now: 300, ttl: 5000, refresh: true, mono: 1001).get(), 3)
        XCTAssertEqual(s.bucket(7, 1001)?.expires, 7001)
        XCTAssertEqual(s.bucket(7, 1001)?.created, 100)
        // Without refresh (check_rate): the first TTL stays.
        XCTAssertEqual(try s.countHit(9, incr: 0, now: 5, ttl: 300, refresh: false, mono: 0).get(), 0)
        XCTAssertEqual(try s.countHit(9, incr: 1, now: 6, ttl: 300, refresh: false, mono: 200).get(), 1)
        XCTAssertEqual(s.bucket(9, 200)?.expires, 300)
        XCTAssertEqual(s.keyCount(200), 2)
        // Redis refuses an increment past int64: nothing changes.
        XCTAssertEqual(s.countHit(7, incr: Int64.max, now: 1, ttl: 5000, refresh: true, mono: 1002).failureValue?.status,
                       .invalid)
        XCTAssertEqual(s.bucket(7, 1002)?.count, 3)
        XCTAssertEqual(s.keyCount(1002), 1, "bucket 9 expired at 300")
        s.purge(7000)
        XCTAssertEqual(s.keyCount(7000), 1)
        XCTAssertNil(s.buckets[9])
        s.purge(7001)
        XCTAssertTrue(s.isEmpty)
    }

    func testEachAlgorithmsStateExpiresWithTheScriptsTTL() throws {
        var s = MemoryState()
        let now: Int64 = 1_700_000_000_000
        for a in Algorithm.allCases {
            let d = try s.decide(Limit(algorithm: a, limit: 10, periodMs: 1000), mode: .hit, cost: 1, now: now,
                                 mono: 0).get()
            XCTAssertTrue(d.allowed)
        }
        // The window's bucket (1 key), the log and its meta (2), the two buckets, GCRA and the counters' hash (1 each).
        XCTAssertEqual(s.keyCount(0), 7)
        XCTAssertEqual(s.token?.expires, 100 + 1000, "drains in 100 ms, and a second")
        XCTAssertEqual(s.gcra?.expires, 1100)
        XCTAssertEqual(s.sliding?.expires, 2000, "the newest hit leaves in 1 s, and a second")
        XCTAssertEqual(s.counters?.expires, 3000, "the window weighs until the next one ends, and a second")
        // A peek and a denied hit change nothing, TTLs included.
        var lim = Limit(algorithm: .slidingWindow, limit: 1, periodMs: 1000)
        XCTAssertFalse(try s.decide(lim, mode: .hit, cost: 1, now: now + 10, mono: 10).get().allowed)
        lim.algorithm = .tokenBucket
        _ = try s.decide(lim, mode: .peek, cost: 1, now: now + 10, mono: 10).get()
        XCTAssertEqual(s.sliding?.expires, 2000)
        XCTAssertEqual(s.token?.expires, 1100)
        s.purge(1100)
        XCTAssertNil(s.token)
        XCTAssertNil(s.gcra)
        XCTAssertNil(s.leaky)
        XCTAssertEqual(s.keyCount(1100), 4)
        s.purge(2000)
        XCTAssertEqual(s.snapshot, ["swc 1000=Optional(1700000000) 1 0"])
        s.purge(3000)
        XCTAssertTrue(s.isEmpty, "\(s.snapshot)")
    }

    func testShardsSpreadIdsThatDifferInTheirLastBytes() {
        // FNV-1a alone puts "x:0" ... "x:6399" in a few of 64 shards (its high bits hardly see the last bytes).
        var perShard = [Int](repeating: 0, count: 64)
        for i in 0..<6400 {
            Array("x:\(i)".utf8).withUnsafeBufferPointer { perShard[shardIndex($0, bits: 6)] += 1 }
        }
        XCTAssertGreaterThan(perShard.min()!, 50, "\(perShard)")
        XCTAssertLessThan(perShard.max()!, 150, "\(perShard)")
    }
}
