// rediss:// URLs and the ssl_* options, named as redis-py and Python's limits name them.
import XCTest
@testable import HammerCore

final class ConfigTLSTests: XCTestCase {
    func parse(_ url: String) -> Result<Config, Failure> { Config.parse(url) }

    func tls(_ url: String, file: StaticString = #filePath, line: UInt = #line) -> TLSOptions? {
        switch parse(url) {
        case let .success(c):
            XCTAssertNotNil(c.tls, url, file: file, line: line)
            return c.tls
        case let .failure(f):
            XCTFail("\(url): \(f.message)", file: file, line: line)
            return nil
        }
    }

    func refused(_ url: String, naming word: String, file: StaticString = #filePath, line: UInt = #line) {
        switch parse(url) {
        case let .success(c): XCTFail("\(url) parsed as \(c)", file: file, line: line)
        case let .failure(f):
            XCTAssertEqual(f.status, .invalid, file: file, line: line)
            XCTAssertTrue(f.message.contains(word), "\(url): \(f.message)", file: file, line: line)
        }
    }

    func testRedissTurnsTLSOnWithSafeDefaults() throws {
        let t = try XCTUnwrap(tls("rediss://cache.example.com:6380/2?expiry_ms=1000"))
        XCTAssertEqual(t, TLSOptions())
        XCTAssertTrue(t.verifyPeer)
        XCTAssertTrue(t.checkHostname)
        XCTAssertEqual(t.minVersion, .tls12)
        XCTAssertNil(t.caFile)
        let c = try parse("rediss://u:p@cache.example.com:6380/2?expiry_ms=1000").get()
        XCTAssertEqual(c.endpoint, .tcp(host: "cache.example.com", port: 6380))
        XCTAssertEqual(c.db, 2)
        XCTAssertEqual(c.user, "u")
        XCTAssertEqual(c.password, "p")
        XCTAssertEqual(c.redacted, "cache.example.com:6380 (TLS)")
        XCTAssertNil(try parse("redis://h/?expiry_ms=1").get().tls)
        XCTAssertNil(try parse("REDIS://h/?expiry_ms=1").get().tls)
        XCTAssertNotNil(try parse("REDISS://h/?expiry_ms=1").get().tls)
    }

    func testEachOption() throws {
        let t = try XCTUnwrap(tls("rediss://127.0.0.1:6380/?expiry_ms=1000&ssl_ca_certs=/etc/ca%20dir/ca.crt"
                                  + "&ssl_ca_path=/etc/ssl/certs&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
                                  + "&ssl_cert_reqs=none&ssl_check_hostname=false&ssl_server_name=redis.internal"
                                  + "&ssl_min_version=TLSv1.3"))
        XCTAssertEqual(t.caFile, "/etc/ca dir/ca.crt")
        XCTAssertEqual(t.caPath, "/etc/ssl/certs")
        XCTAssertEqual(t.certFile, "/c.pem")
        XCTAssertEqual(t.keyFile, "/k.pem")
        XCTAssertFalse(t.verifyPeer)
        XCTAssertFalse(t.checkHostname)
        XCTAssertEqual(t.serverName, "redis.internal")
        XCTAssertEqual(t.minVersion, .tls13)
        // Spellings users copy from redis-py and Python's ssl module.
        XCTAssertEqual(tls("rediss://h/?expiry_ms=1&ssl_min_version=TLSv1_2")?.minVersion, .tls12)
        XCTAssertEqual(tls("rediss://h/?expiry_ms=1&ssl_cert_reqs=REQUIRED")?.verifyPeer, true)
        XCTAssertEqual(tls("rediss://h/?expiry_ms=1&ssl_check_hostname=True")?.checkHostname, true)
        XCTAssertEqual(tls("rediss://h/?expiry_ms=1&ssl_check_hostname=0")?.checkHostname, false)
        // A certificate file may hold its key.
        XCTAssertEqual(tls("rediss://h/?expiry_ms=1&ssl_certfile=/both.pem")?.keyFile, nil)
    }

    func testBadOptionsAreRefusedByName() {
        refused("redis://h/?expiry_ms=1&ssl_ca_certs=/ca.crt", naming: "rediss://")
        refused("unix:///tmp/r.sock?expiry_ms=1&ssl_cert_reqs=none", naming: "rediss://")
        refused("rediss://h/?expiry_ms=1&ssl_keyfile=/k.pem", naming: "ssl_certfile")
        refused("rediss://h/?expiry_ms=1&ssl_cert_reqs=optional", naming: "ssl_cert_reqs")
        refused("rediss://h/?expiry_ms=1&ssl_check_hostname=maybe", naming: "ssl_check_hostname")
        refused("rediss://h/?expiry_ms=1&ssl_min_version=TLSv1.1", naming: "ssl_min_version")
        refused("rediss://h/?expiry_ms=1&ssl_server_name=a%20b", naming: "ssl_server_name")
        refused("rediss://h/?expiry_ms=1&ssl_server_name=*.example.com", naming: "ssl_server_name")
        refused("rediss://h/?expiry_ms=1&ssl_ca_certs=", naming: "ssl_ca_certs")
        refused("rediss://h/?expiry_ms=1&ssl_ca_certs=/a%00b", naming: "ssl_ca_certs")
        refused("rediss://h/?expiry_ms=1&ssl_ca_certs=/a&ssl_ca_certs=/b", naming: "twice")
        refused("rediss://h/?ssl_ca_certs=/a&expiry_ms=0", naming: "expiry_ms")
        refused("rediss+foo://h/?expiry_ms=1", naming: "rediss://")   // rediss+cluster:// is a scheme now (ClusterCoreTests)
    }

    func testMessagesNeverShowAPassword() {
        for url in ["rediss://:s3cret@h/?expiry_ms=1&ssl_cert_reqs=bad", "rediss://u:s3cret@h/?expiry_ms=1&ssl_x=1"] {
            if case let .failure(f) = parse(url) {
                XCTAssertFalse(f.message.contains("s3cret"), f.message)
            } else {
                XCTFail(url)
            }
        }
    }
}
