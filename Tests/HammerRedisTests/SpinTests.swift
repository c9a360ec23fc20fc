// Replies read by polling the socket (spin_us) before sleeping: the same answers as sleeping reads, a reply slower
// than the poll still read, polling backing off while replies keep outlasting it, and at most the allowed number of
// threads polling at once.
import CHammer
import CHiredis
@testable import Hammer
import HammerCore
import XCTest

final class SpinTests: XCTestCase {
    var server: RedisProcess!

    override func setUp() { server = try! RedisProcess() }
    override func tearDown() { server = nil }

    func config(_ opts: String) throws -> Config {
        switch Config.parse(server.url(opts)) {
        case let .success(c): return c
        case let .failure(f): throw XCTSkip("bad test URL: \(f.message)")
        }
    }

    /// Runs `command` on `conn` and returns the reply as text (integer, status or string).
    func send(_ conn: Connection, _ command: [String]) -> String {
        conn.args.reset()
        for a in command { conn.args.add(Array(a.utf8)) }
        switch conn.run() {
        case let .failure(f): return "failure: \(f.message)"
        case let .success(r):
            defer { freeReplyObject(r) }
            if r.pointee.type == REDIS_REPLY_INTEGER { return String(r.pointee.integer) }
            return Connection.text(r)
        }
    }

    func testSpinningAndSleepingThreadsCountEveryHit() throws {
        // spin_us=0 never polls; 1000 polls long; with 1 and 8 threads (8 > CPUs here: polling is then off, and
        // turns on again as threads finish).
        for spin in [0, 50, 1000] {
            for threads in [1, 8] {
                var h: OpaquePointer?
                XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&pool_size=4&spin_us=\(spin)"), &h), 0)
                nonisolated(unsafe) let handle = h
                let id = "spin:\(spin):\(threads)"
                let perThread = 300
                DispatchQueue.concurrentPerform(iterations: threads) { _ in
                    for i in 0..<perThread {
                        var n: Int64 = 0
                        let st = hammer_count_hit(handle, id, 1, 1_700_000_000_000 + Int64(i), 1, &n)
                        XCTAssertEqual(st, 0, String(cString: hammer_last_error()))
                    }
                }
                var b = hammer_bucket()
                XCTAssertEqual(hammer_get_bucket(h, id, 1, &b), 0)
                XCTAssertEqual(b.count, Int64(threads * perThread), "spin_us=\(spin), \(threads) threads")
                var s = hammer_stats_t.sized()
                XCTAssertEqual(hammer_stats(h, &s), 0)
                let e = s.errors
                XCTAssertEqual(e.1 + e.2 + e.3 + e.4 + e.5 + e.6 + e.7, 0, "no call failed")
                hammer_close(h)
            }
        }
    }

    func testReplySlowerThanThePollIsStillReadAndPollingBacksOff() throws {
        let c = try config("expiry_ms=1000&spin_us=20")
        let conn = Connection(spinUs: c.spinUs, gate: SpinGate(cpus: 2))
        XCTAssertNil(conn.connect(c))
        defer { conn.close() }
        conn.spinSkip = 0   // whatever connect's own PING did
        conn.spinMisses = 0
        // Each DEBUG SLEEP answers after 5 ms, far beyond the 20 us poll: the sleeping read gets the reply, and
        // each miss doubles the calls that skip polling (1, 3, 7, ...).
        XCTAssertEqual(send(conn, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(conn.spinSkip, 1)
        XCTAssertEqual(send(conn, ["PING"]), "PONG")    // skipped its poll
        XCTAssertEqual(conn.spinSkip, 0)
        XCTAssertEqual(send(conn, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(conn.spinSkip, 3)
        for _ in 0..<3 { XCTAssertEqual(send(conn, ["PING"]), "PONG") }
        XCTAssertEqual(conn.spinSkip, 0)
        // A reply inside the poll: a PING answered within 20 us is not certain on a loaded machine, so poll longer.
        let fast = Connection(spinUs: Config.maxSpinUs, gate: SpinGate(cpus: 2))
        XCTAssertNil(fast.connect(c))
        defer { fast.close() }
        fast.spinSkip = 0
        fast.spinMisses = 0
        XCTAssertEqual(send(fast, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(fast.spinSkip, 1)
        XCTAssertEqual(send(fast, ["PING"]), "PONG")
        var caught = false
        for _ in 0..<50 where !caught {
            XCTAssertEqual(send(fast, ["PING"]), "PONG")
            caught = fast.spinMisses == 0
        }
        XCTAssertTrue(caught, "no PING was answered within 1 ms of polling")
        XCTAssertEqual(fast.spinSkip, 0)
    }

    func testBatchesSleepAndLeaveTheConnectionPolling() throws {
        // A batch's reply takes longer than a poll: it is read by sleeping, so it counts no miss that would stop the
        // connection's single calls from polling.
        var h: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&pool_size=1&spin_us=20"), &h), 0)
        defer { hammer_close(h) }
        let hd = handle(h)!
        _ = hd.pool.with { conn -> Result<Void, Failure> in
            conn.spinSkip = 0
            conn.spinMisses = 0
            return .success(())
        }
        let ids = (0..<512).map { strdup("batch:poll:\($0)")! }
        defer { ids.forEach { free($0) } }
        let reqs = ids.map { hammer_count_request(id: $0, bucket: 1, now_ms: 1_700_000_000_000, increment: 1) }
        var counts = [Int64](repeating: 0, count: reqs.count)
        XCTAssertEqual(hammer_count_hits(h, reqs, reqs.count, &counts, nil), 0)
        XCTAssertEqual(Set(counts), [1])
        _ = hd.pool.with { conn -> Result<Void, Failure> in
            XCTAssertEqual(conn.spinMisses, 0, "a batch's reply counted as a missed poll")
            XCTAssertEqual(conn.spinSkip, 0)
            return .success(())
        }
    }

    func testPollingIsOffWithMoreCallsThanCPUs() throws {
        let c = try config("expiry_ms=1000")
        let gate = SpinGate(cpus: 2)
        XCTAssertEqual(gate.maxActive, 2)
        XCTAssertEqual(gate.maxSpinners, 1)
        XCTAssertEqual(SpinGate(cpus: 16).maxSpinners, 8)
        XCTAssertEqual(SpinGate(cpus: 1).maxSpinners, 1)
        let conn = Connection(spinUs: 1000, gate: gate)
        XCTAssertNil(conn.connect(c))
        defer { conn.close() }
        conn.spinSkip = 0   // whatever connect's own PING did
        conn.spinMisses = 0
        // Three calls in progress on two CPUs: this one does not poll, so a slow reply counts no miss.
        gate.active.store(3, ordering: .relaxed)
        XCTAssertEqual(send(conn, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(conn.spinMisses, 0)
        // One polling already (the most on two CPUs): no poll either.
        gate.active.store(1, ordering: .relaxed)
        gate.spinners.store(1, ordering: .relaxed)
        XCTAssertEqual(send(conn, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(conn.spinMisses, 0)
        XCTAssertEqual(gate.spinners.load(ordering: .relaxed), 1, "the counter is given back")
        // Room for a poller: this call polls and misses.
        gate.spinners.store(0, ordering: .relaxed)
        XCTAssertEqual(send(conn, ["DEBUG", "SLEEP", "0.005"]), "OK")
        XCTAssertEqual(conn.spinMisses, 1)
        XCTAssertEqual(gate.spinners.load(ordering: .relaxed), 0)
        // spin_us=0 gives a connection no gate at all.
        XCTAssertNil(Connection(spinUs: 0).gate)
        XCTAssertTrue(Connection(spinUs: 50).gate === SpinGate.shared)
    }
}
