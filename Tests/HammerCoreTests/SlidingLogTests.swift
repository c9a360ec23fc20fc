// The in-process sliding log (SlidingLog.swift) against the plain reading of lua/lib/sliding_window.lua it replaced
// (a whole log scanned and copied per decision): the same decisions on random runs, times out of order included.
@testable import HammerCore
import XCTest

/// The sliding window as the model had it before: every decision reads the whole log.
struct NaiveSlidingLog {
    var log: [(time: Int64, cost: Int64)] = []

    mutating func apply(L: Int64, P: Int64, mode: Mode, cost c: Int64, now: Int64) -> Decision {
        let edge = now - P
        let live = log.reduce(Int64(0)) { $1.time > edge ? $0 + $1.cost : $0 }
        let need = mode == .peek ? 1 : c
        var ok = false
        if mode == .hit && c == 0 { ok = true } else if need <= L && live + need <= L { ok = true }
        var total = live
        if ok && mode == .hit && c > 0 {
            log.removeAll { $0.time <= edge }
            log.append((now, c))
            total += c
        }
        var rem: Int64 = 0, retry: Int64 = 0
        let newest = log.map { $0.time }.max() ?? now
        let reset: Int64 = total > 0 ? newest + P - now : 0
        if ok { rem = max(0, L - total) } else if need > L { retry = -1 } else {
            let want = total + need - L
            var freed: Int64 = 0
            retry = -1
            for e in log.filter({ $0.time > edge }).sorted(by: { $0.time < $1.time }) {
                freed += e.cost
                if freed >= want { retry = e.time + P - now; break }
            }
        }
        return Decision(allowed: ok, count: total, limit: L, remaining: rem, retryAfterMs: retry, resetAfterMs: reset)
    }
}

final class SlidingLogTests: XCTestCase {
    func testSameDecisionsAsTheWholeLogReading() {
        for seed in UInt64(1)...60 {
            var rng = SplitMix64(seed: seed)
            let L = Int64.random(in: 1...40, using: &rng)
            let P = [10, 100, 1000][Int.random(in: 0...2, using: &rng)] as Int64
            var fast = SlidingLog(), naive = NaiveSlidingLog()
            var now: Int64 = 1_000_000
            for step in 0..<2000 {
                // Mostly forward; sometimes back (another thread's clock, a caller's time), sometimes far ahead.
                switch Int.random(in: 0...9, using: &rng) {
                case 0: now -= Int64.random(in: 0...P, using: &rng)
                case 1: now += Int64.random(in: 0...(3 * P), using: &rng)
                default: now += Int64.random(in: 0...(P / 5), using: &rng)
                }
                let peek = Int.random(in: 0...5, using: &rng) == 0
                let c = Int.random(in: 0...9, using: &rng) == 0 ? Int64.random(in: 0...(L + 2), using: &rng) : 1
                let mode: Mode = peek ? .peek : .hit
                let want = naive.apply(L: L, P: P, mode: mode, cost: c, now: now)
                let got = SlidingLog.decide(&fast, L: L, P: P, mode: mode, cost: c, now: now)
                XCTAssertEqual(got, want, "seed \(seed) step \(step): L \(L) P \(P) cost \(c) peek \(peek) now \(now)")
                if got != want { return }
                XCTAssertEqual(fast.total, naive.log.reduce(0) { $0 + $1.cost }, "seed \(seed) step \(step)")
            }
        }
    }

    func testTrimmingGivesTheMemoryBack() {
        var log = SlidingLog()
        for t in Int64(0)..<10_000 { log.insert(time: t, cost: 1) }
        XCTAssertEqual(log.count, 10_000)
        XCTAssertEqual(log.live(after: 4_999), 5_000)
        XCTAssertEqual(log.timeFreeing(10, after: 4_999), 5_009)
        log.trim(through: 9_990)
        XCTAssertEqual(log.entries.map { $0.time }, Array(9_991..<10_000))
        XCTAssertEqual(log.total, 9)
        // Same-time hits join one entry; an older hit goes in its place.
        log.insert(time: 9_999, cost: 4)
        log.insert(time: 9_995, cost: 2)
        XCTAssertEqual(log.count, 9)
        XCTAssertEqual(log.entries.first { $0.time == 9_999 }?.cost, 5)
        XCTAssertEqual(log.entries.first { $0.time == 9_995 }?.cost, 3)
        XCTAssertEqual(log.total, 15)
        log.trim(through: 20_000)
        XCTAssertTrue(log.isEmpty)
        XCTAssertNil(log.newest)
        XCTAssertNil(log.timeFreeing(1, after: 0))
    }
}
