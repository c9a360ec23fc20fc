// The cluster's pure parts: slot rule, braced key layout, slot map and redirection parsing, the cluster URL.
import XCTest
@testable import HammerCore

final class ClusterCoreTests: XCTestCase {
    func testCRC16XmodemCheckValue() {
        XCTAssertEqual(ClusterSlot.crc16(bytes("123456789")), 0x31C3)
        XCTAssertEqual(ClusterSlot.crc16([UInt8]()), 0)
    }

    /// Values from CLUSTER KEYSLOT on redis 7.0.15 (scaleout notes, section 2).
    func testSlotsAgreeWithRedis() {
        XCTAssertEqual(ClusterSlot.of(bytes("123456789")), 12739)
        XCTAssertEqual(ClusterSlot.of(bytes("LIMITS:{api:42}")), 12479)
        XCTAssertEqual(ClusterSlot.of(bytes("LIMITS:{api:42}/-1")), 12479)
        XCTAssertEqual(ClusterSlot.of(bytes("api:42")), 12479)
        XCTAssertEqual(ClusterSlot.of(bytes("foo{}{bar}")), ClusterSlot.of(bytes("foo{}{bar}")))
        XCTAssertEqual(ClusterSlot.of(bytes("foo{}{bar}")), 8363)
        XCTAssertEqual(ClusterSlot.of(bytes("foo{{bar}}zap")), 4015)
        XCTAssertEqual(ClusterSlot.of(bytes("foo{bar}{zap}")), 5061)
        XCTAssertEqual(ClusterSlot.of(bytes("{b}:cur")), 3300)
        XCTAssertEqual(ClusterSlot.of(bytes("foo{bar")), Int(ClusterSlot.crc16(bytes("foo{bar")) & 0x3FFF))
    }

    func testEveryKeyOfAnIdIsInTheIdsSlot() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            var id = (0..<Int(1 + rng.next() % 20)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if id[0] == 125 { id[0] = 0 }
            let prefix = bytes("Hammer:Redis:")
            let slot = id.withUnsafeBufferPointer { ClusterSlot.ofId($0) }
            var keys = [Keys.bucket(prefix: prefix, id: id, bucket: Int64(bitPattern: rng.next()), tags: true),
                        Keys.index(prefix: prefix, id: id, tags: true)]
            for s in Keys.stateSuffixes {
                var k: [UInt8] = []
                id.withUnsafeBufferPointer { Keys.appendIdBase(prefix: prefix, id: $0, tags: true, to: &k) }
                keys.append(k + s)
            }
            for k in keys { XCTAssertEqual(ClusterSlot.of(k), slot, "key \(k)") }
        }
    }

    func testBracedLayout() {
        let p = bytes("Hammer:Redis:")
        XCTAssertEqual(text(Keys.bucket(prefix: p, id: bytes("user42"), bucket: 7, tags: true)), "Hammer:Redis:{user42}:7")
        XCTAssertEqual(text(Keys.index(prefix: p, id: bytes("a"), tags: true)), "Hammer:Redis:{a}:index")
        XCTAssertTrue(Keys.isBucketKey(bytes("Hammer:Redis:{a}:12"), prefix: p, id: bytes("a"), tags: true))
        XCTAssertFalse(Keys.isBucketKey(bytes("Hammer:Redis:a:12"), prefix: p, id: bytes("a"), tags: true))
        XCTAssertFalse(Keys.isBucketKey(bytes("Hammer:Redis:{a}:index"), prefix: p, id: bytes("a"), tags: true))
        XCTAssertFalse(Keys.isBucketKey(bytes("Hammer:Redis:{a}}:1"), prefix: p, id: bytes("a"), tags: true))
        XCTAssertTrue(Keys.isBucketKey(bytes("Hammer:Redis:{a}}:1"), prefix: p, id: bytes("a}"), tags: true))
        XCTAssertNil(bytes("x").withUnsafeBufferPointer { Keys.tagProblem(id: $0) })
        XCTAssertNotNil([UInt8]().withUnsafeBufferPointer { Keys.tagProblem(id: $0) })
        XCTAssertNotNil(bytes("}x").withUnsafeBufferPointer { Keys.tagProblem(id: $0) })
        XCTAssertNil(bytes("x}").withUnsafeBufferPointer { Keys.tagProblem(id: $0) })
    }

    func testRedirections() {
        XCTAssertEqual(Redirect.parse(bytes("MOVED 3300 127.0.0.1:7101")),
                       .moved(slot: 3300, to: NodeAddress(host: "127.0.0.1", port: 7101)))
        XCTAssertEqual(Redirect.parse(bytes("ASK 15495 localhost:7202")),
                       .ask(slot: 15495, to: NodeAddress(host: "localhost", port: 7202)))
        XCTAssertEqual(Redirect.parse(bytes("MOVED 1 ::1:7000")), .moved(slot: 1, to: NodeAddress(host: "::1", port: 7000)))
        XCTAssertEqual(Redirect.parse(bytes("TRYAGAIN Multiple keys request during rehashing of slot")), .tryAgain)
        XCTAssertEqual(Redirect.parse(bytes("CLUSTERDOWN The cluster is down")), .clusterDown)
        XCTAssertEqual(Redirect.parse(bytes("CLUSTERDOWN")), .clusterDown)
        for bad in ["MOVED", "MOVED 16384 h:1", "MOVED -1 h:1", "MOVED 1 h:0", "MOVED 1 h:70000", "MOVED 1 h",
                    "MOVED 1 h:1 extra", "MOVEDX 1 h:1", "ASK 1 bad/host:1", "ERR MOVED 1 h:1", "TRYAGAINX",
                    "moved 1 h:1", "ASK 1 :7000", ""] {
            XCTAssertNil(Redirect.parse(bytes(bad)), bad)
        }
    }

    func shardsReply(_ port7002Role: String = "master") -> RedisValue {
        func node(_ port: Int64, _ role: String, health: String = "online", endpoint: String = "127.0.0.1") -> RedisValue {
            .array([.bulk(bytes("id")), .bulk(bytes("abc")), .bulk(bytes("port")), .integer(port),
                    .bulk(bytes("ip")), .bulk(bytes("127.0.0.1")), .bulk(bytes("endpoint")), .bulk(bytes(endpoint)),
                    .bulk(bytes("role")), .bulk(bytes(role)), .bulk(bytes("replication-offset")), .integer(9),
                    .bulk(bytes("health")), .bulk(bytes(health))])
        }
        func shard(_ ranges: [Int64], _ nodes: [RedisValue]) -> RedisValue {
            .array([.bulk(bytes("slots")), .array(ranges.map { .integer($0) }), .bulk(bytes("nodes")), .array(nodes)])
        }
        return .array([
            shard([0, 5460], [node(7103, "replica"), node(7000, "master")]),
            shard([5461, 10922], [node(7001, "master", endpoint: "?")]),
            shard([10923, 16000, 16001, 16383], [node(7002, port7002Role), node(7102, "replica")]),
        ])
    }

    func testParseShards() throws {
        let m = try SlotMap.parseShards(shardsReply(), seedHost: "seed").get()
        XCTAssertEqual(m.coveredSlots, 16384)
        XCTAssertEqual(m.node(ofSlot: 0), NodeAddress(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(m.node(ofSlot: 5460), NodeAddress(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(m.node(ofSlot: 5461), NodeAddress(host: "127.0.0.1", port: 7001))   // "?" -> ip
        XCTAssertEqual(m.node(ofSlot: 16383), NodeAddress(host: "127.0.0.1", port: 7002))
        XCTAssertEqual(m.nodes.count, 3)
        // A shard without a master leaves its slots unserved.
        let half = try SlotMap.parseShards(shardsReply("replica"), seedHost: "seed").get()
        XCTAssertNil(half.node(ofSlot: 12000))
        XCTAssertEqual(half.coveredSlots, 10923)
        XCTAssertNil(m.node(ofSlot: 16384))
        XCTAssertNil(m.node(ofSlot: -1))
    }

    func testShardsRepliesThatMakeNoSenseAreRefused() {
        let bads: [RedisValue] = [
            .integer(1), .array([.integer(1)]),
            .array([.array([.bulk(bytes("slots")), .array([.integer(0)]), .bulk(bytes("nodes")), .array([])])]),
            .array([.array([.bulk(bytes("slots")), .array([.integer(5), .integer(2)]), .bulk(bytes("nodes")),
                            .array([.array([.bulk(bytes("port")), .integer(1), .bulk(bytes("ip")), .bulk(bytes("h")),
                                            .bulk(bytes("role")), .bulk(bytes("master"))])])])]),
            .array([.array([.bulk(bytes("slots")), .array([.integer(0), .integer(16384)]), .bulk(bytes("nodes")),
                            .array([.array([.bulk(bytes("port")), .integer(1), .bulk(bytes("ip")), .bulk(bytes("h")),
                                            .bulk(bytes("role")), .bulk(bytes("master"))])])])]),
            .array([.array([.bulk(bytes("slots")), .array([.integer(0), .integer(1)]), .bulk(bytes("nodes")),
                            .array([.array([.bulk(bytes("port")), .integer(1), .bulk(bytes("ip")), .bulk(bytes("h h")),
                                            .bulk(bytes("role")), .bulk(bytes("master"))])])])]),
        ]
        for b in bads {
            guard case let .failure(f) = SlotMap.parseShards(b, seedHost: "s") else { return XCTFail("\(b) accepted") }
            XCTAssertEqual(f.status, .protocol)
        }
    }

    func testParseSlots() throws {
        let v: RedisValue = .array([
            .array([.integer(0), .integer(8000), .array([.bulk(bytes("127.0.0.1")), .integer(7000), .bulk(bytes("id"))]),
                    .array([.bulk(bytes("127.0.0.1")), .integer(7100)])]),
            .array([.integer(8001), .integer(16383), .array([.bulk(bytes("")), .integer(7001)])]),
        ])
        let m = try SlotMap.parseSlots(v, seedHost: "10.0.0.1").get()
        XCTAssertEqual(m.node(ofSlot: 8000)?.port, 7000)
        XCTAssertEqual(m.node(ofSlot: 8001), NodeAddress(host: "10.0.0.1", port: 7001))
        XCTAssertEqual(m.coveredSlots, 16384)
        XCTAssertNotNil(SlotMap.parseSlots(.array([.array([.integer(0), .integer(1)])]), seedHost: "s").failureValue)
        XCTAssertNotNil(SlotMap.parseSlots(.array([.array([.integer(0), .integer(1),
                                                            .array([.bulk(bytes("h")), .integer(0)])])]),
                                           seedHost: "s").failureValue)
    }

    func testAssignPatchesOneSlot() throws {
        var m = try SlotMap.parseShards(shardsReply(), seedHost: "s").get()
        m.assign(slot: 100, to: NodeAddress(host: "127.0.0.1", port: 7001))
        XCTAssertEqual(m.node(ofSlot: 100)?.port, 7001)
        XCTAssertEqual(m.node(ofSlot: 101)?.port, 7000)
        m.assign(slot: 16384, to: NodeAddress(host: "x", port: 1))
        XCTAssertEqual(m.nodes.count, 3)
    }

    func testClusterURL() throws {
        let c = try Config.parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001,[::1]:7002?expiry_ms=60000").get()
        XCTAssertEqual(c.seeds, [.tcp(host: "127.0.0.1", port: 7000), .tcp(host: "127.0.0.1", port: 7001),
                                 .tcp(host: "::1", port: 7002)])
        XCTAssertTrue(c.isCluster)
        XCTAssertTrue(c.hashTags)
        XCTAssertEqual(c.endpoint, .tcp(host: "127.0.0.1", port: 7000))
        XCTAssertEqual(c.expiryMs, 60000)
        let a = try Config.parse("REDIS+CLUSTER://u:p%40ss@h1:7000,h2/0?expiry_ms=1&pool_size=3&hash_tags=true").get()
        XCTAssertEqual(a.user, "u")
        XCTAssertEqual(a.password, "p@ss")
        XCTAssertEqual(a.seeds, [.tcp(host: "h1", port: 7000), .tcp(host: "h2", port: 6379)])
        XCTAssertEqual(a.poolSize, 3)
        let tls = try Config.parse("rediss+cluster://h:1,h:2?expiry_ms=1&ssl_cert_reqs=none").get()
        XCTAssertNotNil(tls.tls)
        XCTAssertEqual(tls.seeds.count, 2)
        XCTAssertNil(try Config.parse("redis+cluster://h:1?expiry_ms=1").get().tls)
        let single = try Config.parse("redis://h:1?expiry_ms=1&hash_tags=true").get()
        XCTAssertTrue(single.hashTags)
        XCTAssertFalse(single.isCluster)
        XCTAssertFalse(try Config.parse("redis://h:1?expiry_ms=1").get().hashTags)
        for (bad, word) in [("redis+cluster://h:1/1?expiry_ms=1", "db must be 0"),
                            ("redis+cluster://h:1?expiry_ms=1&db=2", "db must be 0"),
                            ("redis+cluster://h:1?expiry_ms=1&hash_tags=false", "hash_tags"),
                            ("redis+cluster://h:1,,h:2?expiry_ms=1", "seed"),
                            ("redis+cluster://h:0?expiry_ms=1", "seed"),
                            ("redis+cluster://h:x?expiry_ms=1", "seed"),
                            ("redis+cluster://?expiry_ms=1", "seed"),
                            ("redis+cluster://h:1?expiry_ms=0", "expiry_ms"),
                            ("redis+cluster://h:1?expiry_ms=1&prefix=a{b}", "prefix"),
                            ("redis://h:1?expiry_ms=1&hash_tags=yes&prefix=a{", "prefix"),
                            ("redis://h:1?expiry_ms=1&hash_tags=maybe", "hash_tags")] {
            guard case let .failure(f) = Config.parse(bad) else { XCTFail("\(bad) accepted"); continue }
            XCTAssertEqual(f.status, .invalid)
            XCTAssertTrue(f.message.contains(word), "\(bad): \(f.message)")
        }
        // A password never shows in a message.
        guard case let .failure(f) = Config.parse("redis+cluster://:s3cret@h:1,bad:port?expiry_ms=1") else {
            return XCTFail("accepted")
        }
        XCTAssertFalse(f.message.contains("s3cret"))
        XCTAssertTrue(Config.parse("redis://h:1?expiry_ms=1&prefix=a{b}").failureValue == nil)
    }
}

extension Result {
    var failureValue: Failure? {
        if case let .failure(f) = self { return f }
        return nil
    }
}

/// Which cluster nodes get one script per batch chunk over several of their slots (Redis 7+).
final class ServerInfoTests: XCTestCase {
    func testServerInfoVersionDecidesNodeScripts() {
        func info(_ t: String) -> [UInt8] { Array(t.utf8) }
        let v7 = info("# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n")
        XCTAssertEqual(ServerInfo.majorVersion(v7), 7)
        XCTAssertTrue(ServerInfo.runsScriptFlags(v7))
        XCTAssertFalse(ServerInfo.runsScriptFlags(info("# Server\r\nredis_version:6.2.14\r\n")))
        XCTAssertTrue(ServerInfo.runsScriptFlags(info("redis_version:8.2.1\r\n")))
        // Valkey reports the Redis version it is compatible with, and its own beside it.
        XCTAssertTrue(ServerInfo.runsScriptFlags(info("# Server\r\nredis_version:7.2.4\r\nvalkey_version:8.1.0\r\n")))
        XCTAssertEqual(ServerInfo.majorVersion(info("redis_version:10.0.0\r\n")), 10)
        // Not a version line, or a key that only ends with the name: unknown, so no node scripts.
        for bad in ["", "redis_version:\r\n", "redis_version:x.1\r\n", "xredis_version:7.0.0\r\n",
                    "redis_version:7\r\n", "redis_version:99999999.0.0\r\n"] {
            XCTAssertFalse(ServerInfo.runsScriptFlags(info(bad)), bad)
        }
    }
}
