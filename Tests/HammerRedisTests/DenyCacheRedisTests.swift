// The deny cache on a real redis-server, from many threads at once: the entries stay within deny_cache=ENTRIES
// whatever the number of ids, every hit is decided once (the limit's hits pass, none more), and what the cache
// served adds up in the statistics.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

final class DenyCacheRedisTests: XCTestCase {
    func testThreadsManyIdsTheBoundHoldsAndEveryHitIsDecidedOnce() throws {
        let server = try RedisProcess()
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&deny_cache=50&pool_size=4"), &h), 0,
                       String(cString: hammer_last_error()))
        defer { hammer_close(h) }
        let hd = try XCTUnwrap(handle(h))
        let cache = try XCTUnwrap(hd.denyCache)
        var lim = hammer_limit(algorithm: Int32(HAMMER_FIXED_WINDOW), limit: 2, period_ms: 100_000_000_000, burst: 0)
        let threads = 4, ids = 120, rounds = 4
        let allowed = UnsafeMutablePointer<Int>.allocate(capacity: threads * ids)
        allowed.initialize(repeating: 0, count: threads * ids)
        defer { allowed.deallocate() }
        let handleRef = h
        var maxEntries = 0
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for r in 0..<rounds {
                for k in 0..<ids {
                    // Every thread hits every id; ids shared by all threads, each at 4x its limit over the run.
                    let id = "dc:\(k)"
                    var out = hammer_decision()
                    guard hammer_hit(handleRef, id, &lim, 1, &out) == 0 else { continue }
                    if out.allowed == 1 { allowed[t * ids + k] += 1 }
                    if r == rounds - 1 && k % 16 == 0 {
                        let n = cache.totals().entries
                        lock.lock()
                        maxEntries = max(maxEntries, n)
                        lock.unlock()
                    }
                }
            }
        }
        for k in 0..<ids {
            let n = (0..<threads).reduce(0) { $0 + allowed[$1 * ids + k] }
            XCTAssertEqual(n, 2, "id \(k): \(n) hits allowed, limit 2")
        }
        let (hits, entries) = cache.totals()
        XCTAssertLessThanOrEqual(entries, 50)
        XCTAssertLessThanOrEqual(maxEntries, 50)
        XCTAssertGreaterThan(entries, 0)
        XCTAssertGreaterThan(hits, 0, "denials were served from the cache")
        var s = hammer_stats_t()
        s.size = UInt32(MemoryLayout<hammer_stats_t>.size)
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertEqual(s.deny_cache_hits, hits)
        XCTAssertEqual(s.calls, UInt64(threads * ids * rounds))
        XCTAssertEqual(s.allowed, UInt64(2 * ids))
        XCTAssertEqual(s.denied, UInt64(threads * ids * rounds - 2 * ids))
    }
}
