// redis+sentinel:// URLs, as Python's limits writes them.
import XCTest
@testable import HammerCore

final class ConfigSentinelTests: XCTestCase {
    func testSentinelURLs() throws {
        let c = try Config.parse("redis+sentinel://u:pw@s1:26380,[::1],10.0.0.3:5000/mymaster/2?expiry_ms=1"
                                 + "&sentinel_password=spw&sentinel_user=su").get()
        let s = try XCTUnwrap(c.sentinel)
        XCTAssertEqual(s.sentinels, [.tcp(host: "s1", port: 26380), .tcp(host: "::1", port: 26379),
                                     .tcp(host: "10.0.0.3", port: 5000)])
        XCTAssertEqual(s.service, "mymaster")
        XCTAssertEqual(s.user, "su")
        XCTAssertEqual(s.password, "spw")
        XCTAssertEqual(c.user, "u")          // the data nodes' credentials
        XCTAssertEqual(c.password, "pw")
        XCTAssertEqual(c.db, 2)
        XCTAssertNil(c.tls)
        let t = try Config.parse("rediss+sentinel://h/svc?expiry_ms=1&ssl_ca_certs=/ca.pem").get()
        XCTAssertEqual(t.sentinel?.service, "svc")
        XCTAssertEqual(t.sentinel?.sentinels, [.tcp(host: "h", port: 26379)])
        XCTAssertEqual(t.tls?.caFile, "/ca.pem")
        XCTAssertEqual(t.db, 0)
    }

    func testBadSentinelURLs() {
        for (url, word) in [("redis+sentinel://h?expiry_ms=1", "service name"),
                            ("redis+sentinel://h/?expiry_ms=1", "service name"),
                            ("redis+sentinel://h,/svc?expiry_ms=1", "host"),
                            ("redis+sentinel://h/svc/x?expiry_ms=1", "database"),
                            ("redis://h1,h2/?expiry_ms=1", "redis+sentinel"),
                            ("redis://h/?expiry_ms=1&sentinel_password=x", "redis+sentinel"),
                            ("redis+sentinel://h/svc?expiry_ms=1&sentinel_user=u", "sentinel_password")] {
            switch Config.parse(url) {
            case let .success(c): XCTFail("\(url) parsed as \(c)")
            case let .failure(f):
                XCTAssertEqual(f.status, .invalid, url)
                XCTAssertTrue(f.message.contains(word) || f.message.contains("(not shown"), "\(url): \(f.message)")
            }
        }
    }
}
