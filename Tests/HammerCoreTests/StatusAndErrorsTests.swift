// Status texts (hammer_strerror) and the mapping of Redis error replies to statuses and messages.
import XCTest
@testable import HammerCore

final class StatusTests: XCTestCase {
    let expected: [(Status, Int32, String)] = [
        (.ok, 0, "success"),
        (.invalid, 1, "invalid argument or configuration"),
        (.connect, 2, "cannot connect to Redis, or the connection was lost"),
        (.timeout, 3, "Redis connect or command timed out"),
        (.redis, 4, "Redis answered with an error"),
        (.protocol, 5, "Redis reply of an unexpected shape"),
        (.nomem, 6, "out of memory"),
        (.internal, 7, "internal error in libhammer"),
    ]

    func testValuesAreThePinnedOnes() {
        for (s, raw, _) in expected {
            XCTAssertEqual(s.rawValue, raw)
            XCTAssertEqual(Status(rawValue: raw), s)
        }
        XCTAssertNil(Status(rawValue: 8))
        XCTAssertNil(Status(rawValue: -1))
    }

    func testTextOfEveryStatus() {
        var seen: Set<String> = []
        for (_, raw, words) in expected {
            let t = Status.text(raw)
            XCTAssertEqual(t.description, words)
            XCTAssertTrue(seen.insert(t.description).inserted, "texts are distinct")
        }
    }

    func testTextOfUnknownValues() {
        for raw: Int32 in [-1, 8, 9, 100, Int32.max, Int32.min, -7] {
            XCTAssertEqual(Status.text(raw).description, "unknown hammer status", "\(raw)")
        }
    }

    /// hammer_strerror hands these to C: each must be a NUL-terminated pointer.
    func testTextsAreNulTerminatedCStrings() {
        for raw: Int32 in [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8] {
            let t = Status.text(raw)
            XCTAssertTrue(t.hasPointerRepresentation)
            XCTAssertEqual(t.utf8Start[t.utf8CodeUnitCount], 0)
            XCTAssertEqual(String(cString: t.utf8Start), t.description)
        }
    }

    /// The Swift enum mirrors include/hammer.h: read the header and compare each constant.
    func testMirrorsTheCHeader() throws {
        let path = repoRoot() + "/include/hammer.h"
        guard let header = readFile(path) else { throw XCTSkip("\(path) not found") }
        let names: [(String, Status)] = [
            ("HAMMER_OK", .ok), ("HAMMER_ERR_INVALID", .invalid), ("HAMMER_ERR_CONNECT", .connect),
            ("HAMMER_ERR_TIMEOUT", .timeout), ("HAMMER_ERR_REDIS", .redis), ("HAMMER_ERR_PROTOCOL", .protocol),
            ("HAMMER_ERR_NOMEM", .nomem), ("HAMMER_ERR_INTERNAL", .internal),
        ]
        var found = 0
        for line in text(header).split(separator: "\n") {
            let compact = line.filter { $0 != " " && $0 != "\t" }
            for (name, status) in names where compact.hasPrefix(name + "=") {
                let digits = compact.dropFirst(name.count + 1).prefix { $0.isNumber }
                XCTAssertEqual(Int32(digits), status.rawValue, "\(name) in hammer.h")
                found += 1
            }
        }
        XCTAssertEqual(found, names.count, "every status appears once in hammer.h")
    }

    func testFailureCarriesStatusAndMessage() {
        let f = Failure(.timeout, "slow")
        XCTAssertEqual(f.status, .timeout)
        XCTAssertEqual(f.message, "slow")
        XCTAssertEqual(f, Failure(.timeout, "slow"))
        XCTAssertNotEqual(f, Failure(.connect, "slow"))
        XCTAssertNotEqual(f, Failure(.timeout, "fast"))
    }

    /// By default only a lost connection and a timeout are transient (the on_error policy may decide).
    func testTransientDefaults() {
        for (s, _, _) in expected {
            XCTAssertEqual(Failure(s, "x").transient, s == .connect || s == .timeout, "\(s)")
            XCTAssertTrue(Failure(s, "x", transient: true).transient)
            XCTAssertFalse(Failure(s, "x", transient: false).transient)
        }
    }
}

final class RedisErrorsTests: XCTestCase {
    /// Classifies `reply` and checks the status, that the message keeps Redis's own words and adds `hint`.
    func check(_ reply: String, _ status: Status, _ hint: String, file: StaticString = #filePath, line: UInt = #line) {
        let f = RedisErrors.classify(reply)
        XCTAssertEqual(f.status, status, reply, file: file, line: line)
        XCTAssertTrue(reply.isEmpty || f.message.contains(reply), "\(f.message) should quote '\(reply)'",
                      file: file, line: line)
        XCTAssertTrue(f.message.contains(hint), "\(f.message) should say '\(hint)'", file: file, line: line)
    }

    func testKnownErrors() {
        check("OOM command not allowed when used memory > 'maxmemory'.", .redis, "out of memory")
        check("READONLY You can't write against a read only replica.", .redis, "read-only replica")
        check("LOADING Redis is loading the dataset in memory", .redis, "loading")
        check("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", .redis, "busy")
        check("NOAUTH Authentication required.", .redis, "credentials")
        check("WRONGPASS invalid username-password pair or user is disabled.", .redis, "credentials")
        check("NOPERM this user has no permissions to run the 'evalsha' command", .redis, "permission")
        check("WRONGTYPE Operation against a key holding the wrong kind of value", .redis, "another type")
        check("NOSCRIPT No matching script. Please use EVAL.", .redis, "not loaded")
        check("ERR increment or decrement would overflow", .invalid, "overflow")
        check("ERR value is not an integer or out of range", .redis, "Redis error")
        check("ERR unknown command 'FOO'", .redis, "Redis error")
        check("", .redis, "Redis error")
    }

    /// Errors raised inside a script arrive wrapped in "ERR Error running script ...".
    func testErrorsWrappedByAScript() {
        let wrap = "ERR Error running script (call to f_0123456789abcdef0123456789abcdef01234567): @user_script:2: "
        check(wrap + "ERR increment or decrement would overflow", .invalid, "overflow")
        check(wrap + "OOM command not allowed when used memory > 'maxmemory'.", .redis, "out of memory")
        check(wrap + "WRONGTYPE Operation against a key holding the wrong kind of value", .redis, "another type")
        check(wrap + "-READONLY You can't write against a read only replica.", .redis, "read-only")
        check(wrap + "NOPERM this user has no permissions to access one of the keys", .redis, "permission")
        check(wrap + "@user_script: 2: -OOM command not allowed when used memory > 'maxmemory'.", .redis, "out of memory")
        check(wrap + "The user executing the script can't run this command or subcommand", .redis, "permission")
        XCTAssertTrue(RedisErrors.classify(wrap + "-LOADING Redis is loading").transient)
        XCTAssertFalse(RedisErrors.classify(wrap + "-NOPERM no permissions").transient)
        // Redis 7 phrasing of the same wrapped errors.
        check("WRONGTYPE Operation against a key holding the wrong kind of value script: f_abc, on @user_script:2.",
              .redis, "another type")
        check("ERR increment or decrement would overflow script: f_abc, on @user_script:2.", .invalid, "overflow")
    }

    func testTransientErrors() {
        // Redis cannot answer for now: transient.
        for r in ["OOM command not allowed when used memory > 'maxmemory'.", "READONLY You can't write",
                  "LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script.",
                  "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                  "NOREPLICAS Not enough good replicas to write.", "TRYAGAIN Multiple keys request during rehashing",
                  "CLUSTERDOWN The cluster is down"] {
            XCTAssertTrue(RedisErrors.classify(r).transient, r)
        }
        // A wrong setup or a wrong request stays wrong: not transient.
        for r in ["NOAUTH Authentication required.", "WRONGPASS invalid username-password pair",
                  "NOPERM this user has no permissions", "WRONGTYPE Operation against a key",
                  "ERR increment or decrement would overflow", "NOSCRIPT No matching script.", "ERR unknown",
                  "ERR unknown command 'EVALSHA_RO'", "NOPERM User default has no permissions to run the 'eval'",
                  // The code word decides, not words in the rest of the text.
                  "WRONGTYPE the dataset is LOADING", "ERR BUSY is a word here", "NOAUTH READONLY"] {
            XCTAssertFalse(RedisErrors.classify(r).transient, r)
        }
    }

    func testDistinctHintsForDistinctErrors() {
        let replies = ["OOM x", "READONLY x", "LOADING x", "BUSY x", "NOAUTH x", "NOPERM x", "WRONGTYPE x",
                       "NOSCRIPT x", "ERR x"]
        // The words hammer adds, without the quoted reply, differ from one kind of error to the next.
        let hints = replies.map { RedisErrors.classify($0).message.replacing($0, with: "") }
        XCTAssertEqual(Set(hints).count, replies.count, "\(hints)")
    }
}
