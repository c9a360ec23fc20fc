// ServerVersion: INFO server as Redis, Valkey and others write it, the versions refused, and the command list held
// to what the scripts call.
@testable import HammerCore
import XCTest

final class ServerVersionTests: XCTestCase {
    func info(_ lines: [String], crlf: Bool = true) -> [UInt8] {
        Array(lines.joined(separator: crlf ? "\r\n" : "\n").utf8) + Array((crlf ? "\r\n" : "\n").utf8)
    }

    func testNumbers() {
        typealias N = ServerVersion.Number
        XCTAssertEqual(N.parse("6.2.14".utf8), N(6, 2, 14))
        XCTAssertEqual(N.parse("7.4.0-rc1".utf8), N(7, 4, 0))
        XCTAssertEqual(N.parse("8".utf8), N(8, 0, 0))
        XCTAssertEqual(N.parse("7.2".utf8), N(7, 2, 0))
        XCTAssertEqual(N.parse("255.255.255".utf8), N(255, 255, 255))
        XCTAssertEqual(N.parse("1.2.3.4".utf8), N(1, 2, 3))
        XCTAssertNil(N.parse("".utf8))
        XCTAssertNil(N.parse("v7.0.0".utf8))
        XCTAssertNil(N.parse("df-v1.2".utf8))
        XCTAssertNil(N.parse("99999999999999999999999.1".utf8))   // never an overflow
        XCTAssertTrue(N(6, 1, 99) < N(6, 2, 0))
        XCTAssertTrue(N(6, 2, 0) < N(6, 2, 1))
        XCTAssertFalse(N(7, 0, 0) < N(6, 9, 9))
        XCTAssertEqual(N(6, 2, 14).description, "6.2.14")
    }

    func testRedis() throws {
        let v = try XCTUnwrap(ServerVersion.parse(info: info([
            "# Server", "redis_version:6.2.14", "redis_git_sha1:40305114", "redis_mode:standalone"])))
        XCTAssertEqual(v, ServerVersion(name: "Redis", version: .init(6, 2, 14), redisVersion: .init(6, 2, 14)))
        XCTAssertEqual(v.description, "Redis 6.2.14")
        XCTAssertNil(v.refusal(where: "redis://h:1/0"))
        // LF line ends too.
        XCTAssertEqual(ServerVersion.parse(info: info(["redis_version:8.2.3"], crlf: false))?.version, .init(8, 2, 3))
    }

    func testValkeyIsNamedByItsOwnVersionAndJudgedByRedisVersion() throws {
        let v = try XCTUnwrap(ServerVersion.parse(info: info([
            "# Server", "redis_version:7.2.4", "server_name:valkey", "valkey_version:9.1.2", "valkey_release_stage:ga"])))
        XCTAssertEqual(v, ServerVersion(name: "Valkey", version: .init(9, 1, 2), redisVersion: .init(7, 2, 4)))
        XCTAssertEqual(v.description, "Valkey 9.1.2")
        XCTAssertNil(v.refusal(where: "x"))
    }

    func testAnotherCompatibleServerIsNamedByServerName() throws {
        let v = try XCTUnwrap(ServerVersion.parse(info: info(["redis_version:6.0.16", "server_name:somedb"])))
        XCTAssertEqual(v.name, "somedb")
        let f = try XCTUnwrap(v.refusal(where: "redis://h:1/0"))
        XCTAssertEqual(f.message, "somedb 6.0.16 at redis://h:1/0 is too old: hammer needs Redis 6.2 or later (or Valkey)")
        // A server_name that is not a plain word is not echoed.
        XCTAssertEqual(ServerVersion.parse(info: info(["redis_version:7.0.0", "server_name:a b"]))?.name, "Redis")
    }

    func testOlderThan62IsRefusedAsARedisErrorNamingBothVersions() throws {
        for (text, ok) in [("5.0.7", false), ("6.0.20", false), ("6.1.255", false), ("2.8.24", false),
                           ("6.2.0", true), ("6.2.14", true), ("7.0.15", true), ("10.0.0", true)] {
            let v = try XCTUnwrap(ServerVersion.parse(info: info(["redis_version:" + text])))
            let f = v.refusal(where: "redis://127.0.0.1:6379/0")
            XCTAssertEqual(f == nil, ok, text)
            if let f {
                XCTAssertEqual(f.status, .redis)
                XCTAssertFalse(f.transient, "a server too old is no outage: on_error must not answer for it")
                XCTAssertEqual(f.message, "Redis \(text) at redis://127.0.0.1:6379/0 is too old: hammer needs Redis 6.2 or later (or Valkey)")
            }
        }
    }

    func testInfoWithoutARedisVersionIsNotJudged() {
        XCTAssertNil(ServerVersion.parse(info: info(["# Server", "os:Linux"])))
        XCTAssertNil(ServerVersion.parse(info: []))
        XCTAssertNil(ServerVersion.parse(info: info(["redis_version:", "x"])))
        XCTAssertNil(ServerVersion.parse(info: Array("redis_version".utf8)))
        // Binary junk never traps.
        var junk: [UInt8] = []
        for i in 0..<4096 { junk.append(UInt8(truncatingIfNeeded: i &* 7919 &+ i >> 3)) }
        _ = ServerVersion.parse(info: junk)
    }

    func testMissingCommandsAreNamed() throws {
        XCTAssertNil(ServerVersion.missing([], server: nil, where: "x"))
        let v = ServerVersion(name: "Redis", version: .init(7, 0, 0), redisVersion: .init(7, 0, 0))
        let f = try XCTUnwrap(ServerVersion.missing(["pttl", "zadd"], server: v, where: "redis://h:1/0"))
        XCTAssertEqual(f.status, .redis)
        XCTAssertFalse(f.transient)
        XCTAssertEqual(f.message, "Redis 7.0.0 at redis://h:1/0 lacks PTTL, ZADD, which hammer needs (Redis 6.2 or later has every command hammer sends)")
        XCTAssertTrue(try XCTUnwrap(ServerVersion.missing(["time"], server: nil, where: "x")).message.hasPrefix("the server at x lacks TIME"))
    }

    /// Every redis.call() of every script is in the list COMMAND INFO checks at open.
    func testTheCommandListCoversEveryScript() throws {
        var called = Set<String>()
        for (_, source) in ScriptTextTests.scripts {
            var rest = Substring(source)
            while let r = rest.range(of: "redis.call('") {
                rest = rest[r.upperBound...]
                let name = rest.prefix(while: { $0 != "'" })
                called.insert(name.lowercased())
            }
        }
        XCTAssertTrue(called.count >= 10, "\(called)")
        XCTAssertEqual(called.subtracting(ServerVersion.commands), [], "commands the scripts call but open does not check")
        XCTAssertEqual(Set(ServerVersion.commands).count, ServerVersion.commands.count)
    }
}
