// Passwords with raw '?', '&' or '=' must not leak through the messages that quote the query.
@testable import HammerCore
import XCTest

final class ConfigSecretTests: XCTestCase {
    func failure(_ url: String) -> Failure? {
        if case let .failure(f) = Config.parse(url) { return f }
        return nil
    }

    func testRawQuestionMarkOrAmpersandInPasswordNeverLeaks() {
        let urls = ["redis://pa?s3cr3t-pw@h?expiry_ms=1", "redis://pa?s3cr3t-pw@h",
                    "redis://h?expiry_ms=1&password=pa&s3cr3t-pw",
                    "redis:/:s3cr3t-pw@h?prefix=a://b", "redis://u:pw@h?s3cr3t-pw=1&expiry_ms=1"]
        for u in urls {
            guard let f = failure(u) else { XCTFail("\(u) parsed"); continue }
            XCTAssertEqual(f.status, .invalid)
            XCTAssertFalse(f.message.contains("s3cr3t"), "\(u) -> \(f.message)")
            XCTAssertFalse(f.message.lowercased().contains("s3cr3t"), "\(u) -> \(f.message)")
        }
        // Without a secret in sight, the offending option is still named.
        XCTAssertEqual(failure("redis://h?expiry_ms=1&bogus=2")?.message.contains("'bogus'"), true)
    }

    func testEmptyPasswordsUsersAndNul() {
        if case let .success(c) = Config.parse("redis://@h?expiry_ms=1") { XCTAssertNil(c.password) } else { XCTFail() }
        if case let .success(c) = Config.parse("redis://:@h?expiry_ms=1") { XCTAssertNil(c.password) } else { XCTFail() }
        XCTAssertNotNil(failure("redis://u:@h?expiry_ms=1"), "a user without a password is refused")
        XCTAssertNotNil(failure("redis://h?expiry_ms=1&user=bob"))
        XCTAssertNotNil(failure("redis://h?expiry_ms=1&password=a%00b"))
        XCTAssertNotNil(failure("redis://h?expiry_ms=1&user=a%00b&password=x"))
        XCTAssertNotNil(failure("redis://h?expiry_ms=1&user=a&username=b&password=x"), "user and username both given")
        if case let .success(c) = Config.parse("redis://h?expiry_ms=1&username=bob&password=pw") {
            XCTAssertEqual(c.user, "bob")
            XCTAssertEqual(c.password, "pw")
        } else { XCTFail() }
    }
}
