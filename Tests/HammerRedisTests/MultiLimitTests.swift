// Several limits, one atomic decision (hammer_hit_all, hammer_peek_all, hammer_hit_all_many) against real Redis:
// at every random step the combined decision allows exactly when every limit's model alone would, all are charged
// or none, each limit's state is its single-call state, and the decision's fields are the models' combination.
import CHammer
@testable import Hammer
import HammerCore
import XCTest

class MultiLimitTests: XCTestCase {
    var server: RedisProcess!
    var h: OpaquePointer?

    override func setUp() {
        server = try! RedisProcess()
        XCTAssertEqual(hammer_open(server.url(), &h), 0, String(cString: hammer_last_error()))
    }

    override func tearDown() {
        hammer_close(h)
        server = nil
    }

    static func c(_ l: Limit) -> hammer_limit {
        hammer_limit(algorithm: l.algorithm.rawValue, limit: l.limit, period_ms: l.periodMs, burst: l.burst)
    }

    static func decision(_ o: hammer_decision) -> Decision {
        Decision(allowed: o.allowed == 1, count: o.count, limit: o.limit, remaining: o.remaining,
                 retryAfterMs: o.retry_after_ms, resetAfterMs: o.reset_after_ms, decidedBy: Int(o.decided_by))
    }

    func all(_ id: String, _ lims: [Limit], cost: Int64, now: Int64, peek: Bool,
             file: StaticString = #filePath, line: UInt = #line) -> Decision {
        let cl = lims.map(Self.c)
        var out = hammer_decision()
        let st = peek ? hammer_peek_all_at(h, id, cl, cl.count, now, &out)
                      : hammer_hit_all_at(h, id, cl, cl.count, cost, now, &out)
        XCTAssertEqual(st, 0, String(cString: hammer_last_error()), file: file, line: line)
        return Self.decision(out)
    }

    func one(_ id: String, _ l: Limit, cost: Int64, now: Int64, peek: Bool) -> Decision {
        var cl = Self.c(l)
        var out = hammer_decision()
        let st = peek ? hammer_peek_at(h, id, &cl, now, &out) : hammer_hit_at(h, id, &cl, cost, now, &out)
        XCTAssertEqual(st, 0, String(cString: hammer_last_error()))
        return Self.decision(out)
    }

    /// Limits of one id: every algorithm, the fixed window and the counter at two periods; then a second sliding
    /// window, token bucket, leaky bucket and GCRA, a second counter of 1 s and fixed window of 1 min (a call with
    /// two of one algorithm, of one period for those two, gives each a state of its own). No two fixed windows of
    /// different periods meet in a bucket.
    static func pool(_ rng: inout SplitMix) -> [Limit] {
        func lim(_ a: Algorithm, _ p: Int64) -> Limit {
            Limit(algorithm: a, limit: rng.int(1...8), periodMs: p, burst: rng.int(0...1) == 0 ? 0 : rng.int(1...10))
        }
        return [lim(.fixedWindow, 1000), lim(.fixedWindow, 60_000), lim(.slidingWindow, 1000), lim(.tokenBucket, 1000),
                lim(.leakyBucket, 5000), lim(.gcra, 2000), lim(.slidingCounter, 1000), lim(.slidingCounter, 10_000),
                lim(.slidingWindow, 10_000), lim(.tokenBucket, 3000), lim(.leakyBucket, 1000), lim(.gcra, 500),
                lim(.slidingCounter, 1000), lim(.fixedWindow, 60_000)]
    }

    /// The model of the id's state of a limit's algorithm, as Redis keys it (MultiLimit.State at a time where no
    /// fixed windows meet): the state hammer_hit uses.
    static func stateKey(_ l: Limit) -> String { "\(l.algorithm)/\(l.algorithm == .fixedWindow || l.algorithm == .slidingCounter ? l.periodMs : 0)" }

    /// The model of a limit's state in a call of `lims` (written here from docs/c-api.md's rule, not MultiLimit's
    /// code): its own, named by its parameters, when a different limit of the call would share its state; else
    /// the id's state of its algorithm.
    static func stateKey(_ l: Limit, in lims: [Limit]) -> String {
        func params(_ x: Limit) -> [Int64] { [Int64(x.algorithm.rawValue), x.limit, x.periodMs, x.capacity] }
        let shared = lims.contains { params($0) != params(l) && stateKey($0) == stateKey(l) }
        return shared ? "own \(params(l))" : stateKey(l)
    }

    func testCombinedDecisionIsEveryModelAllowing() {
        for seed in UInt64(1)...12 {
            var rng = SplitMix(state: seed &* 104_729)
            let pool = Self.pool(&rng)
            let id = "all:\(seed)"
            var models: [String: LimiterModel] = [:]
            var now = rng.int(1_600_000_000_000...1_800_000_000_000)
            var retryCheck: (lims: [Limit], cost: Int64, at: Int64)? = nil
            var allowedSteps = 0, deniedSteps = 0, ownSteps = 0
            for step in 0..<150 {
                var lims: [Limit]
                var cost: Int64
                var peek = false
                if let rc = retryCheck {
                    (lims, cost, now) = (rc.lims, rc.cost, rc.at)
                } else {
                    lims = (0..<Int(rng.int(1...4))).map { _ in pool[Int(rng.int(0...Int64(pool.count - 1)))] }
                    switch rng.int(0...9) {
                    case 0...5: now += rng.int(0...300)
                    case 6...8: now += rng.int(0...3000)
                    default: now += rng.int(0...30_000)
                    }
                    switch rng.int(0...9) {
                    case 0: cost = 0
                    case 1: cost = rng.int(1...12)
                    case 2: cost = 1; peek = true
                    default: cost = 1
                    }
                }
                let what = "seed \(seed) step \(step): \(lims) cost \(cost) peek \(peek) now \(now)"
                // Every limit alone, on a copy of its model: does it pass?
                var each: [Bool] = []
                for l in lims {
                    var m = models[Self.stateKey(l, in: lims)] ?? LimiterModel()
                    each.append(m.apply(l, mode: peek ? .peek : .hit, cost: cost, now: now).allowed)
                }
                let set = MultiLimit.fold(lims)
                var work = models
                var want = MultiLimit.decide(set.unique, mode: peek ? .peek : .hit, cost: cost) { i, m, c in
                    let k = Self.stateKey(set.unique[i], in: lims)
                    var model = work[k] ?? LimiterModel()
                    defer { work[k] = model }
                    return model.apply(set.unique[i], mode: m, cost: c, now: now)
                }
                want.decidedBy = set.firstIndex[want.decidedBy]
                let got = all(id, lims, cost: cost, now: now, peek: peek)
                XCTAssertEqual(got.allowed, each.allSatisfy { $0 }, "allowed is every limit allowing: \(what)")
                XCTAssertEqual(got, want, what)
                if got != want { break }
                if retryCheck != nil {
                    XCTAssertTrue(got.allowed, "waiting retry_after_ms did not pass: \(what)")
                    retryCheck = nil
                }
                // All charged or none: the models change only when allowed (work holds the hits then).
                if got.allowed && !peek {
                    models = work
                    allowedSteps += 1
                    if lims.contains(where: { Self.stateKey($0, in: lims).hasPrefix("own") }) { ownSteps += 1 }
                } else {
                    // (work may hold fresh models of limits never charged: the same as none.)
                    let fresh = "\(LimiterModel())"
                    XCTAssertEqual(work.mapValues { "\($0)" }.filter { $0.value != fresh },
                                   models.mapValues { "\($0)" }.filter { $0.value != fresh }, "nothing charged: \(what)")
                    if !got.allowed { deniedSteps += 1 }
                }
                // Each limit's state in Redis is its single-call state: a lone peek agrees with its model.
                if step % 5 == 0 {
                    for l in pool {
                        var m = models[Self.stateKey(l)] ?? LimiterModel()
                        XCTAssertEqual(one(id, l, cost: 1, now: now, peek: true),
                                       m.apply(l, mode: .peek, cost: 1, now: now), "lone peek of \(l): \(what)")
                    }
                }
                if !got.allowed && got.retryAfterMs > 0 {
                    // Minimal: one ms earlier some limit still denies (asked of the models).
                    let early = lims.contains { l in
                        var m = models[Self.stateKey(l, in: lims)] ?? LimiterModel()
                        return !m.apply(l, mode: peek ? .peek : .hit, cost: cost, now: now + got.retryAfterMs - 1).allowed
                    }
                    XCTAssertTrue(early, "retry_after_ms is not minimal: \(what)")
                    if !peek && rng.int(0...2) == 0 { retryCheck = (lims, cost, now + got.retryAfterMs) }
                }
            }
            XCTAssertGreaterThan(allowedSteps, 10, "seed \(seed)")
            XCTAssertGreaterThan(deniedSteps, 5, "seed \(seed)")
            XCTAssertGreaterThan(ownSteps, 2, "seed \(seed): allowed calls with states of their own")
        }
    }

    func testTheSameLimitAloneAndAmongOthersIsOneState() {
        let gcra = Limit(algorithm: .gcra, limit: 3, periodMs: 60_000)
        let day = Limit(algorithm: .slidingCounter, limit: 100, periodMs: 86_400_000)
        let now: Int64 = 1_700_000_000_000
        XCTAssertTrue(one("same", gcra, cost: 2, now: now, peek: false).allowed)
        let d = all("same", [day, gcra], cost: 1, now: now, peek: false)
        XCTAssertTrue(d.allowed)
        XCTAssertEqual(d.remaining, 0)
        XCTAssertEqual(d.decidedBy, 1)
        XCTAssertEqual(d.limit, 3)
        let denied = all("same", [day, gcra], cost: 1, now: now, peek: false)
        XCTAssertFalse(denied.allowed)
        XCTAssertEqual(denied.decidedBy, 1)
        XCTAssertEqual(denied.retryAfterMs, 20_000)
        XCTAssertFalse(one("same", gcra, cost: 1, now: now, peek: false).allowed, "the lone call sees the others")
        XCTAssertEqual(one("same", day, cost: 1, now: now, peek: true).count, 1, "charged once, denied call not at all")
    }

    func testOneLimitIsHammerHit() {
        var rng = SplitMix(state: 99)
        for a in Algorithm.allCases {
            let l = Limit(algorithm: a, limit: 4, periodMs: 1000, burst: a == .tokenBucket ? 6 : 0)
            var now: Int64 = 1_700_000_000_000
            for step in 0..<60 {
                now += rng.int(0...400)
                let cost = rng.int(0...5), peek = rng.int(0...5) == 0
                let multi = all("one:m:\(a)", [l], cost: cost, now: now, peek: peek)
                let single = one("one:s:\(a)", l, cost: cost, now: now, peek: peek)
                XCTAssertEqual(multi, single, "\(a) step \(step) cost \(cost) peek \(peek)")
            }
        }
    }

    func testRepeatsFoldAndFixedWindowsOfClosePeriodsInOneBucketAreRefused() {
        let now: Int64 = 1_700_000_000_000
        let tb = Limit(algorithm: .tokenBucket, limit: 2, periodMs: 1000)
        let fw = Limit(algorithm: .fixedWindow, limit: 5, periodMs: 60_000)
        // burst 2 is burst 0 (= limit), and a window's burst means nothing: the same limits.
        let tbSame = Limit(algorithm: .tokenBucket, limit: 2, periodMs: 1000, burst: 2)
        let fwSame = Limit(algorithm: .fixedWindow, limit: 5, periodMs: 60_000, burst: 9)
        let d = all("fold", [fw, tb, tbSame, fwSame], cost: 1, now: now, peek: false)
        XCTAssertTrue(d.allowed)
        XCTAssertEqual(d.decidedBy, 1, "the first of the repeated token bucket")
        XCTAssertEqual(one("fold", tb, cost: 1, now: now, peek: true).remaining, 1, "charged once, on its lone state")

        func refused(_ lims: [Limit], _ words: [String], now: Int64? = 1_700_000_000_000, h: OpaquePointer? = nil,
                     line: UInt = #line) {
            let cl = lims.map(Self.c)
            var out = hammer_decision()
            out.allowed = 7
            let st = now.map { hammer_hit_all_at(h ?? self.h, "refused", cl, cl.count, 1, $0, &out) }
                ?? hammer_hit_all(h ?? self.h, "refused", cl, cl.count, 1, &out)
            XCTAssertEqual(st, 1, String(cString: hammer_last_error()), line: line)
            XCTAssertEqual(out.allowed, 0, "out cleared", line: line)
            let m = String(cString: hammer_last_error())
            for w in words { XCTAssertTrue(m.contains(w), "\(m) names \(w)", line: line) }
        }
        // Two fixed windows of one period: buckets of their own, each its count.
        let fw6 = Limit(algorithm: .fixedWindow, limit: 6, periodMs: 60_000)
        let fwa = all("fw2", [fw6, fw], cost: 5, now: now, peek: false)
        XCTAssertTrue(fwa.allowed)
        XCTAssertEqual(fwa.remaining, 0)
        XCTAssertEqual(fwa.decidedBy, 1)
        let fwd = all("fw2", [fw6, fw], cost: 1, now: now + 1, peek: false)
        XCTAssertFalse(fwd.allowed)
        XCTAssertEqual(fwd.decidedBy, 1)
        XCTAssertEqual(fwd.retryAfterMs, 60_000 - (now + 1) % 60_000)
        XCTAssertEqual(one("fw2", fw, cost: 1, now: now, peek: true).remaining, 5, "Hammer's bucket untouched")
        // Two fixed windows of different periods in one bucket number at this time.
        let tenYears = Limit.maxPeriodMs
        let a = Limit(algorithm: .fixedWindow, limit: 5, periodMs: tenYears)
        let b = Limit(algorithm: .fixedWindow, limit: 5, periodMs: tenYears - 1000)
        refused([a, b], ["lims[0]", "lims[1]"])
        // With Redis's clock the bucket is known in the script only: it refuses them there.
        var hr: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&clock=redis"), &hr), 0)
        refused([a, b], ["fixed windows", "one bucket"], now: nil, h: hr)
        var ok = hammer_decision()
        let pair = [Self.c(a), Self.c(Limit(algorithm: .fixedWindow, limit: 5, periodMs: 60_000))]
        XCTAssertEqual(hammer_hit_all(hr, "redis-clock", pair, 2, 1, &ok), 0, String(cString: hammer_last_error()))
        XCTAssertEqual(ok.allowed, 1)
        // Two fixed windows of one period on Redis's clock: the script completes their own buckets' names.
        let same = [Self.c(Limit(algorithm: .fixedWindow, limit: 1, periodMs: tenYears)), Self.c(a)]
        XCTAssertEqual(hammer_hit_all(hr, "redis-clock-2", same, 2, 1, &ok), 0, String(cString: hammer_last_error()))
        XCTAssertEqual(ok.allowed, 1)
        XCTAssertEqual(hammer_hit_all(hr, "redis-clock-2", same, 2, 1, &ok), 0, String(cString: hammer_last_error()))
        XCTAssertEqual(ok.allowed, 0)
        XCTAssertEqual(ok.decided_by, 0)
        XCTAssertEqual(one("redis-clock-2", a, cost: 1, now: now, peek: true).remaining, 5, "Hammer's bucket untouched")
        let w = Int64(Date().timeIntervalSince1970 * 1000) / tenYears
        XCTAssertEqual(keysOf("redis-clock-2"), ["Hammer:Redis:redis-clock-2:fw.1.\(tenYears).1.\(w)",
                                                 "Hammer:Redis:redis-clock-2:fw.5.\(tenYears).5.\(w)",
                                                 "Hammer:Redis:redis-clock-2:index"])
        var deleted: Int64 = 0
        XCTAssertEqual(hammer_delete_buckets(hr, "redis-clock-2", &deleted), 0)
        XCTAssertEqual(deleted, 2)
        hammer_close(hr)

        // Arguments.
        var out = hammer_decision()
        let cl = [Self.c(tb)]
        XCTAssertEqual(hammer_hit_all_at(h, "refused", cl, 0, 1, now, &out), 1)
        XCTAssertTrue(String(cString: hammer_last_error()).contains("HAMMER_MAX_LIMITS"))
        let many = [hammer_limit](repeating: Self.c(tb), count: 17)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", many, 17, 1, now, &out), 1)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", nil, 1, 1, now, &out), 1)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", cl, 1, -1, now, &out), 1)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", cl, 1, 1, -5, &out), 1)
        XCTAssertEqual(hammer_hit_all_at(h, nil, cl, 1, 1, now, &out), 1)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", cl, 1, 1, now, nil), 1)
        XCTAssertEqual(hammer_hit_all_at(h, "refused", cl, Int(bitPattern: UInt(UInt64.max)), 1, now, &out), 1)
        var bad = [Self.c(tb), Self.c(tb)]
        bad[1].algorithm = 9
        XCTAssertEqual(hammer_peek_all_at(h, "refused", bad, 2, now, &out), 1)
        XCTAssertTrue(String(cString: hammer_last_error()).contains("lims[1]"), String(cString: hammer_last_error()))
        bad[1] = Self.c(tb)
        bad[1].reserved.0 = 1
        XCTAssertEqual(hammer_hit_all(h, "refused", bad, 2, 1, &out), 1)
        var n: Int64 = -1
        XCTAssertEqual(hammer_delete_buckets(h, "refused", &n), 0)
        XCTAssertEqual(n, 0, "no refused call wrote anything")
    }

    /// The keys of exactly `id` (its key base, then a suffix without ':'), sorted.
    func keysOf(_ id: String, prefix: String = "Hammer:Redis:") -> [String] {
        let base = prefix + id + ":"
        return server.cli(["--scan", "--pattern", "*"]).split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix(base) && !$0.dropFirst(base.count).contains(":") }.sorted()
    }

    func testRepeatedAlgorithmsKeepStatesOfTheirOwn() {
        let t0: Int64 = 1_700_000_000_000
        // "2/second;3/minute" as sliding windows.
        let sec = Limit(algorithm: .slidingWindow, limit: 2, periodMs: 1000)
        let min = Limit(algorithm: .slidingWindow, limit: 3, periodMs: 60_000)
        let steps: [(Int64, Bool, Int, Int64)] = [(0, true, 0, 0), (100, true, 0, 0), (200, false, 0, 800),
                                                   (1100, true, 1, 0), (2500, false, 1, 57_500)]
        for (dt, allowed, by, retry) in steps {
            let d = all("own", [sec, min], cost: 1, now: t0 + dt, peek: false)
            XCTAssertEqual(d.allowed, allowed, "at +\(dt)")
            XCTAssertEqual(d.decidedBy, by, "at +\(dt)")
            XCTAssertEqual(d.retryAfterMs, retry, "at +\(dt)")
        }
        // In the other order: the same states (the rule is on the set).
        XCTAssertEqual(all("own", [min, sec], cost: 1, now: t0 + 2500, peek: true).decidedBy, 0)
        XCTAssertEqual(keysOf("own"), ["Hammer:Redis:own:index", "Hammer:Redis:own:sw.2.1000.2",
                                       "Hammer:Redis:own:sw.3.60000.3", "Hammer:Redis:own:swm.2.1000.2",
                                       "Hammer:Redis:own:swm.3.60000.3"])
        XCTAssertEqual(server.cli(["ZRANGE", "Hammer:Redis:own:index", "0", "-1"]).split(separator: "\n").sorted(),
                       ["sw.2.1000.2", "sw.3.60000.3", "swm.2.1000.2", "swm.3.60000.3"])
        // Each member scored with its key's expiry (Redis's clock): a score in the future, within the key's TTL.
        let score = Int64(server.cli(["ZSCORE", "Hammer:Redis:own:index", "sw.3.60000.3"])
            .trimmingCharacters(in: .whitespacesAndNewlines))!
        let nowRedis = Int64(Date().timeIntervalSince1970 * 1000)
        XCTAssertTrue(score > nowRedis && score <= nowRedis + 62_600, "\(score) vs \(nowRedis)")
        // The lone limit has the id's sliding window, which the call did not touch.
        XCTAssertEqual(one("own", sec, cost: 1, now: t0 + 200, peek: false).remaining, 1)

        // A burst bucket and a daily quota, both token buckets: the burst denies, the quota is not charged by it.
        let burst = Limit(algorithm: .tokenBucket, limit: 10, periodMs: 1000, burst: 20)
        let day = Limit(algorithm: .tokenBucket, limit: 1000, periodMs: 86_400_000)
        let a = all("tb2", [burst, day], cost: 20, now: t0, peek: false)
        XCTAssertTrue(a.allowed)
        XCTAssertEqual(a.decidedBy, 0)
        XCTAssertEqual(a.remaining, 0)
        let b = all("tb2", [burst, day], cost: 1, now: t0, peek: false)
        XCTAssertFalse(b.allowed)
        XCTAssertEqual(b.decidedBy, 0)
        XCTAssertEqual(b.retryAfterMs, 100)
        let c = all("tb2", [day, burst], cost: 1, now: t0 + 100, peek: false)
        XCTAssertTrue(c.allowed)
        XCTAssertEqual(c.decidedBy, 1)
        let p = all("tb2", [day, burst], cost: 1, now: t0 + 100, peek: true)
        XCTAssertFalse(p.allowed)
        XCTAssertEqual(p.decidedBy, 1)
        XCTAssertEqual(p.count, 20, "the burst's count")
        // The quota alone: the id's token bucket, which neither call touched.
        XCTAssertEqual(one("tb2", day, cost: 0, now: t0 + 100, peek: false).count, 0)
        XCTAssertEqual(keysOf("tb2"), ["Hammer:Redis:tb2:index", "Hammer:Redis:tb2:tb.10.1000.20",
                                       "Hammer:Redis:tb2:tb.1000.86400000.1000"])
        // Two sliding counters of one period, GCRAs and leaky buckets: states of their own.
        let s1 = Limit(algorithm: .slidingCounter, limit: 2, periodMs: 1000)
        let s2 = Limit(algorithm: .slidingCounter, limit: 5, periodMs: 1000, burst: 3)
        let g1 = Limit(algorithm: .gcra, limit: 2, periodMs: 1000), g2 = Limit(algorithm: .gcra, limit: 9, periodMs: 9000)
        let l1 = Limit(algorithm: .leakyBucket, limit: 2, periodMs: 1000), l2 = Limit(algorithm: .leakyBucket, limit: 3,
                                                                                      periodMs: 1000)
        XCTAssertTrue(all("mix", [s1, s2, g1, g2, l1, l2], cost: 1, now: t0, peek: false).allowed)
        XCTAssertEqual(keysOf("mix"), ["Hammer:Redis:mix:gcra.2.1000.2", "Hammer:Redis:mix:gcra.9.9000.9",
                                       "Hammer:Redis:mix:index", "Hammer:Redis:mix:lb.2.1000.2",
                                       "Hammer:Redis:mix:lb.3.1000.3", "Hammer:Redis:mix:swc.2.1000.2",
                                       "Hammer:Redis:mix:swc.5.1000.5"])
        // Two fixed windows of one period: buckets of their own, fw.<limit>.<period>.<capacity>.<window>, indexed.
        let f1 = Limit(algorithm: .fixedWindow, limit: 2, periodMs: 1000)
        let f2 = Limit(algorithm: .fixedWindow, limit: 4, periodMs: 1000)
        XCTAssertTrue(all("fws", [f1, f2], cost: 1, now: t0, peek: false).allowed)
        let w = t0 / 1000
        XCTAssertEqual(keysOf("fws"), ["Hammer:Redis:fws:fw.2.1000.2.\(w)", "Hammer:Redis:fws:fw.4.1000.4.\(w)",
                                       "Hammer:Redis:fws:index"])
        XCTAssertEqual(server.cli(["ZRANGE", "Hammer:Redis:fws:index", "0", "-1"]).split(separator: "\n").sorted(),
                       ["fw.2.1000.2.\(w)", "fw.4.1000.4.\(w)"])
        // A peek or a denied call writes nothing, its own states included.
        let before = keysOf("mix")
        XCTAssertFalse(all("mix", [s1, s2, g1, g2, l1, l2, Limit(algorithm: .tokenBucket, limit: 1, periodMs: 1000),
                                   Limit(algorithm: .tokenBucket, limit: 1, periodMs: 2000)], cost: 3, now: t0,
                           peek: false).allowed)
        XCTAssertEqual(keysOf("mix"), before)
    }

    func testDeleteBucketsDeletesOwnStatesOfExactlyThatId() {
        let t0: Int64 = 1_700_000_000_000
        let sw1 = Limit(algorithm: .slidingWindow, limit: 5, periodMs: 1000)
        let sw2 = Limit(algorithm: .slidingWindow, limit: 50, periodMs: 60_000)
        let tb1 = Limit(algorithm: .tokenBucket, limit: 5, periodMs: 1000, burst: 7)
        let tb2 = Limit(algorithm: .tokenBucket, limit: 500, periodMs: 86_400_000)
        let c1 = Limit(algorithm: .slidingCounter, limit: 5, periodMs: 1000)
        let c2 = Limit(algorithm: .slidingCounter, limit: 6, periodMs: 1000)
        let fw = Limit(algorithm: .fixedWindow, limit: 5, periodMs: 60_000)
        // The id, ids that begin with it, and an id named like one of its keys.
        let ids = ["del", "del2", "del:x", "del:tb.5.1000.7", "del:sw.5.1000.5"]
        for id in ids {
            XCTAssertTrue(all(id, [sw1, sw2, fw], cost: 1, now: t0, peek: false).allowed)
            XCTAssertTrue(all(id, [tb1, tb2, c1, c2], cost: 1, now: t0, peek: false).allowed)
            XCTAssertTrue(one(id, sw1, cost: 1, now: t0, peek: false).allowed)
            XCTAssertTrue(all(id, [c1, sw1], cost: 1, now: t0, peek: false).allowed)
            XCTAssertTrue(all(id, [fw, Limit(algorithm: .fixedWindow, limit: 9, periodMs: 60_000)], cost: 1, now: t0,
                              peek: false).allowed)
        }
        var bucket: Int64 = 0
        XCTAssertEqual(hammer_count_hit(h, "del:x", 1, t0, 1, &bucket), 0)
        // Members another client wrote: none may name a key that is not the id's.
        _ = server.cli(["ZADD", "Hammer:Redis:del:index", "99999999999999", "x:1", "99999999999999", "tb.5.1000.7:sw",
                        "99999999999999", "tb.5.1000", "99999999999999", "zz.1.2.3", "99999999999999",
                        "tb.1.2.3.4"])
        let mine = keysOf("del")
        // The fixed window's bucket and the index, sw/swm (the lone hit), swc (the counter with a sliding window:
        // alone of its period there), and the own states: 2 x 2 sliding windows, 2 token buckets, 2 counters, 2
        // fixed windows' buckets.
        XCTAssertEqual(mine.count, 2 + 2 + 1 + 4 + 2 + 2 + 2, "\(mine)")
        let others = ids.dropFirst().map { keysOf($0) }
        var n: Int64 = -1
        XCTAssertEqual(hammer_delete_buckets(h, "del", &n), 0, String(cString: hammer_last_error()))
        XCTAssertEqual(n, Int64(mine.count - 1), "every key of the id counted but the index (as ever)")
        XCTAssertEqual(keysOf("del"), [], "no key of the id left")
        XCTAssertEqual(ids.dropFirst().map { keysOf($0) }, others, "nothing of another id")
        XCTAssertTrue(keysOf("del:x").contains("Hammer:Redis:del:x:1"))
        // Afresh: the call allows as on a new id.
        XCTAssertEqual(all("del", [sw1, sw2], cost: 1, now: t0, peek: false).remaining, 4)
    }

    func testBatchEqualsSingleCallsAndFailsRequestsAlone() {
        var rng = SplitMix(state: 5)
        let pool = Self.pool(&rng)
        let sets: [[Limit]] = [[pool[0], pool[3]], [pool[6], pool[7], pool[2]], [pool[4]], [pool[1], pool[5], pool[1]]]
        let cl = sets.map { $0.map(Self.c) }
        let ptrs = cl.map { c -> UnsafeMutablePointer<hammer_limit> in
            let p = UnsafeMutablePointer<hammer_limit>.allocate(capacity: c.count)
            p.initialize(from: c, count: c.count)
            return p
        }
        defer { ptrs.forEach { $0.deallocate() } }
        let ids = (0..<3).map { strdup("mb:\($0)")! }
        defer { ids.forEach { free($0) } }
        var reqs: [hammer_multi_request] = []
        var now: Int64 = 1_700_000_000_000
        for _ in 0..<60 {
            now += rng.int(0...700)
            let s = Int(rng.int(0...3))
            reqs.append(hammer_multi_request(id: ids[Int(rng.int(0...2))], lims: ptrs[s], n_lims: sets[s].count,
                                             cost: rng.int(0...3), now_ms: now))
        }
        reqs[7].n_lims = 0                                  // fails alone
        reqs[9].reserved.1 = 3                              // fails alone
        var out = [hammer_decision](repeating: hammer_decision(), count: reqs.count)
        var st = [Int32](repeating: -1, count: reqs.count)
        XCTAssertEqual(hammer_hit_all_many(h, reqs, reqs.count, &out, &st), 1)
        XCTAssertTrue(String(cString: hammer_last_error()).hasPrefix("request 7: "))
        var mixed = (0, 0)
        for (i, r) in reqs.enumerated() {
            if i == 7 || i == 9 {
                XCTAssertEqual(st[i], 1, "request \(i)")
                continue
            }
            XCTAssertEqual(st[i], 0, "request \(i)")
            let s = ptrs.firstIndex(of: UnsafeMutablePointer(mutating: r.lims!))!
            let id = "single:" + String(cString: r.id!)
            let want = all(id, sets[s], cost: r.cost, now: r.now_ms, peek: false)
            XCTAssertEqual(Self.decision(out[i]), want, "request \(i)")
            if want.allowed { mixed.0 += 1 } else { mixed.1 += 1 }
        }
        XCTAssertTrue(mixed.0 > 5 && mixed.1 > 5, "\(mixed)")
        // One statistics decision per request or call.
        var s = hammer_stats_t.sized()
        XCTAssertEqual(hammer_stats(h, &s), 0)
        XCTAssertEqual(s.calls, UInt64(2 * reqs.count - 2))
        XCTAssertEqual(s.allowed + s.denied, UInt64(2 * reqs.count - 4))
    }

    func testLocalFallbackCombinesTheModelsWhileRedisIsDown() {
        var hl: OpaquePointer?
        XCTAssertEqual(hammer_open(server.url("expiry_ms=60000&fallback=local&timeout_ms=200&connect_timeout_ms=200"),
                                   &hl), 0)
        defer { hammer_close(hl) }
        server.stop()
        let lims = [Limit(algorithm: .gcra, limit: 2, periodMs: 60_000), Limit(algorithm: .fixedWindow, limit: 3,
                                                                                periodMs: 60_000)]
        let cl = lims.map(Self.c)
        let now: Int64 = 1_700_000_000_000
        var got: [Decision] = []
        for _ in 0..<4 {
            var out = hammer_decision()
            XCTAssertEqual(hammer_hit_all_at(hl, "down", cl, 2, 1, now, &out), 0, String(cString: hammer_last_error()))
            XCTAssertEqual(out.degraded, 1)
            got.append(Self.decision(out))
        }
        var models = [LimiterModel(), LimiterModel()]
        let want = (0..<4).map { _ in
            MultiLimit.decide(lims, mode: .hit, cost: 1) { i, m, c in models[i].apply(lims[i], mode: m, cost: c, now: now) }
        }
        XCTAssertEqual(got.map { $0.allowed }, [true, true, false, false])
        for (g, w) in zip(got, want) {
            var g = g
            g.degraded = false
            XCTAssertEqual(g, w)
        }
        // The lone call shares the fallback's state too.
        var one = Self.c(lims[1])
        var out = hammer_decision()
        XCTAssertEqual(hammer_peek_at(hl, "down", &one, now, &out), 0)
        XCTAssertEqual(out.remaining, 1)
    }
}
