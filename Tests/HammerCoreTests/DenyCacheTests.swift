// The deny cache's rules and store, against the algorithms' pure models (the Lua scripts' twins): a denial served
// from the cache must be, field by field, the decision the model gives at that moment, and the cache must never
// deny what the model allows.
import XCTest
@testable import HammerCore

final class DenyCacheTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ r: ClosedRange<Int64>) -> Int64 {
            r.lowerBound + Int64(next() % UInt64(r.upperBound - r.lowerBound + 1))
        }
    }

    let id = Array("abuser".utf8)

    /// Random hits (costs 0 .. capacity + 1, mostly 1) and peeks at advancing times: every step is first offered to
    /// the cache, and what it answers is compared with the model's decision at that time.
    func testServedDenialsAreTheModelsDecisions() {
        for alg in Algorithm.allCases {
            for seed in UInt64(1)...40 {
                var rng = Rng(state: seed &* 7919 &+ UInt64(alg.rawValue))
                let L = rng.int(1...6)
                let P = [7, 100, 1000, 60_000][Int(rng.int(0...3))] as Int64
                let burst = alg == .fixedWindow || alg == .slidingWindow ? 0 : rng.int(0...8)
                let lim = Limit(algorithm: alg, limit: L, periodMs: P, burst: burst)
                var model = LimiterModel()
                var cache = DenyShard(capacity: 4)
                var now = rng.int(0...1_000_000)
                var served = 0
                for step in 0..<600 {
                    now += [0, 0, 1, rng.int(0...P / 4 + 1), rng.int(0...P)][Int(rng.int(0...4))]
                    let peek = rng.int(0...5) == 0
                    let mode: Mode = peek ? .peek : .hit
                    let r = rng.int(0...9)
                    let cost: Int64 = peek ? 1 : (r < 6 ? 1 : (r < 8 ? rng.int(0...lim.capacity) : lim.capacity + 1))
                    if let d = cache.answer(id: id, lim, mode: mode, cost: cost, now: now) {
                        served += 1
                        var copy = model
                        let want = copy.apply(lim, mode: mode, cost: cost, now: now)
                        XCTAssertEqual(d, want, "\(alg) L=\(L) P=\(P) burst=\(burst) seed \(seed) step \(step) cost \(cost)")
                        XCTAssertFalse(want.allowed)
                        continue
                    }
                    let d = model.apply(lim, mode: mode, cost: cost, now: now)
                    cache.offer(id: id, lim, d, mode: mode, cost: cost, now: now, resetsBefore: cache.resets)
                }
                if alg == .slidingCounter {
                    XCTAssertEqual(served, 0, "seed \(seed): the sliding counter's denials are never cached")
                } else {
                    XCTAssertGreaterThan(served, 0, "\(alg) seed \(seed): the cache served nothing")
                }
            }
        }
    }

    func testCountdownAndExpiryAtT() throws {
        let lim = Limit(algorithm: .gcra, limit: 2, periodMs: 1000)
        var model = LimiterModel()
        var cache = DenyShard(capacity: 8)
        _ = model.apply(lim, mode: .hit, cost: 2, now: 10_000)
        let d = model.apply(lim, mode: .hit, cost: 1, now: 10_000)
        XCTAssertFalse(d.allowed)
        XCTAssertEqual(d.retryAfterMs, 500)
        cache.offer(id: id, lim, d, mode: .hit, cost: 1, now: 10_000, resetsBefore: 0)
        let later = try XCTUnwrap(cache.answer(id: id, lim, mode: .hit, cost: 1, now: 10_200))
        XCTAssertEqual(later.retryAfterMs, 300)
        XCTAssertEqual(later.resetAfterMs, d.resetAfterMs - 200)
        XCTAssertEqual(later.remaining, 0)
        XCTAssertEqual(later.limit, 2)
        XCTAssertEqual(cache.hits, 1)
        XCTAssertNotNil(cache.answer(id: id, lim, mode: .peek, cost: 1, now: 10_499))
        // At T the unit hit passes on Redis: the entry is gone and the call goes there.
        XCTAssertNil(cache.answer(id: id, lim, mode: .hit, cost: 1, now: 10_500))
        XCTAssertEqual(cache.count, 0)
        XCTAssertTrue(model.apply(lim, mode: .hit, cost: 1, now: 10_500).allowed)
    }

    func testWhatIsNotKept() {
        let gcra = Limit(algorithm: .gcra, limit: 10, periodMs: 1000)
        var cache = DenyShard(capacity: 8)
        // A denial of cost 5 says nothing of cost 1.
        cache.offer(id: id, gcra, Decision(allowed: false, count: 8, limit: 10, remaining: 0, retryAfterMs: 300,
                                           resetAfterMs: 800), mode: .hit, cost: 5, now: 0, resetsBefore: 0)
        // Degraded decisions, check_rate, values Redis should never send.
        var deg = Decision(allowed: false, count: 10, limit: 10, remaining: 0, retryAfterMs: 100, resetAfterMs: 1000)
        deg.degraded = true
        cache.offer(id: id, gcra, deg, mode: .hit, cost: 1, now: 0, resetsBefore: 0)
        let fw = Limit(algorithm: .fixedWindow, limit: 3, periodMs: 1000)
        cache.offer(id: id, fw, Decision(allowed: false, count: 4, limit: 3, remaining: 0, retryAfterMs: 500,
                                         resetAfterMs: 500), mode: .check, cost: 1, now: 0, resetsBefore: 0)
        for (retry, reset) in [(Int64(1) << 60, Int64(1) << 60), (-5, 100), (100, -1), (0, 100), (200, 100)] {
            cache.offer(id: id, gcra, Decision(allowed: false, count: 10, limit: 10, remaining: 0, retryAfterMs: retry,
                                               resetAfterMs: reset), mode: .hit, cost: 1, now: 0, resetsBefore: 0)
        }
        // Not full: a denial of a unit with the count below the capacity (another algorithm's state, say).
        cache.offer(id: id, gcra, Decision(allowed: false, count: 9, limit: 10, remaining: 0, retryAfterMs: 100,
                                           resetAfterMs: 900), mode: .hit, cost: 1, now: 0, resetsBefore: 0)
        XCTAssertEqual(cache.count, 0)
        // Kept: the fixed window at its limit, even from an allowed hit; every cost up to the limit waits for the
        // window's end, a cost above it never passes, cost 0 and check_rate go to Redis.
        cache.offer(id: id, fw, Decision(allowed: true, count: 3, limit: 3, remaining: 0, retryAfterMs: 0,
                                         resetAfterMs: 400), mode: .hit, cost: 1, now: 100, resetsBefore: 0)
        XCTAssertEqual(cache.count, 1)
        XCTAssertEqual(cache.answer(id: id, fw, mode: .hit, cost: 3, now: 200)?.retryAfterMs, 300)
        XCTAssertEqual(cache.answer(id: id, fw, mode: .hit, cost: 4, now: 200)?.retryAfterMs, -1)
        XCTAssertNil(cache.answer(id: id, fw, mode: .hit, cost: 0, now: 200))
        XCTAssertNil(cache.answer(id: id, fw, mode: .check, cost: 1, now: 200))
        // Another limit of the same id is another entry.
        XCTAssertNil(cache.answer(id: id, Limit(algorithm: .fixedWindow, limit: 4, periodMs: 1000), mode: .hit,
                                  cost: 1, now: 200))
    }

    func testResetClearsTheIdAndRefusesAnswersAskedBeforeIt() {
        var cache = DenyShard(capacity: 8)
        let a = Limit(algorithm: .fixedWindow, limit: 1, periodMs: 1000)
        let b = Limit(algorithm: .fixedWindow, limit: 2, periodMs: 1000)
        let full = { (l: Limit) in Decision(allowed: false, count: l.limit, limit: l.limit, remaining: 0,
                                            retryAfterMs: 900, resetAfterMs: 900) }
        cache.offer(id: id, a, full(a), mode: .hit, cost: 1, now: 100, resetsBefore: 0)
        cache.offer(id: id, b, full(b), mode: .hit, cost: 1, now: 100, resetsBefore: 0)
        cache.offer(id: Array("other".utf8), a, full(a), mode: .hit, cost: 1, now: 100, resetsBefore: 0)
        XCTAssertEqual(cache.count, 3)
        let before = cache.resets
        cache.reset(id: id)
        XCTAssertEqual(cache.count, 1)
        XCTAssertNil(cache.answer(id: id, a, mode: .hit, cost: 1, now: 200))
        XCTAssertNotNil(cache.answer(id: Array("other".utf8), a, mode: .hit, cost: 1, now: 200))
        // A denial Redis gave before the reset arrives after it: not kept.
        cache.offer(id: id, a, full(a), mode: .hit, cost: 1, now: 100, resetsBefore: before)
        XCTAssertNil(cache.answer(id: id, a, mode: .hit, cost: 1, now: 200))
        cache.offer(id: id, a, full(a), mode: .hit, cost: 1, now: 100, resetsBefore: cache.resets)
        XCTAssertNotNil(cache.answer(id: id, a, mode: .hit, cost: 1, now: 200))
    }

    func testLeastRecentlyUsedGoesFirstAndTheBoundHolds() {
        let lim = Limit(algorithm: .fixedWindow, limit: 1, periodMs: 1_000_000)
        let full = Decision(allowed: false, count: 1, limit: 1, remaining: 0, retryAfterMs: 900_000,
                            resetAfterMs: 900_000)
        var cache = DenyShard(capacity: 3)
        let ids = (0..<6).map { Array("id\($0)".utf8) }
        for i in 0..<3 { cache.offer(id: ids[i], lim, full, mode: .hit, cost: 1, now: 0, resetsBefore: 0) }
        XCTAssertNotNil(cache.answer(id: ids[0], lim, mode: .hit, cost: 1, now: 1))   // id0 is now the most recent
        cache.offer(id: ids[3], lim, full, mode: .hit, cost: 1, now: 0, resetsBefore: 0)   // drops id1
        XCTAssertEqual(cache.count, 3)
        XCTAssertNil(cache.answer(id: ids[1], lim, mode: .hit, cost: 1, now: 1))
        for i in [0, 2, 3] { XCTAssertNotNil(cache.answer(id: ids[i], lim, mode: .hit, cost: 1, now: 1), "\(i)") }
        var rng = Rng(state: 3)
        for _ in 0..<5000 {
            let i = Int(rng.int(0...5))
            if rng.int(0...3) == 0 { cache.reset(id: ids[i]) } else {
                cache.offer(id: ids[i], lim, full, mode: .hit, cost: 1, now: 0, resetsBefore: cache.resets)
            }
            XCTAssertLessThanOrEqual(cache.count, 3)
            _ = cache.answer(id: ids[Int(rng.int(0...5))], lim, mode: .hit, cost: 1, now: 1)
        }
        XCTAssertEqual(DenyShard(capacity: 0).count, 0)
        var off = DenyShard(capacity: 0)
        off.offer(id: ids[0], lim, full, mode: .hit, cost: 1, now: 0, resetsBefore: 0)
        XCTAssertEqual(off.count, 0)
    }

    func testConfigOption() throws {
        XCTAssertEqual(try Config.parse("redis://h?expiry_ms=1").get().denyCacheEntries, 0)
        XCTAssertEqual(try Config.parse("redis://h?expiry_ms=1&deny_cache=1000").get().denyCacheEntries, 1000)
        XCTAssertEqual(try Config.parse("redis://h?expiry_ms=1&deny_cache=0").get().denyCacheEntries, 0)
        XCTAssertEqual(try Config.parse("redis+cluster://h:7000?expiry_ms=1&deny_cache=5").get().denyCacheEntries, 5)
        XCTAssertEqual(try Config.parse("redis://h?expiry_ms=1&deny_cache=10000000").get().denyCacheEntries,
                       10_000_000)
        for v in ["-1", "10000001", "x", "", "1e3", "99999999999999999999"] {
            guard case let .failure(f) = Config.parse("redis://h?expiry_ms=1&deny_cache=\(v)") else {
                XCTFail("deny_cache=\(v) was accepted")
                continue
            }
            XCTAssertEqual(f.status, .invalid)
            XCTAssertTrue(f.message.contains("deny_cache"), f.message)
        }
    }
}
