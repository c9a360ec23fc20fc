// Sharing Redis with Hammer's Elixir backend: buckets it wrote (no index) are found by scan_delete, exactly.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

final class InteropTests: XCTestCase {
    var server: RedisProcess!
    override func setUp() { server = try! RedisProcess() }
    override func tearDown() { server = nil }

    /// A bucket as Hammer's Elixir backend writes it: a hash and a TTL, no index.
    func elixirBucket(_ id: String, _ bucket: Int) {
        server.cli("HSET", "Hammer:Redis:\(id):\(bucket)", "count", "1", "created", "5", "updated", "5")
        server.cli("EXPIRE", "Hammer:Redis:\(id):\(bucket)", "600")
    }

    func keys() -> [String] {
        server.cli("KEYS", "*").split(separator: "\n").map(String.init).sorted()
    }

    func testScanDeleteFindsForeignBucketsOfExactlyThatId() {
        var plain: OpaquePointer?, scanning: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000"), &plain), 0)
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&scan_delete=true"), &scanning), 0)
        defer { hammer_close(plain); hammer_close(scanning) }
        for id in ["a", "a:x", "a*", "a:1", "[a]"] { for b in 1...3 { elixirBucket(id, b) } }
        server.cli("SET", "Hammer:Redis:a:index2", "not a bucket")
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(plain, "a", 10, 1, 1, &c), 0)
        // Without scan_delete only the buckets hammer indexed go.
        var n: Int64 = -1
        XCTAssertEqual(hammer_delete_buckets(plain, "a", &n), 0)
        XCTAssertEqual(n, 1)
        XCTAssertTrue(keys().contains("Hammer:Redis:a:1"))
        // With it, the Elixir-written buckets of "a" go too, and nothing of "a:x", "a*", "a:1", "[a]".
        XCTAssertEqual(hammer_delete_buckets(scanning, "a", &n), 0)
        XCTAssertEqual(n, 3)
        let left = keys()
        XCTAssertFalse(left.contains { $0.hasPrefix("Hammer:Redis:a:") && Int($0.dropFirst("Hammer:Redis:a:".count)) != nil })
        for id in ["a:x", "a*", "a:1", "[a]"] {
            for b in 1...3 { XCTAssertTrue(left.contains("Hammer:Redis:\(id):\(b)"), "\(id):\(b) was deleted") }
        }
        XCTAssertTrue(left.contains("Hammer:Redis:a:index2"))
        // A glob-looking id deletes only itself.
        XCTAssertEqual(hammer_delete_buckets(scanning, "a*", &n), 0)
        XCTAssertEqual(n, 3)
        XCTAssertTrue(keys().contains("Hammer:Redis:a:x:1"))
    }

    func testBucketsReadAsElixirExpects() {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000"), &h), 0)
        defer { hammer_close(h) }
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "ex", 123, 1000, 2, &c), 0)
        XCTAssertEqual(hammer_count_hit(h, "ex", 123, 1500, 1, &c), 0)
        let fields = server.cli("HGETALL", "Hammer:Redis:ex:123").split(separator: "\n").map(String.init)
        XCTAssertEqual(fields, ["count", "3", "created", "1000", "updated", "1500"])
        let ttl = Int(server.cli("PTTL", "Hammer:Redis:ex:123").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        XCTAssertTrue(ttl > 60_000 && ttl <= 61_000, "PTTL \(ttl)")   // expiry_ms to expiry_ms + 1 s
        // And a bucket Elixir wrote reads back through get_bucket.
        elixirBucket("ex", 7)
        var b = hammer_bucket()
        XCTAssertEqual(hammer_get_bucket(h, "ex", 7, &b), 0)
        XCTAssertEqual([b.found, Int32(b.count), Int32(b.created), Int32(b.updated)], [1, 1, 5, 5])
    }

    /// The index names the id's live buckets (plus a few expired ones at most), and expires with them.
    func testIndexStaysTheSizeOfTheLiveBuckets() {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=300"), &h), 0)
        defer { hammer_close(h) }
        var c: Int64 = 0
        var worst = 0, liveMax = 0
        for i in 0..<60 {
            XCTAssertEqual(hammer_count_hit(h, "ix", Int64(i), Int64(i), 1, &c), 0)
            usleep(40_000)  // 2.4 s in all: buckets living 1.3 s (expiry_ms + 1 s) must expire along the way
            let size = Int(server.cli("ZCARD", "Hammer:Redis:ix:index").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            let live = server.cli("KEYS", "Hammer:Redis:ix:[0-9]*").split(separator: "\n").count
            liveMax = max(liveMax, live)
            worst = max(worst, size - live)
        }
        // Without pruning the index would name all 60 buckets; with it, at most a few expired ones beyond the live.
        XCTAssertLessThan(liveMax, 40, "the test ran too fast for buckets to expire")
        XCTAssertLessThanOrEqual(worst, 6, "the index held \(worst) expired buckets")
        let live = server.cli("KEYS", "Hammer:Redis:ix:[0-9]*").split(separator: "\n").count
        var n: Int64 = 0
        XCTAssertEqual(hammer_delete_buckets(h, "ix", &n), 0)
        XCTAssertGreaterThanOrEqual(n, Int64(live) - 2)
        XCTAssertEqual(server.cli("KEYS", "Hammer:Redis:ix:*").trimmingCharacters(in: .whitespacesAndNewlines), "")
        usleep(400_000)
        XCTAssertEqual(hammer_count_hit(h, "ix2", 1, 1, 1, &c), 0)
        usleep(1_500_000)   // the bucket and its index live expiry_ms to expiry_ms + 1 s
        XCTAssertEqual(server.cli("EXISTS", "Hammer:Redis:ix2:index").trimmingCharacters(in: .whitespacesAndNewlines), "0")
    }
}
