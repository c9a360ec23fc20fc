// Rate-limit algorithms: parameters, their validation, and a pure model of each, with the very arithmetic of the
// Lua scripts (lua/lib/*.lua). Tests drive Redis and the model with the same times and costs and compare every
// decision; the model also decides in-process while Redis is unreachable (fallback=local).

public enum Algorithm: Int32, CaseIterable, Sendable {
    case fixedWindow = 0, slidingWindow = 1, tokenBucket = 2, leakyBucket = 3, gcra = 4, slidingCounter = 5
}

public struct Limit: Hashable, Sendable {
    public var algorithm: Algorithm
    public var limit: Int64
    public var periodMs: Int64
    public var burst: Int64
    /// Hits the limiter holds at once: burst, or limit when burst is 0. Windows use limit.
    public var capacity: Int64 {
        switch algorithm {
        case .fixedWindow, .slidingWindow, .slidingCounter: return limit
        default: return burst == 0 ? limit : burst
        }
    }

    public static let maxLimit: Int64 = 1_000_000_000
    public static let maxPeriodMs: Int64 = 315_360_000_000          // 10 years
    /// The buckets, GCRA and the sliding counter count in units of capacity * period_ms, which must stay exact in
    /// Lua's doubles; the two windows never multiply the two and take the whole ranges.
    public static let maxUnits: Int64 = 1 << 52
    public static let maxNowMs: Int64 = 1 << 47                     // about the year 6429

    public init(algorithm: Algorithm, limit: Int64, periodMs: Int64, burst: Int64 = 0) {
        self.algorithm = algorithm
        self.limit = limit
        self.periodMs = periodMs
        self.burst = burst
    }

    public static func validate(algorithm: Int32, limit: Int64, periodMs: Int64, burst: Int64,
                                periodName: String = "period_ms") -> Result<Limit, Failure> {
        func bad(_ m: String) -> Result<Limit, Failure> { .failure(Failure(.invalid, m)) }
        guard let a = Algorithm(rawValue: algorithm) else {
            return bad("unknown algorithm \(algorithm) (use HAMMER_FIXED_WINDOW ... HAMMER_SLIDING_COUNTER, 0 to 5)")
        }
        if limit < 1 || limit > maxLimit { return bad("limit must be from 1 to \(maxLimit)") }
        if periodMs < 1 || periodMs > maxPeriodMs { return bad("\(periodName) must be from 1 to \(maxPeriodMs)") }
        if burst < 0 || burst > maxLimit { return bad("burst must be from 0 (= limit) to \(maxLimit)") }
        let l = Limit(algorithm: a, limit: limit, periodMs: periodMs, burst: burst)
        if a == .fixedWindow || a == .slidingWindow { return .success(l) }
        let (units, o) = l.capacity.multipliedReportingOverflow(by: periodMs)
        if o || units > maxUnits { return bad("burst (or limit) times \(periodName) is too large (over 2^52)") }
        return .success(l)
    }

    public static func validateNow(_ now: Int64) -> Failure? {
        if now < 0 || now > maxNowMs { return Failure(.invalid, "now_ms must be from 0 to 2^47") }
        return nil
    }

    public static func validateCost(_ cost: Int64) -> Failure? {
        if cost < 0 { return Failure(.invalid, "cost must be >= 0") }
        if cost > maxLimit { return Failure(.invalid, "cost must be at most \(maxLimit)") }
        return nil
    }
}

public struct Decision: Equatable, Sendable, CustomStringConvertible {
    public var allowed: Bool
    public var count: Int64
    public var limit: Int64
    public var remaining: Int64
    public var retryAfterMs: Int64
    public var resetAfterMs: Int64
    public var degraded: Bool = false
    /// Of several limits (hammer_hit_all), the index of the one that decided; 0 for a single limit.
    public var decidedBy: Int = 0

    public init(allowed: Bool, count: Int64, limit: Int64, remaining: Int64, retryAfterMs: Int64, resetAfterMs: Int64,
                degraded: Bool = false, decidedBy: Int = 0) {
        self.allowed = allowed
        self.count = count
        self.limit = limit
        self.remaining = remaining
        self.retryAfterMs = retryAfterMs
        self.resetAfterMs = resetAfterMs
        self.degraded = degraded
        self.decidedBy = decidedBy
    }

    /// Hammer's check_rate, from the window's count after the hit: allowed while count <= limit; a denied hit waits
    /// for the next window (`leftMs`), or never when the increment alone is over the limit.
    public static func checkRate(count: Int64, limit: Int64, increment: Int64, leftMs: Int64) -> Decision {
        let ok = count <= limit
        // `count` is Redis's and may be anything another client wrote: remaining stays in 0 ... limit.
        return Decision(allowed: ok, count: count, limit: limit, remaining: ok ? limit - max(0, count) : 0,
                        retryAfterMs: ok ? 0 : (increment > limit ? -1 : leftMs), resetAfterMs: count > 0 ? leftMs : 0)
    }

    public var description: String {
        "\(allowed ? "allow" : "deny") count=\(count) rem=\(remaining) retry=\(retryAfterMs) reset=\(resetAfterMs)"
            + (decidedBy != 0 ? " by=\(decidedBy)" : "")
    }
}

public enum Mode: Hashable, Sendable {
    case hit      // consume `cost` if it fits; nothing changes when denied
    case peek     // would a unit hit pass now? nothing changes
    case check    // Hammer's check_rate: fixed window, the hit is counted even when denied

    public var letter: StaticString {
        switch self {
        case .hit: return "h"
        case .peek: return "p"
        case .check: return "c"
        }
    }
}

/// Exact floor and ceiling division for b > 0.
@inline(__always) public func idiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && a < 0) ? q - 1 : q
}
@inline(__always) public func cdiv(_ a: Int64, _ b: Int64) -> Int64 { -idiv(-a, b) }

extension LimiterModel {
    /// The fixed window's decision on Hammer's bucket of the window holding now, whose count is `cur`, as
    /// lua/lib/fixed_window.lua makes it: what to add to the bucket's count (nil: the bucket is left as it is; a
    /// check_rate of 0 still makes it) and the decision.
    public static func fixedWindow(cur: Int64, _ lim: Limit, mode: Mode, cost c: Int64,
                                   now: Int64) -> (add: Int64?, Decision) {
        let L = lim.limit, P = lim.periodMs
        let w = idiv(now, P)
        let left = (w + 1) * P - now
        var add: Int64 = 0
        // cur may be anything count_hit made it: compared without overflow.
        if mode == .check { add = c } else if mode == .hit && c > 0 && c <= L && cur <= L - c { add = c }
        let write = mode == .check || add > 0
        let count = write ? cur &+ add : cur
        if mode == .check {
            return (add, Decision.checkRate(count: count, limit: L, increment: c, leftMs: left))
        }
        let need = mode == .peek ? 1 : c
        let ok = mode == .peek ? cur < L : (add > 0 || c == 0)
        var rem: Int64 = 0, retry: Int64 = 0
        let reset: Int64 = count > 0 ? left : 0
        if ok { rem = max(0, L - count) } else if need > L { retry = -1 } else { retry = left }
        if mode == .peek && ok { rem = max(0, L - cur) }
        return (write ? add : nil,
                Decision(allowed: ok, count: count, limit: L, remaining: rem, retryAfterMs: retry, resetAfterMs: reset))
    }
}

/// The state of one id under one algorithm, and its decisions. Mirrors the Lua script line for line.
public struct LimiterModel: Sendable {
    // fixed window
    var windows: [Int64: Int64] = [:]
    // sliding window log: (time, cost) in time order
    var log = SlidingLog()
    // token bucket (free units) / leaky bucket (level units), and the time of the last change
    var u: Int64? = nil
    var t: Int64 = 0
    // GCRA theoretical arrival time: tat ms + f / limit
    var tat: Int64? = nil
    var f: Int64 = 0
    // sliding-window counter: the current window's number and the hits counted in it and in the window before
    var cw: Int64? = nil
    var ccur: Int64 = 0
    var cprev: Int64 = 0

    public init() {}

    public mutating func apply(_ lim: Limit, mode: Mode, cost c: Int64, now: Int64) -> Decision {
        let L = lim.limit, P = lim.periodMs, B = lim.capacity
        // Units of the buckets and GCRA (validated <= 2^52 for them); the windows may hold more and never use it.
        let C = B &* P
        func decide(_ D: Int64) -> (Bool, Int64, Int64) {
            if mode == .hit && c > B { return (false, D, -1) }
            let cu = mode == .peek ? P : c * P      // c <= B here, so c * P <= B * P <= 2^52
            if mode == .hit && c == 0 { return (true, D, 0) }
            if D + cu <= C { return mode == .peek ? (true, D, 0) : (true, D + cu, 0) }
            return (false, D, cdiv(D + cu - C, L))
        }
        func result(_ ok: Bool, _ D: Int64, _ retry: Int64) -> Decision {
            // D may exceed C: the state of a larger capacity (the id's limit was lowered).
            Decision(allowed: ok, count: cdiv(D, P), limit: L, remaining: ok ? max(0, idiv(C - D, P)) : 0,
                     retryAfterMs: retry, resetAfterMs: cdiv(D, L))
        }
        switch lim.algorithm {
        case .fixedWindow:
            let w = idiv(now, P)
            let cur = windows[w] ?? 0
            let (add, d) = LimiterModel.fixedWindow(cur: cur, lim, mode: mode, cost: c, now: now)
            if let add {
                if windows.count > 1 || windows[w] == nil { windows = windows.filter { $0.key >= w } }
                windows[w] = cur &+ add
            }
            return d

        case .slidingWindow:
            return SlidingLog.decide(&log, L: L, P: P, mode: mode, cost: c, now: now)

        case .tokenBucket, .leakyBucket:
            let token = lim.algorithm == .tokenBucket
            var D: Int64 = 0
            var t0 = now
            if let u {
                t0 = t
                let el = max(0, now - t)
                D = token ? C - min(C, max(0, u)) : min(C, max(0, u))
                if el >= cdiv(D, L) { D = 0 } else { D -= el * L }
            }
            let (ok, Da, retry) = decide(D)
            if ok && mode == .hit && Da != D {
                u = token ? C - Da : Da
                t = max(t0, now)
            }
            return result(ok, Da, retry)

        case .gcra:
            var D: Int64 = 0
            if let tat, tat >= now {
                let ahead = tat - now
                // Past capacity (the caller's clock stepped back): full, and the wait counts from the real TAT.
                if ahead > cdiv(C, L) + 1 || ahead * L + f > C {
                    var ok = false, retry: Int64 = -1
                    if mode == .hit && c == 0 { ok = true; retry = 0 } else if !(mode == .hit && c > B) {
                        let cu = mode == .peek ? P : c * P
                        retry = ahead + cdiv(f + cu - C, L)
                    }
                    return Decision(allowed: ok, count: B, limit: L, remaining: 0, retryAfterMs: retry,
                                    resetAfterMs: f > 0 ? ahead + 1 : ahead)
                }
                D = ahead * L + f
            }
            let (ok, Da, retry) = decide(D)
            if ok && mode == .hit && Da != D {
                let q = idiv(Da, L)
                tat = now + q
                f = Da - q * L
            }
            return result(ok, Da, retry)

        case .slidingCounter:
            // Two fixed windows, the previous one weighted by its overlap with the sliding window: in units of
            // 1/P hit, W = prev * (P - e) + cur * P, and a cost c passes when W + c * P <= L * P (exact: L * P <= 2^52
            // and both counts are held to L, so W <= 2^53).
            var at = now
            var cur: Int64 = 0, prev: Int64 = 0
            if let sw = cw {
                // The stored window is ahead (the caller's clock stepped back): decide at that window's start.
                if sw > idiv(now, P) { at = sw * P }
                let w = idiv(at, P)
                if sw == w { cur = ccur; prev = cprev } else if sw == w - 1 { prev = ccur }
            }
            cur = min(max(0, cur), L)
            prev = min(max(0, prev), L)
            let w = idiv(at, P), e = at - w * P
            let W = prev * (P - e) + cur * P
            let need = mode == .peek ? 1 : c
            var ok: Bool, Da = W, retry: Int64 = 0
            if mode == .hit && c > L { ok = false; retry = -1 } else if mode == .hit && c == 0 { ok = true } else if W <= (L - need) * P {
                ok = true
                if mode == .hit { Da = W + need * P; cw = w; ccur = cur + need; cprev = prev; cur += need }
            } else {
                ok = false
                retry = w * P + SlidingCounter.passOffset(L: L, P: P, cur: cur, prev: prev, e: e, need: need) - now
            }
            let reset: Int64 = cur > 0 ? (w + 2) * P - now : (prev > 0 ? (w + 1) * P - now : 0)
            return Decision(allowed: ok, count: cdiv(Da, P), limit: L, remaining: ok ? max(0, idiv(L * P - Da, P)) : 0,
                            retryAfterMs: retry, resetAfterMs: reset)
        }
    }
}

/// The sliding-window counter's wait (lua/lib/sliding_counter.lua has the same arithmetic).
public enum SlidingCounter {
    /// The least offset from the current window's start at which `need` unit hits pass, with no hit in between:
    /// within this window, where the previous window's weight falls as e grows (prev * (P - x) <= R * P), else in
    /// the next, where this window's count is the previous one and nothing is counted yet, else at the start of
    /// the one after (then nothing weighs). The weighted count never rises with time, so the first such x is the
    /// wait, and one ms less does not pass. 1 <= need <= L; every product is at most L * P.
    public static func passOffset(L: Int64, P: Int64, cur: Int64, prev: Int64, e: Int64, need: Int64) -> Int64 {
        let R = L - cur - need
        if R >= 0 {
            if prev == 0 { return e }
            let x = P - idiv(R * P, prev)
            if x < P { return max(x, e) }
        }
        if cur == 0 { return P }
        let x = P - idiv((L - need) * P, cur)
        return x < P ? P + max(x, 0) : 2 * P
    }
}
