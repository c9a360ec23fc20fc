// Rate-limit decisions: one EVALSHA of Scripts.limiter per call.
import CHiredis
import HammerCore

struct Inspection {
    var count: Int64
    var created: Int64
    var updated: Int64
    var msToNext: Int64
}

extension Handle {
    /// The time the script should use: the caller's, the library's clock, or nil for Redis's TIME.
    func time(_ given: Int64?) -> Int64? {
        if let given { return given }
        return config.clock == .redis ? nil : Clock.realtimeMs()
    }

    private func fillLimiter(_ a: inout Args, id: UnsafeBufferPointer<UInt8>, algorithm: Algorithm, mode: StaticString,
                             limit: Int64, period: Int64, capacity: Int64, cost: Int64, now: Int64?) {
        let prefix = config.prefix
        a.add("1")
        Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
        a.bytes.append(contentsOf: Keys.indexSuffix)
        a.end()
        Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
        a.end()
        a.add(Int64(algorithm.rawValue))
        a.add(mode)
        a.add(limit)
        a.add(period)
        a.add(capacity)
        a.add(cost)
        if let now { a.add(now) } else { a.add("") }
    }

    func limit(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
               now: Int64?) -> Result<Decision, Failure> {
        let t = time(now)
        return pool.with { conn in
            let r = conn.eval(Scripts.limiter) { a in
                fillLimiter(&a, id: id, algorithm: lim.algorithm, mode: mode.letter, limit: lim.limit,
                            period: lim.periodMs, capacity: lim.capacity, cost: cost, now: t)
            }
            switch Replies.integers(r, count: 5, what: "rate limit") {
            case let .failure(f): return .failure(f)
            case let .success(v):
                return .success(Decision(allowed: v[0] == 1, count: v[1], limit: lim.limit, remaining: v[2],
                                         retryAfterMs: v[3], resetAfterMs: v[4]))
            }
        }
    }

    func inspect(id: UnsafeBufferPointer<UInt8>, scaleMs: Int64, limit: Int64, now: Int64?) -> Result<Inspection, Failure> {
        let t = time(now)
        return pool.with { conn in
            let r = conn.eval(Scripts.limiter) { a in
                fillLimiter(&a, id: id, algorithm: .fixedWindow, mode: "i", limit: limit, period: scaleMs,
                            capacity: limit, cost: 0, now: t)
            }
            switch Replies.integers(r, count: 4, what: "inspect_bucket") {
            case let .failure(f): return .failure(f)
            case let .success(v): return .success(Inspection(count: v[0], created: v[1], updated: v[2], msToNext: v[3]))
            }
        }
    }
}

extension Replies {
    /// An array of `count` integers (integer replies, or bulk strings holding exact int64s).
    static func integers(_ res: Result<UnsafeMutablePointer<redisReply>, Failure>, count: Int,
                         what: String) -> Result<[Int64], Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            if let f = error(r) { return .failure(f) }
            guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == count, let el = r.pointee.element else {
                return .failure(Failure(.protocol, "\(what): expected an array of \(count) integers"))
            }
            var out: [Int64] = []
            out.reserveCapacity(count)
            for i in 0..<count {
                guard let e = el[i] else { return .failure(Failure(.protocol, "\(what): missing element")) }
                if e.pointee.type == REDIS_REPLY_INTEGER {
                    out.append(e.pointee.integer)
                } else if e.pointee.type == REDIS_REPLY_STRING, let n = Decimal.parse(Connection.bytes(e)) {
                    out.append(n)
                } else {
                    return .failure(Failure(.protocol, "\(what): element \(i) is not an integer"))
                }
            }
            return .success(out)
        }
    }
}
