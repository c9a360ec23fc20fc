// Config.parse: the one configuration string, a Redis URL with hammer's options in its query.
import XCTest
@testable import HammerCore

final class ConfigTests: XCTestCase {
    // MARK: helpers

    /// Parses a URL that must be accepted.
    func ok(_ url: String, file: StaticString = #filePath, line: UInt = #line) -> Config? {
        switch Config.parse(url) {
        case let .success(c): return c
        case let .failure(f):
            XCTFail("expected \(url) to parse, got \(f.status): \(f.message)", file: file, line: line)
            return nil
        }
    }

    /// Parses a URL that must be refused with .invalid and a "config: " message containing every word of `naming`.
    @discardableResult
    func bad(_ url: String, naming: [String], file: StaticString = #filePath, line: UInt = #line) -> Failure? {
        switch Config.parse(url) {
        case let .success(c):
            XCTFail("expected \(url) to be refused, got \(c)", file: file, line: line)
            return nil
        case let .failure(f):
            XCTAssertEqual(f.status, .invalid, "\(url): \(f.message)", file: file, line: line)
            XCTAssertTrue(f.message.hasPrefix("config: "), "\(url): \(f.message)", file: file, line: line)
            for w in naming {
                XCTAssertTrue(f.message.contains(w), "\(url): message '\(f.message)' does not name '\(w)'",
                              file: file, line: line)
            }
            return f
        }
    }

    // MARK: defaults

    func testDefaultsOfAMinimalURL() throws {
        let c = try XCTUnwrap(ok("redis://localhost?expiry_ms=7200000"))
        XCTAssertEqual(c.endpoint, .tcp(host: "localhost", port: 6379))
        XCTAssertNil(c.user)
        XCTAssertNil(c.password)
        XCTAssertEqual(c.db, 0)
        XCTAssertEqual(c.expiryMs, 7_200_000)
        XCTAssertEqual(c.prefix, bytes("Hammer:Redis:"))
        XCTAssertEqual(c.connectTimeoutMs, 1000)
        XCTAssertEqual(c.timeoutMs, 1000)
        XCTAssertEqual(c.poolSize, 8)
        XCTAssertEqual(c.spinUs, 100)
        XCTAssertEqual(c.clock, .local)
        XCTAssertEqual(c.onError, .error)
        XCTAssertFalse(c.localFallback)
        XCTAssertFalse(c.scanDelete)
    }

    func testDefaultConfigValue() {
        let c = Config()
        XCTAssertEqual(c.endpoint, .tcp(host: "127.0.0.1", port: 6379))
        XCTAssertEqual(c.prefix, bytes("Hammer:Redis:"))
        XCTAssertEqual(c.db, 0)
        XCTAssertEqual(c.poolSize, 8)
        XCTAssertEqual(c.connectTimeoutMs, 1000)
        XCTAssertEqual(c.timeoutMs, 1000)
    }

    func testEmptyHostMeansLoopback() throws {
        let c = try XCTUnwrap(ok("redis://?expiry_ms=1"))
        XCTAssertEqual(c.endpoint, .tcp(host: "127.0.0.1", port: 6379))
        let d = try XCTUnwrap(ok("redis://:6380?expiry_ms=1"))
        XCTAssertEqual(d.endpoint, .tcp(host: "127.0.0.1", port: 6380))
        let e = try XCTUnwrap(ok("redis://:pw@:6381/2?expiry_ms=1"))
        XCTAssertEqual(e.endpoint, .tcp(host: "127.0.0.1", port: 6381))
        XCTAssertEqual(e.password, "pw")
        XCTAssertEqual(e.db, 2)
    }

    func testSchemeIsCaseInsensitive() throws {
        XCTAssertEqual(try XCTUnwrap(ok("REDIS://h?expiry_ms=5")).endpoint, .tcp(host: "h", port: 6379))
        XCTAssertEqual(try XCTUnwrap(ok("Unix:///tmp/r.sock?expiry_ms=5")).endpoint, .unix(path: "/tmp/r.sock"))
    }

    func testParseOfBytesAgreesWithParseOfString() {
        for url in ["redis://u:p@h:7/3?expiry_ms=9&prefix=x", "unix:///a/b?expiry_ms=1&db=4", "bogus"] {
            XCTAssertEqual(Config.parse(url), Config.parse(bytes(url)), url)
        }
    }

    // MARK: every option

    func testEveryOption() throws {
        let url = "redis://h:1234?expiry_ms=42&prefix=app%3Alimits%3A&connect_timeout_ms=250&timeout_ms=750"
            + "&pool_size=3&db=5&clock=redis&on_error=allow&fallback=local&user=alice&password=p%26w"
        let c = try XCTUnwrap(ok(url))
        XCTAssertEqual(c.endpoint, .tcp(host: "h", port: 1234))
        XCTAssertEqual(c.expiryMs, 42)
        XCTAssertEqual(c.prefix, bytes("app:limits:"))
        XCTAssertEqual(c.connectTimeoutMs, 250)
        XCTAssertEqual(c.timeoutMs, 750)
        XCTAssertEqual(c.poolSize, 3)
        XCTAssertEqual(c.db, 5)
        XCTAssertEqual(c.clock, .redis)
        XCTAssertEqual(c.onError, .allow)
        XCTAssertTrue(c.localFallback)
        XCTAssertEqual(c.user, "alice")
        XCTAssertEqual(c.password, "p&w")
    }

    func testOptionOrderDoesNotMatter() throws {
        let a = try XCTUnwrap(ok("redis://h?pool_size=2&expiry_ms=10&timeout_ms=20"))
        let b = try XCTUnwrap(ok("redis://h?timeout_ms=20&expiry_ms=10&pool_size=2"))
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.poolSize, 2)
        XCTAssertEqual(a.timeoutMs, 20)
    }

    func testEmptyQueryPairsAreIgnored() throws {
        let c = try XCTUnwrap(ok("redis://h?&expiry_ms=10&&pool_size=2&"))
        XCTAssertEqual(c.expiryMs, 10)
        XCTAssertEqual(c.poolSize, 2)
    }

    func testEnumeratedOptionValues() throws {
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&clock=local")).clock, .local)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&clock=redis")).clock, .redis)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&on_error=error")).onError, .error)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&on_error=allow")).onError, .allow)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&on_error=deny")).onError, .deny)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&fallback=none")).localFallback, false)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&fallback=local")).localFallback, true)
        bad("redis://h?expiry_ms=1&clock=REDIS", naming: ["clock"])
        bad("redis://h?expiry_ms=1&clock=", naming: ["clock"])
        bad("redis://h?expiry_ms=1&on_error=ignore", naming: ["on_error"])
        bad("redis://h?expiry_ms=1&fallback=remote", naming: ["fallback"])
        for v in ["1", "true", "yes"] {
            XCTAssertTrue(try XCTUnwrap(ok("redis://h?expiry_ms=1&scan_delete=\(v)")).scanDelete, v)
        }
        for v in ["0", "false", "no"] {
            XCTAssertFalse(try XCTUnwrap(ok("redis://h?expiry_ms=1&scan_delete=\(v)")).scanDelete, v)
        }
        for v in ["", "2", "TRUE", "on", "y"] {
            bad("redis://h?expiry_ms=1&scan_delete=\(v)", naming: ["scan_delete"])
        }
    }

    func testLazyConnect() throws {
        XCTAssertFalse(try XCTUnwrap(ok("redis://h?expiry_ms=1")).lazyConnect, "connects at open by default")
        for v in ["1", "true", "yes"] {
            XCTAssertTrue(try XCTUnwrap(ok("redis://h?expiry_ms=1&lazy_connect=\(v)")).lazyConnect, v)
            XCTAssertTrue(try XCTUnwrap(ok("redis+cluster://h:7000?expiry_ms=1&lazy_connect=\(v)")).lazyConnect, v)
        }
        for v in ["0", "false", "no"] {
            XCTAssertFalse(try XCTUnwrap(ok("redis://h?expiry_ms=1&lazy_connect=\(v)")).lazyConnect, v)
        }
        for v in ["", "2", "TRUE", "on"] {
            bad("redis://h?expiry_ms=1&lazy_connect=\(v)", naming: ["lazy_connect"])
        }
    }

    func testNumericOptionBounds() throws {
        // Lowest and highest accepted values, and one past each end.
        let cases: [(name: String, lo: Int64, hi: Int64)] = [
            ("expiry_ms", 1, Config.maxExpiryMs),
            ("connect_timeout_ms", 1, Config.maxTimeoutMs),
            ("timeout_ms", 1, Config.maxTimeoutMs),
            ("pool_size", 1, Config.maxPoolSize),
            ("spin_us", 0, Config.maxSpinUs),
            ("db", 0, 1_000_000),
        ]
        for (name, lo, hi) in cases {
            let extra = name == "expiry_ms" ? "" : "&expiry_ms=1"
            for v in [lo, hi, (lo + hi) / 2] {
                let c = try XCTUnwrap(ok("redis://h?\(name)=\(v)\(extra)"))
                let got: Int64
                switch name {
                case "expiry_ms": got = c.expiryMs
                case "connect_timeout_ms": got = c.connectTimeoutMs
                case "timeout_ms": got = c.timeoutMs
                case "pool_size": got = Int64(c.poolSize)
                case "spin_us": got = c.spinUs
                default: got = c.db
                }
                XCTAssertEqual(got, v, "\(name)=\(v)")
            }
            for v in [lo - 1, hi + 1, -1, Int64.min, Int64.max] {
                bad("redis://h?\(name)=\(v)\(extra)", naming: [name])
            }
            for junk in ["", "abc", "1.5", "1e3", "+5", " 5", "5 ", "0x10", "99999999999999999999", "%31%zz"] {
                let f = bad("redis://h?\(name)=\(junk)\(extra)", naming: [])
                XCTAssertTrue(f?.message.contains(name) ?? false, "\(name)=\(junk): \(f?.message ?? "")")
            }
        }
    }

    func testExpiryIsOptionalAndPositive() throws {
        // Only count_hit needs it: without it the URL opens, and count_hit's problem names the option.
        for url in ["redis://h", "redis://h?", "redis://h?pool_size=2", "unix:///r.sock", "redis+cluster://h:1"] {
            let c = try XCTUnwrap(ok(url), url)
            XCTAssertEqual(c.expiryMs, 0, url)
            XCTAssertTrue(c.countHitProblem?.contains("expiry_ms") ?? false, url)
        }
        XCTAssertNil(try XCTUnwrap(ok("redis://h?expiry_ms=1")).countHitProblem)
        bad("redis://h?expiry_ms=0", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms=-1", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms=-0", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms=abc", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms=99999999999999999999", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms=9223372036854775808", naming: ["expiry_ms"])
        bad("redis://h?expiry_ms", naming: ["expiry_ms", "value"])
        bad("redis://h?expiry_ms=", naming: ["expiry_ms"])
        bad("unix:///tmp/r.sock?db=1&expiry_ms=0", naming: ["expiry_ms"])
    }

    func testPercentEncodedNumbersAreDecoded() throws {
        // %31%30 is "10": values are percent-decoded before they are read as numbers.
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=%31%30")).expiryMs, 10)
    }

    func testPrefix() throws {
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=my%3Aapp%3A")).prefix, bytes("my:app:"))
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=a%26b%3Dc%25d%3Fe%23f")).prefix,
                       bytes("a&b=c%d?e#f"))
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=%E2%82%AC%20x")).prefix,
                       [0xE2, 0x82, 0xAC, 0x20, 0x78])
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=plain")).prefix, bytes("plain"))
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=")).prefix, [])
        let max = String(repeating: "p", count: Config.maxPrefixBytes)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=\(max)")).prefix.count, Config.maxPrefixBytes)
        bad("redis://h?expiry_ms=1&prefix=\(max)p", naming: ["prefix"])
        // 1024 bytes once decoded, 3072 as written: the limit is on the decoded prefix.
        let encoded = String(repeating: "%3A", count: Config.maxPrefixBytes)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&prefix=\(encoded)")).prefix,
                       [UInt8](repeating: 58, count: Config.maxPrefixBytes))
        bad("redis://h?expiry_ms=1&prefix=%3", naming: ["percent", "prefix"])
        bad("redis://h?expiry_ms=1&prefix=%g0", naming: ["percent", "prefix"])
        bad("redis://h?expiry_ms=1&prefix=a%", naming: ["percent", "prefix"])
    }

    func testUserAndPasswordOptions() throws {
        let c = try XCTUnwrap(ok("redis://h?expiry_ms=1&username=bob&password=s%20p"))
        XCTAssertEqual(c.user, "bob")
        XCTAssertEqual(c.password, "s p")
        XCTAssertNil(try XCTUnwrap(ok("redis://h?expiry_ms=1&user=&password=x")).user)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h?expiry_ms=1&user=b%40c&password=x")).user, "b@c")
    }

    // MARK: userinfo, host, port, db

    func testUserAndPassword() throws {
        let c = try XCTUnwrap(ok("redis://alice:s3cr3t@db.example:6390?expiry_ms=1"))
        XCTAssertEqual(c.user, "alice")
        XCTAssertEqual(c.password, "s3cr3t")
        XCTAssertEqual(c.endpoint, .tcp(host: "db.example", port: 6390))
    }

    func testPasswordOnlyUserinfo() throws {
        let a = try XCTUnwrap(ok("redis://:s3cr3t@h?expiry_ms=1"))
        XCTAssertNil(a.user)
        XCTAssertEqual(a.password, "s3cr3t")
        // A lone userinfo is the password, as redis-cli reads it.
        let b = try XCTUnwrap(ok("redis://s3cr3t@h?expiry_ms=1"))
        XCTAssertNil(b.user)
        XCTAssertEqual(b.password, "s3cr3t")
    }

    func testNoUserinfoMeansNoCredentials() throws {
        let c = try XCTUnwrap(ok("redis://h:1?expiry_ms=1"))
        XCTAssertNil(c.user)
        XCTAssertNil(c.password)
    }

    func testPercentDecodingInUserAndPassword() throws {
        let c = try XCTUnwrap(ok("redis://us%40er%3Ax:p%3Aw%40d%2F%3F%23%25@h?expiry_ms=1"))
        XCTAssertEqual(c.user, "us@er:x")
        XCTAssertEqual(c.password, "p:w@d/?#%")
        XCTAssertEqual(c.endpoint, .tcp(host: "h", port: 6379))
        let u = try XCTUnwrap(ok("redis://%C3%A9l%C3%A8ve:%E2%82%AC@h?expiry_ms=1"))
        XCTAssertEqual(u.user, "\u{e9}l\u{e8}ve")
        XCTAssertEqual(u.password, "\u{20ac}")
    }

    func testRawAtAndColonInPassword() throws {
        // The host starts after the LAST '@'; the user ends at the FIRST ':'.
        let c = try XCTUnwrap(ok("redis://u:p@ss:w0rd@h:7000?expiry_ms=1"))
        XCTAssertEqual(c.user, "u")
        XCTAssertEqual(c.password, "p@ss:w0rd")
        XCTAssertEqual(c.endpoint, .tcp(host: "h", port: 7000))
    }

    func testBadPercentEncodingInUserinfo() {
        bad("redis://us%zzer:pw@h?expiry_ms=1", naming: ["percent", "user"])
        bad("redis://us%4:pw@h?expiry_ms=1", naming: ["percent", "user"])
        bad("redis://user:pw%@h?expiry_ms=1", naming: ["percent", "password"])
        bad("redis://user:pw%2@h?expiry_ms=1", naming: ["percent", "password"])
        bad("redis://pw%G1@h?expiry_ms=1", naming: ["percent", "password"])
        // %FF alone is not UTF-8.
        bad("redis://user:%FF@h?expiry_ms=1", naming: ["percent", "password"])
        bad("redis://user:pw%00@h?expiry_ms=1", naming: ["NUL"])
        bad("redis://us%00er:pw@h?expiry_ms=1", naming: ["NUL"])
    }

    func testIPv6() throws {
        let c = try XCTUnwrap(ok("redis://[::1]:6380?expiry_ms=1"))
        XCTAssertEqual(c.endpoint, .tcp(host: "::1", port: 6380))
        XCTAssertEqual(c.redacted, "[::1]:6380")
        let d = try XCTUnwrap(ok("redis://u:p@[fe80::1:abcd]/4?expiry_ms=1"))
        XCTAssertEqual(d.endpoint, .tcp(host: "fe80::1:abcd", port: 6379))
        XCTAssertEqual(d.db, 4)
        XCTAssertEqual(d.user, "u")
        XCTAssertEqual(try XCTUnwrap(ok("redis://[::ffff:127.0.0.1]?expiry_ms=1")).endpoint,
                       .tcp(host: "::ffff:127.0.0.1", port: 6379))
        bad("redis://[::1?expiry_ms=1", naming: ["IPv6", "]"])
        bad("redis://[::1:6380?expiry_ms=1", naming: ["IPv6", "]"])
        bad("redis://[::1]6380?expiry_ms=1", naming: ["IPv6"])
        bad("redis://[]:6380?expiry_ms=1", naming: ["IPv6"])
        bad("redis://[::g]?expiry_ms=1", naming: ["IPv6"])
        bad("redis://[::1]:?expiry_ms=1", naming: ["port"])
        bad("redis://[::1]:0?expiry_ms=1", naming: ["port"])
    }

    func testPorts() throws {
        XCTAssertEqual(try XCTUnwrap(ok("redis://h:1?expiry_ms=1")).endpoint, .tcp(host: "h", port: 1))
        XCTAssertEqual(try XCTUnwrap(ok("redis://h:65535?expiry_ms=1")).endpoint, .tcp(host: "h", port: 65535))
        for p in ["0", "65536", "abc", "", "-1", "-0", "+80", "80a", " 80", "6379:1", "99999999999999999999",
                  "4294967296", "9223372036854775808"] {
            bad("redis://h:\(p)?expiry_ms=1", naming: ["port"])
        }
    }

    func testHostNames() throws {
        for h in ["localhost", "127.0.0.1", "redis-1.internal_x", "A.B.C"] {
            XCTAssertEqual(try XCTUnwrap(ok("redis://\(h)?expiry_ms=1")).endpoint, .tcp(host: h, port: 6379))
        }
        for h in ["ho%20st", "ho st", "h*", "h!", "h\\x", "h%41"] {
            bad("redis://\(h)?expiry_ms=1", naming: ["host"])
        }
    }

    func testDatabaseInThePath() throws {
        XCTAssertEqual(try XCTUnwrap(ok("redis://h/3?expiry_ms=1")).db, 3)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h:7000/15?expiry_ms=1")).db, 15)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h/?expiry_ms=1")).db, 0)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h/0?expiry_ms=1")).db, 0)
        XCTAssertEqual(try XCTUnwrap(ok("redis://h/1000000?expiry_ms=1")).db, 1_000_000)
        // The same number in the path and the option agrees; different numbers do not.
        XCTAssertEqual(try XCTUnwrap(ok("redis://h/3?expiry_ms=1&db=3")).db, 3)
        bad("redis://h/3?expiry_ms=1&db=4", naming: ["db", "path"])
        bad("redis://h/0?expiry_ms=1&db=4", naming: ["db", "path"])
        for p in ["abc", "-1", "1/2", "1000001", "3x", "+3", "99999999999999999999"] {
            bad("redis://h/\(p)?expiry_ms=1", naming: ["path", "database"])
        }
    }

    func testUnixSocket() throws {
        let c = try XCTUnwrap(ok("unix:///var/run/redis/redis.sock?expiry_ms=5&db=2"))
        XCTAssertEqual(c.endpoint, .unix(path: "/var/run/redis/redis.sock"))
        XCTAssertEqual(c.db, 2)
        XCTAssertEqual(c.expiryMs, 5)
        XCTAssertNil(c.password)
        XCTAssertEqual(c.redacted, "unix:/var/run/redis/redis.sock")
        let d = try XCTUnwrap(ok("unix:///tmp/my%20dir/r%25.sock?expiry_ms=5&password=pw"))
        XCTAssertEqual(d.endpoint, .unix(path: "/tmp/my dir/r%.sock"))
        XCTAssertEqual(d.password, "pw")
        // 107 bytes is the longest path sockaddr_un holds with its NUL.
        let longest = "/" + String(repeating: "s", count: 106)
        XCTAssertEqual(try XCTUnwrap(ok("unix://\(longest)?expiry_ms=1")).endpoint, .unix(path: longest))
        bad("unix://\(longest)s?expiry_ms=1", naming: ["socket path", "107"])
    }

    func testUnixSocketErrors() {
        bad("unix://relative.sock?expiry_ms=1", naming: ["unix://", "absolute"])
        bad("unix://tmp/r.sock?expiry_ms=1", naming: ["unix://", "absolute"])
        bad("unix://?expiry_ms=1", naming: ["unix://", "absolute"])
        bad("unix:///?expiry_ms=1", naming: ["unix://", "absolute"])
        bad("unix:///tmp/%zz.sock?expiry_ms=1", naming: ["unix://"])
        bad("unix:///tmp/r%00.sock?expiry_ms=1", naming: ["NUL"])
        bad("unix:///tmp/r.sock?expiry_ms=1#x", naming: ["#"])
        bad("unix:///tmp/r.sock?expiry_ms=1&port=1", naming: ["unknown option", "port"])
    }

    // MARK: malformed input

    func testSchemes() {
        bad("", naming: ["redis://", "unix://"])
        bad("localhost:6379", naming: ["redis://", "unix://"])
        bad("redis:/h?expiry_ms=1", naming: ["redis://"])
        bad("redis//h?expiry_ms=1", naming: ["redis://"])
        bad("rediss+foo://h?expiry_ms=1", naming: ["scheme", "rediss://"])
        bad("http://h?expiry_ms=1", naming: ["scheme", "http"])
        bad("://h?expiry_ms=1", naming: ["scheme"])
        let f = bad("\(String(repeating: "x", count: 100))://h?expiry_ms=1", naming: ["scheme"])
        // The echoed scheme is clipped.
        XCTAssertLessThan(f?.message.count ?? 1000, 100)
    }

    func testFragmentIsRefused() {
        bad("redis://h?expiry_ms=1#frag", naming: ["#", "fragment"])
        bad("redis://h#frag", naming: ["#", "fragment"])
        bad("redis://h/1#?expiry_ms=1", naming: ["#", "fragment"])
    }

    func testUnknownAndRepeatedOptions() {
        bad("redis://h?expiry_ms=1&bogus=2", naming: ["unknown option", "bogus"])
        bad("redis://h?expiry_ms=1&Expiry_ms=2", naming: ["unknown option", "Expiry_ms"])
        bad("redis://h?expiry_ms=1&=2", naming: ["unknown option"])
        bad("redis://h?expiry_ms=1&pool_size", naming: ["pool_size", "no value"])
        let long = String(repeating: "z", count: 200)
        let f = bad("redis://h?expiry_ms=1&\(long)=1", naming: ["unknown option", "..."])
        XCTAssertLessThan(f?.message.count ?? 1000, 120, "an unknown name is clipped")
        for name in ["expiry_ms", "prefix", "connect_timeout_ms", "timeout_ms", "pool_size", "db", "clock",
                     "on_error", "fallback", "scan_delete", "password", "user"] {
            let value: String
            switch name {
            case "clock": value = "local"
            case "on_error": value = "error"
            case "fallback": value = "none"
            default: value = "1"
            }
            let extra = name == "expiry_ms" ? "" : "expiry_ms=1&"
            bad("redis://h?\(extra)\(name)=\(value)&\(name)=\(value)", naming: [name, "twice"])
        }
        bad("redis://h?expiry_ms=1&expiry_ms=2", naming: ["expiry_ms", "twice"])
        bad("redis://h?expiry_ms=1&prefix=%zz", naming: ["percent", "prefix"])
    }

    func testEveryFailureIsInvalidWithAConfigMessage() {
        let urls = [
            "", "x", "redis://?db=x", "redis://h?expiry_ms=0", "redis://h:0?expiry_ms=1", "redis://h?expiry_ms=1&x=y",
            "unix://x?expiry_ms=1", "redis://[::1?expiry_ms=1", "redis://h?expiry_ms=1#", "redis://%?expiry_ms=1",
            "redis://h?expiry_ms=1&prefix=%", "redis://h?expiry_ms=1&db=x", "redis://h/x?expiry_ms=1",
        ]
        for u in urls {
            guard case let .failure(f) = Config.parse(u) else { XCTFail("\(u) parsed"); continue }
            XCTAssertEqual(f.status, .invalid, u)
            XCTAssertTrue(f.message.hasPrefix("config: "), u)
            XCTAssertGreaterThan(f.message.count, "config: ".count + 10, u)
        }
    }

    /// Arbitrary bytes never trap the parser; whatever they give is success or .invalid.
    func testRandomBytesNeverTrap() {
        var rng = SplitMix64(seed: 0xC0FF_EE)
        let alphabet = bytes("redis:/unix@[]:?&=%#.0123456789abcdefxyz_-\u{7f}") + [0, 0xC3, 0xA9, 0xFF]
        let seeds = ["redis://", "unix:///", "redis://u:p@[::1]:6379/2?expiry_ms=5&"]
        for i in 0..<3000 {
            var b = bytes(seeds[i % seeds.count])
            let n = Int(rng.next() % 40)
            for _ in 0..<n { b.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
            if case let .failure(f) = Config.parse(b) {
                XCTAssertEqual(f.status, .invalid, "\(b)")
            }
        }
    }

    // MARK: the password stays secret

    /// Passwords as written in the URL (percent-encoded where needed) and as the parser decodes them.
    let secrets: [(written: String, decoded: String)] = [
        ("s3cr3t-pw", "s3cr3t-pw"),
        ("Zq9xK", "Zq9xK"),
        ("p@ss:w0rd", "p@ss:w0rd"),
        ("hunter%2F2%3F", "hunter/2?"),
        ("%E2%82%ACuro-secret", "\u{20ac}uro-secret"),
        ("x%25y%26z%3Dpw", "x%y&z=pw"),
    ]

    func testNoFailureMessageContainsThePassword() {
        let longPrefix = String(repeating: "p", count: Config.maxPrefixBytes + 1)
        let templates = [
            "redis://:{PW}@h:0?expiry_ms=1",
            "redis://:{PW}@h:65536?expiry_ms=1",
            "redis://:{PW}@h:abc?expiry_ms=1",
            "redis://:{PW}@h:?expiry_ms=1",
            "redis://:{PW}@h?expiry_ms=",
            "redis://:{PW}@h?expiry_ms=1.5",
            "redis://user:{PW}@h?pool_size=2&expiry_ms=-0",
            "redis://:{PW}@h?expiry_ms=0",
            "redis://:{PW}@h?expiry_ms=-5",
            "redis://:{PW}@h?expiry_ms=abc",
            "redis://:{PW}@h?expiry_ms=99999999999999999999",
            "redis://:{PW}@h?expiry_ms=1&bogus=1",
            "redis://:{PW}@h?expiry_ms=1&expiry_ms=2",
            "redis://:{PW}@h?expiry_ms=1&pool_size",
            "redis://:{PW}@h?expiry_ms=1#frag",
            "redis://:{PW}@h?expiry_ms=1&prefix=%zz",
            "redis://:{PW}@h?expiry_ms=1&prefix=\(longPrefix)",
            "redis://:{PW}@[::1?expiry_ms=1",
            "redis://:{PW}@[::1]x?expiry_ms=1",
            "redis://:{PW}@[zz]?expiry_ms=1",
            "redis://:{PW}@ho st?expiry_ms=1",
            "redis://:{PW}@h/abc?expiry_ms=1",
            "redis://:{PW}@h/-1?expiry_ms=1",
            "redis://:{PW}@h/1?expiry_ms=1&db=2",
            "redis://:{PW}@h?expiry_ms=1&pool_size=0",
            "redis://:{PW}@h?expiry_ms=1&timeout_ms=0",
            "redis://:{PW}@h?expiry_ms=1&connect_timeout_ms=x",
            "redis://:{PW}@h?expiry_ms=1&clock=x",
            "redis://:{PW}@h?expiry_ms=1&on_error=x",
            "redis://:{PW}@h?expiry_ms=1&fallback=x",
            "redis://:{PW}@h?expiry_ms=1&scan_delete=maybe",
            "redis://{PW}@h:0?expiry_ms=1",
            "redis://{PW}@h?expiry_ms=0",
            "redis://alice:{PW}@h?expiry_ms=1&user=bob&user=carol",
            "redis://us%zz:{PW}@h?expiry_ms=1",
            "redis://user:{PW}%zz@h?expiry_ms=1",
            "redis://user:{PW}%@h?expiry_ms=1",
            "redis://user:{PW}%00@h?expiry_ms=1",
            "redis://{PW}%00@h?expiry_ms=1",
            "rediss://:{PW}@h?expiry_ms=1&ssl_cert_reqs=maybe",
            "rediss+sentinel://:{PW}@h?expiry_ms=1",
            "http://:{PW}@h?expiry_ms=1",
            "redis:/:{PW}@h?expiry_ms=1",
            "redis//:{PW}@h?expiry_ms=1",
            "unix://:{PW}@/tmp/r.sock?expiry_ms=1",
            "unix:///tmp/r.sock?expiry_ms=1&password={PW}&password={PW}",
            "unix:///tmp/r.sock?password={PW}&expiry_ms=0",
            "redis://h?password={PW}&expiry_ms=0",
            "redis://h?expiry_ms=1&password={PW}&bogus=1",
            "redis://h?expiry_ms=1&password={PW}&password=x",
            "redis://h?expiry_ms=1&password={PW}%zz",
            "redis://h?expiry_ms=1&password={PW}#frag",
            "redis://h?expiry_ms=1&password={PW}&timeout_ms=-1",
        ]
        var checked = 0
        for (written, decoded) in secrets {
            for t in templates {
                let url = t.replacing("{PW}", with: written)
                switch Config.parse(url) {
                case let .success(c):
                    XCTFail("expected \(url) to be refused, got \(c.redacted)")
                case let .failure(f):
                    XCTAssertEqual(f.status, .invalid, url)
                    XCTAssertFalse(f.message.contains(written), "password leaked: \(url) -> \(f.message)")
                    XCTAssertFalse(f.message.contains(decoded), "password leaked: \(url) -> \(f.message)")
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, secrets.count * templates.count)
    }

    func testRedactedNeverShowsThePassword() throws {
        for (written, decoded) in secrets {
            for t in ["redis://:{PW}@h:7000/2?expiry_ms=1", "redis://alice:{PW}@[::1]:6380?expiry_ms=1",
                      "unix:///tmp/r.sock?expiry_ms=1&password={PW}",
                      "redis://h?expiry_ms=1&user=bob&password={PW}"] {
                let url = t.replacing("{PW}", with: written)
                let c = try XCTUnwrap(ok(url))
                XCTAssertEqual(c.password, decoded, url)
                XCTAssertFalse(c.redacted.contains(decoded), c.redacted)
                XCTAssertFalse(c.redacted.contains(written), c.redacted)
                XCTAssertFalse(c.redacted.isEmpty)
            }
        }
        let lone = try XCTUnwrap(ok("redis://s3cr3t-pw@h?expiry_ms=1"))
        XCTAssertEqual(lone.password, "s3cr3t-pw")
        XCTAssertEqual(lone.redacted, "h:6379")
        XCTAssertEqual(try XCTUnwrap(ok("redis://u:pw@h:7000/2?expiry_ms=1")).redacted, "h:7000")
        XCTAssertEqual(try XCTUnwrap(ok("redis://?expiry_ms=1")).redacted, "127.0.0.1:6379")
    }

    // MARK: percentDecode itself

    func testPercentDecode() {
        XCTAssertEqual(Config.percentDecode(bytes("")), "")
        XCTAssertEqual(Config.percentDecode(bytes("abc")), "abc")
        XCTAssertEqual(Config.percentDecode(bytes("%41%62%2f%2F")), "Ab//")
        XCTAssertEqual(Config.percentDecode(bytes("%25%32%35")), "%25", "decoding happens once")
        XCTAssertEqual(Config.percentDecode(bytes("a+b")), "a+b", "'+' is not a space here")
        XCTAssertEqual(Config.percentDecode(bytes("%C3%A9")), "\u{e9}")
        XCTAssertNil(Config.percentDecode(bytes("%")))
        XCTAssertNil(Config.percentDecode(bytes("%4")))
        XCTAssertNil(Config.percentDecode(bytes("a%4")))
        XCTAssertNil(Config.percentDecode(bytes("%4g")))
        XCTAssertNil(Config.percentDecode(bytes("%g4")))
        XCTAssertNil(Config.percentDecode(bytes("%-1")))
        XCTAssertNil(Config.percentDecode(bytes("%C3")), "a lone lead byte is not UTF-8")
        XCTAssertNil(Config.percentDecode(bytes("%FF")))
        XCTAssertNil(Config.percentDecode([0xFF]))
        // Every byte that decodes to ASCII round-trips, upper and lower case hex alike.
        for v in 0..<128 {
            let hex = bytes("0123456789abcdef")
            let lower = [37, hex[v >> 4], hex[v & 15]]
            let upper = Array(text(lower).uppercased().utf8)
            XCTAssertEqual(Config.percentDecode(lower).map { Array($0.utf8) }, [UInt8(v)])
            XCTAssertEqual(Config.percentDecode(upper).map { Array($0.utf8) }, [UInt8(v)])
        }
    }
}
