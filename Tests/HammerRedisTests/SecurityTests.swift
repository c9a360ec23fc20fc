// Security: the minimal ACL that docs/operations.md documents suffices for every call; ids never become command text;
// passwords never reach a message.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

final class SecurityTests: XCTestCase {
    var server: RedisProcess!
    override func setUp() { server = try! RedisProcess() }
    override func tearDown() { server = nil }

    /// The minimal ACL of docs/operations.md (keep the two in step).
    static let minimalACL = ["on", ">pw-Limiter_9", "resetkeys", "~Hammer:Redis:*", "-@all", "+evalsha", "+eval",
                             "+hmget", "+hget", "+hset", "+hsetnx", "+hincrby", "+get", "+set", "+pexpire", "+pttl", "+exists",
                             "+del", "+unlink", "+zadd", "+zrange", "+zrem", "+zscore", "+zcard", "+zcount", "+zrangebyscore",
                             "+zremrangebyscore", "+zremrangebyrank", "+time",
                             "+scan", "+info", "+command|info"]

    func testMinimalACLSufficesForEveryCall() {
        XCTAssertEqual(server.cli(["ACL", "SETUSER", "limiter"] + Self.minimalACL).trimmingCharacters(in: .whitespacesAndNewlines), "OK")
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&scan_delete=true&user=limiter&password=pw-Limiter_9"), &h), 0,
                       String(cString: hammer_last_error()))
        defer { hammer_close(h) }
        var c: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "acl", 1, 1, 1, &c), 0, String(cString: hammer_last_error()))
        var b = hammer_bucket()
        XCTAssertEqual(hammer_get_bucket(h, "acl", 1, &b), 0, String(cString: hammer_last_error()))
        var d = hammer_decision()
        XCTAssertEqual(hammer_check_rate(h, "acl", 1000, 5, 1, &d), 0, String(cString: hammer_last_error()))
        var i = hammer_inspection()
        XCTAssertEqual(hammer_inspect_bucket(h, "acl", 1000, 5, &i), 0, String(cString: hammer_last_error()))
        for a in Algorithm.allCases {
            var lim = hammer_limit(algorithm: a.rawValue, limit: 2, period_ms: 1000, burst: 0)
            for _ in 0..<3 { XCTAssertEqual(hammer_hit(h, "acl", &lim, 1, &d), 0, "\(a): " + String(cString: hammer_last_error())) }
            XCTAssertEqual(d.allowed, 0)
            XCTAssertEqual(hammer_peek(h, "acl", &lim, &d), 0)
        }
        // Several limits, two of each algorithm: states of their own, listed in the index (ZSCORE, ZADD, TIME ...).
        let twice = Algorithm.allCases.flatMap { a in
            [hammer_limit(algorithm: a.rawValue, limit: 2, period_ms: 1000, burst: 0),
             hammer_limit(algorithm: a.rawValue, limit: 3, period_ms: a == .fixedWindow ? 60_000 : 1000, burst: 0)]
        }
        for _ in 0..<3 {
            XCTAssertEqual(hammer_hit_all(h, "acl", twice, twice.count, 1, &d), 0, String(cString: hammer_last_error()))
        }
        XCTAssertEqual(d.allowed, 0)
        // clock=redis reads TIME inside the script.
        var hr: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&clock=redis&user=limiter&password=pw-Limiter_9"), &hr), 0)
        var lim = hammer_limit(algorithm: 4, limit: 2, period_ms: 1000, burst: 0)
        XCTAssertEqual(hammer_hit(hr, "acl-clock", &lim, 1, &d), 0, String(cString: hammer_last_error()))
        hammer_close(hr)
        var n: Int64 = 0
        XCTAssertEqual(hammer_delete_buckets(h, "acl", &n), 0, String(cString: hammer_last_error()))
        XCTAssertGreaterThanOrEqual(n, 6)
        // A user without one of the commands gets a clear Redis error, not a crash or a protocol error.
        server.cli("ACL", "SETUSER", "limiter", "-hincrby")
        XCTAssertEqual(hammer_count_hit(h, "acl", 1, 1, 1, &c), 4)
        let msg = String(cString: hammer_last_error())
        XCTAssertTrue(msg.contains("ACL") || msg.contains("NOPERM") || msg.contains("permission"), msg)
        XCTAssertFalse(msg.contains("pw-Limiter_9"))
    }

    func testWrongPasswordsNeverAppearInMessages() {
        server.cli("ACL", "SETUSER", "alice", "on", ">right-pass", "~*", "+@all")
        let secret = "Wr0ng-S3cret"
        for url in [server.url("expiry_ms=1&user=alice&password=\(secret)"),
                    "redis://alice:\(secret)@127.0.0.1:\(server.port)/?expiry_ms=1",
                    "redis://\(secret)@127.0.0.1:\(server.port)/?expiry_ms=1",
                    "redis://alice:\(secret)@127.0.0.1:1/?expiry_ms=1",
                    "redis://alice:\(secret)@127.0.0.1:\(server.port)/?expiry_ms=1&bogus=\(secret)"] {
            var h: OpaquePointer?
            let st = hammer_open(url, &h)
            XCTAssertNotEqual(st, 0)
            XCTAssertNil(h)
            let msg = String(cString: hammer_last_error())
            XCTAssertFalse(msg.isEmpty)
            XCTAssertFalse(msg.contains(secret), "\(url) -> \(msg)")
        }
    }

    func testIdsAreNeverCommandTextOrPatterns() {
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&scan_delete=true"), &h), 0)
        defer { hammer_close(h) }
        server.cli("SET", "precious", "1")
        var c: Int64 = 0
        let hostile = ["*", "\r\nFLUSHALL\r\n", "x\" ; redis.call('FLUSHALL') --", "a b c", "]]--[[", "\\", "?"]
        for id in hostile {
            XCTAssertEqual(hammer_count_hit(h, id, 1, 1, 1, &c), 0, id)
            var lim = hammer_limit(algorithm: 1, limit: 5, period_ms: 1000, burst: 0)
            var d = hammer_decision()
            XCTAssertEqual(hammer_hit(h, id, &lim, 1, &d), 0, id)
        }
        XCTAssertEqual(server.cli("GET", "precious").trimmingCharacters(in: .whitespacesAndNewlines), "1")
        XCTAssertEqual(server.cli("EXISTS", "Hammer:Redis:\r\nFLUSHALL\r\n:1").trimmingCharacters(in: .whitespacesAndNewlines), "1")
        var n: Int64 = 0
        XCTAssertEqual(hammer_delete_buckets(h, "*", &n), 0)
        XCTAssertEqual(n, 1 + 2)  // its bucket, and its sliding-window log and meta; nobody else's
        for id in hostile.dropFirst() {
            var b = hammer_bucket()
            XCTAssertEqual(hammer_get_bucket(h, id, 1, &b), 0)
            XCTAssertEqual(b.found, 1, "deleting \"*\" touched \(id)")
        }
    }
}

extension RedisProcess {
    @discardableResult
    func cli(_ args: [String]) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        p.arguments = ["-p", "\(port)"] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        try? p.run()
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
}
