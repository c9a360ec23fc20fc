// The C ABI: a thin translation of pointers and statuses. Every pointer and number is checked here;
// nothing below may trap, because a trap in a shared library kills the caller's process.
import CHammer
import Glibc
import HammerCore

let maxIdBytes = 65_536

@inline(__always)
func fail(_ f: Failure) -> Int32 {
    LastError.set(f.message)
    return f.status.rawValue
}

@inline(__always)
func invalid(_ message: String) -> Int32 { fail(Failure(.invalid, message)) }

/// What a hammer_t points to: a magic word beside the handle, so that a closed or foreign pointer is refused
/// instead of used (SQLite's API armor). Freed memory loses the word when the allocator reuses it.
struct HandleSlot {
    static let open: UInt64 = 0x4841_4D4D_4552_4F4B    // "HAMMEROK"
    static let closed: UInt64 = 0x4841_4D4D_4552_4344  // "HAMMERCD"
    var magic: UInt64
    var handle: Unmanaged<Handle>
}

@inline(__always)
func handle(_ h: OpaquePointer?) -> Handle? {
    guard let h else { return nil }
    let slot = UnsafeMutablePointer<HandleSlot>(h)
    guard slot.pointee.magic == HandleSlot.open else { return nil }
    return slot.pointee.handle.takeUnretainedValue()
}

/// The id's bytes, or a failure: NULL and over-long ids are refused.
@inline(__always)
func idBytes(_ id: UnsafePointer<CChar>?, _ fn: StaticString) -> Result<UnsafeBufferPointer<UInt8>, Failure> {
    guard let id else { return .failure(Failure(.invalid, "\(fn): id is NULL")) }
    let n = strnlen(id, maxIdBytes + 1)
    if n > maxIdBytes { return .failure(Failure(.invalid, "\(fn): id is longer than \(maxIdBytes) bytes")) }
    return .success(UnsafeBufferPointer(start: UnsafeRawPointer(id).assumingMemoryBound(to: UInt8.self), count: n))
}

@_cdecl("hammer_open")
public func hammer_open(_ config: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let out else { return invalid("hammer_open: out is NULL") }
    out.pointee = nil
    guard let config else { return invalid("hammer_open: config is NULL") }
    let n = strnlen(config, 65_537)
    if n > 65_536 { return invalid("config: the URL is longer than 65536 bytes") }
    let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(config).assumingMemoryBound(to: UInt8.self), count: n))
    let parsed: Config
    switch Config.parse(bytes) {
    case let .failure(f): return fail(f)
    case let .success(c): parsed = c
    }
    let h = Handle(config: parsed)
    if let f = h.check() { return fail(f) }
    let slot = UnsafeMutablePointer<HandleSlot>.allocate(capacity: 1)
    slot.initialize(to: HandleSlot(magic: HandleSlot.open, handle: Unmanaged.passRetained(h)))
    out.pointee = OpaquePointer(slot)
    return Status.ok.rawValue
}

@_cdecl("hammer_close")
public func hammer_close(_ h: OpaquePointer?) {
    guard let h else { return }
    let slot = UnsafeMutablePointer<HandleSlot>(h)
    guard slot.pointee.magic == HandleSlot.open else { return }   // closed already, or not a handle
    slot.pointee.magic = HandleSlot.closed
    slot.pointee.handle.release()
    slot.deallocate()
}

@_cdecl("hammer_count_hit")
public func hammer_count_hit(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ bucket: Int64, _ nowMs: Int64,
                             _ increment: Int64, _ countOut: UnsafeMutablePointer<Int64>?) -> Int32 {
    countOut?.pointee = 0
    guard let hd = handle(h) else { return invalid("hammer_count_hit: handle is NULL or not open") }
    if increment < 0 { return fail(hd.refuse(Failure(.invalid, "hammer_count_hit: increment must be >= 0"))) }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_count_hit") {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    switch hd.countHit(id: idb, bucket: bucket, nowMs: nowMs, increment: increment) {
    case let .failure(f): return fail(f)
    case let .success(c):
        countOut?.pointee = c
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_get_bucket")
public func hammer_get_bucket(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ bucket: Int64,
                              _ out: UnsafeMutablePointer<hammer_bucket>?) -> Int32 {
    guard let out else { return invalid("hammer_get_bucket: out is NULL") }
    out.pointee = hammer_bucket()
    out.pointee.bucket = bucket
    guard let hd = handle(h) else { return invalid("hammer_get_bucket: handle is NULL or not open") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_get_bucket") {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    switch hd.getBucket(id: idb, bucket: bucket) {
    case let .failure(f): return fail(f)
    case let .success(info):
        if let info {
            out.pointee.count = info.count
            out.pointee.created = info.created
            out.pointee.updated = info.updated
            out.pointee.found = 1
        }
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_delete_buckets")
public func hammer_delete_buckets(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?,
                                  _ deletedOut: UnsafeMutablePointer<Int64>?) -> Int32 {
    deletedOut?.pointee = 0
    guard let hd = handle(h) else { return invalid("hammer_delete_buckets: handle is NULL or not open") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_delete_buckets") {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    switch hd.deleteBuckets(id: idb) {
    case let .failure(f): return fail(f)
    case let .success(n):
        deletedOut?.pointee = n
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_strerror")
public func hammer_strerror(_ status: Int32) -> UnsafePointer<CChar> {
    let s = Status.text(status)
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("hammer_last_error")
public func hammer_last_error() -> UnsafePointer<CChar> {
    LastError.get()
}

private let versionText: StaticString = "1.0.0"

@_cdecl("hammer_version")
public func hammer_version() -> UnsafePointer<CChar> {
    UnsafeRawPointer(versionText.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("hammer_version_number")
public func hammer_version_number() -> UInt32 {
    UInt32(HAMMER_VERSION_MAJOR * 10000 + HAMMER_VERSION_MINOR * 100 + HAMMER_VERSION_PATCH)
}

// MARK: - Rate limiting

@inline(__always)
func put(_ out: UnsafeMutablePointer<hammer_decision>, _ d: Decision) {
    var o = hammer_decision()   // reserved space cleared
    o.allowed = d.allowed ? 1 : 0
    o.count = d.count
    o.limit = d.limit
    o.remaining = d.remaining
    o.retry_after_ms = d.retryAfterMs
    o.reset_after_ms = d.resetAfterMs
    o.degraded = d.degraded ? 1 : 0
    out.pointee = o
}

let zeroDecision = hammer_decision()

/// Shared checks of the decision calls: out, handle, id, numbers. Then `body` decides.
@inline(__always)
func decisionCall(_ fn: StaticString, _ h: OpaquePointer?, _ id: UnsafePointer<CChar>?,
                  _ out: UnsafeMutablePointer<hammer_decision>?, now: Int64?,
                  validate: () -> Result<Limit, Failure>,
                  decide: (Handle, UnsafeBufferPointer<UInt8>, Limit) -> Result<Decision, Failure>) -> Int32 {
    guard let out else { return invalid("\(fn): out is NULL") }
    out.pointee = zeroDecision
    guard let hd = handle(h) else { return invalid("\(fn): handle is NULL or not open") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, fn) {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    if let now, let f = Limit.validateNow(now) { return fail(hd.refuse(f.from(fn))) }
    let lim: Limit
    switch validate() {
    case let .failure(f): return fail(hd.refuse(f.from(fn)))
    case let .success(l): lim = l
    }
    switch decide(hd, idb, lim) {
    case let .failure(f): return fail(f)
    case let .success(d):
        put(out, d)
        return Status.ok.rawValue
    }
}

/// A hammer_limit and a cost, checked: the limit's numbers and the cost in range.
func validLimit(_ lp: UnsafePointer<hammer_limit>?, cost: Int64) -> Result<Limit, Failure> {
    guard let lp else { return .failure(Failure(.invalid, "lim is NULL")) }
    let l = lp.pointee
    if l.reserved != (0, 0) { return .failure(reservedNotZero("lim")) }
    let lim = Limit.validate(algorithm: l.algorithm, limit: l.limit, periodMs: l.period_ms, burst: l.burst)
    if case .success = lim, let f = Limit.validateCost(cost) { return .failure(f) }
    return lim
}

/// check_rate's numbers, checked: Hammer's scale_ms and limit, and an increment in range.
func validCheck(scaleMs: Int64, limit: Int64, increment: Int64) -> Result<Limit, Failure> {
    let lim = Limit.validate(algorithm: 0, limit: limit, periodMs: scaleMs, burst: 0, periodName: "scale_ms")
    if case .success = lim, increment < 0 || increment > Limit.maxLimit {
        return .failure(Failure(.invalid, "increment must be from 0 to \(Limit.maxLimit)"))
    }
    return lim
}

/// A request or limit whose reserved fields are not 0: a later version may give them a meaning.
func reservedNotZero(_ what: String) -> Failure {
    Failure(.invalid, "\(what): reserved fields must be 0")
}

extension Failure {
    /// The same failure, its message led by the function's name.
    func from(_ fn: StaticString) -> Failure { Failure(status, "\(fn): " + message, transient: transient) }
}

func checkRate(_ fn: StaticString, _ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ scaleMs: Int64, _ limit: Int64,
               _ increment: Int64, now: Int64?, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    decisionCall(fn, h, id, out, now: now, validate: {
        validCheck(scaleMs: scaleMs, limit: limit, increment: increment)
    }, decide: { hd, idb, lim in
        hd.limit(id: idb, lim, mode: .check, cost: increment, now: now)
    })
}

@_cdecl("hammer_check_rate")
public func hammer_check_rate(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ scaleMs: Int64, _ limit: Int64,
                              _ increment: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    checkRate("hammer_check_rate", h, id, scaleMs, limit, increment, now: nil, out)
}

@_cdecl("hammer_check_rate_at")
public func hammer_check_rate_at(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ scaleMs: Int64, _ limit: Int64,
                                 _ increment: Int64, _ nowMs: Int64,
                                 _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    checkRate("hammer_check_rate_at", h, id, scaleMs, limit, increment, now: nowMs, out)
}

@_cdecl("hammer_inspect_bucket")
public func hammer_inspect_bucket(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ scaleMs: Int64, _ limit: Int64,
                                  _ out: UnsafeMutablePointer<hammer_inspection>?) -> Int32 {
    let fn: StaticString = "hammer_inspect_bucket"
    guard let out else { return invalid("\(fn): out is NULL") }
    out.pointee = hammer_inspection()
    guard let hd = handle(h) else { return invalid("\(fn): handle is NULL or not open") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, fn) {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    if case let .failure(f) = validCheck(scaleMs: scaleMs, limit: limit, increment: 0) {
        return fail(hd.refuse(f.from(fn)))
    }
    switch hd.inspect(id: idb, scaleMs: scaleMs, limit: limit) {
    case let .failure(f): return fail(f)
    case let .success(i):
        // The count is Redis's: whatever another client wrote there, remaining stays in 0 ... limit.
        out.pointee.count = i.count
        out.pointee.remaining = limit - min(max(0, i.count), limit)
        out.pointee.ms_to_next_bucket = i.msToNext
        out.pointee.created = i.created
        out.pointee.updated = i.updated
        return Status.ok.rawValue
    }
}

func limited(_ fn: StaticString, _ h: OpaquePointer?, _ id: UnsafePointer<CChar>?,
             _ lim: UnsafePointer<hammer_limit>?, mode: Mode, cost: Int64, now: Int64?,
             _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    decisionCall(fn, h, id, out, now: now, validate: { validLimit(lim, cost: cost) }, decide: { hd, idb, l in
        hd.limit(id: idb, l, mode: mode, cost: cost, now: now)
    })
}

@_cdecl("hammer_hit")
public func hammer_hit(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lim: UnsafePointer<hammer_limit>?,
                       _ cost: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limited("hammer_hit", h, id, lim, mode: .hit, cost: cost, now: nil, out)
}

@_cdecl("hammer_hit_at")
public func hammer_hit_at(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lim: UnsafePointer<hammer_limit>?,
                          _ cost: Int64, _ nowMs: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limited("hammer_hit_at", h, id, lim, mode: .hit, cost: cost, now: nowMs, out)
}

@_cdecl("hammer_peek")
public func hammer_peek(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lim: UnsafePointer<hammer_limit>?,
                        _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limited("hammer_peek", h, id, lim, mode: .peek, cost: 1, now: nil, out)
}

@_cdecl("hammer_peek_at")
public func hammer_peek_at(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lim: UnsafePointer<hammer_limit>?,
                           _ nowMs: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limited("hammer_peek_at", h, id, lim, mode: .peek, cost: 1, now: nowMs, out)
}

// MARK: - Batches

let maxBatch = 1_000_000

/// Checks of every batch call; then `body` fills statuses through `put(i, status)`.
func batchCall(_ fn: StaticString, _ h: OpaquePointer?, _ reqs: UnsafeRawPointer?, _ n: Int, _ out: UnsafeMutableRawPointer?,
               _ statuses: UnsafeMutablePointer<Int32>?, _ body: (Handle) -> Void) -> Int32 {
    guard let hd = handle(h) else { return invalid("\(fn): handle is NULL or not open") }
    if n < 0 || n > maxBatch { return invalid("\(fn): n must be from 0 to \(maxBatch)") }
    if n == 0 { return Status.ok.rawValue }
    guard reqs != nil else { return invalid("\(fn): reqs is NULL") }
    guard out != nil else { return invalid("\(fn): out is NULL") }
    if let statuses { statuses.initialize(repeating: Status.internal.rawValue, count: n) }
    body(hd)
    return Status.ok.rawValue
}

/// Records request i's result: its status in statuses[i], and the first failure as the call's status.
struct BatchStatus {
    var first: Int32 = 0
    var firstIndex = Int.max
    let statuses: UnsafeMutablePointer<Int32>?
    /// Request i's status; the lowest-numbered failure becomes the call's status and hammer_last_error().
    mutating func set(_ i: Int, _ f: Failure?) {
        let st = f?.status.rawValue ?? 0
        statuses?[i] = st
        if let f, i < firstIndex {
            first = st
            firstIndex = i
            LastError.set("request \(i): " + f.message)
        }
    }
}

@_cdecl("hammer_count_hits")
public func hammer_count_hits(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_count_request>?, _ n: Int,
                              _ countsOut: UnsafeMutablePointer<Int64>?, _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_count_hits", h, reqs, n, countsOut, statuses) { hd in
        guard let reqs, let countsOut else { return }
        countsOut.initialize(repeating: 0, count: n)
        let t0 = Clock.monotonicUs()
        var o = Outcome(calls: UInt64(n))
        // Every request is checked before anything is sent: a bad one fails alone, whatever Redis's state.
        var todo: [Int] = []
        var ids = [UnsafeBufferPointer<UInt8>?](repeating: nil, count: n)
        for i in 0..<n {
            let r = reqs[i]
            if r.increment < 0 { bs.set(i, Failure(.invalid, "increment must be >= 0")); o.fail(.invalid); continue }
            if r.reserved != (0, 0) { bs.set(i, reservedNotZero("request")); o.fail(.invalid); continue }
            switch idBytes(r.id, "hammer_count_hits") {
            case let .failure(f): bs.set(i, f); o.fail(f.status)
            case let .success(idb): ids[i] = idb; todo.append(i)
            }
        }
        hd.batches(todo, chunk: Handle.batchChunk, Scripts.countHitMany, keyCount: { _ in Scripts.countHitManyKeys },
                   keys: { i, a in
            guard let idb = ids[i] else { return }
            Keys.appendIdBase(prefix: hd.config.prefix, id: idb, tags: hd.tags, to: &a.bytes)
            Decimal.append(reqs[i].bucket, to: &a.bytes)
            a.end()
            Keys.appendIdBase(prefix: hd.config.prefix, id: idb, tags: hd.tags, to: &a.bytes)
            a.bytes.append(contentsOf: Keys.indexSuffix)
            a.end()
        }, header: { _, a in
            a.add(hd.config.expiryMs)
        }, fill: { i, a in
            let r = reqs[i]
            a.add(r.bucket)
            a.add(r.increment)
            a.add(r.now_ms)
        }, take: { i, reply in
            let v: Result<Int64, Failure>
            switch reply {
            case let .failure(f): v = .failure(f)
            case let .success(e):
                v = e[0].map { Replies.int64Value($0, what: "count_hit") }
                    ?? .failure(Failure(.protocol, "batch: missing element"))
            }
            switch v {
            case let .failure(f): bs.set(i, f); o.fail(f.status)
            case let .success(c): countsOut[i] = c; bs.set(i, nil)
            }
        }, idOf: { ids[$0] })
        hd.pool.record(o, latencyUs: Clock.monotonicUs() - t0)
    }
    return rc != 0 ? rc : bs.first
}

/// A limiter and mode as a batch names it once per chunk.
struct LimiterSpec: Hashable {
    let lim: Limit
    let mode: Mode
}

/// Shared by hammer_hit_many and hammer_check_rates: validated limits per request, one pipeline.
func decisionBatch(_ fn: StaticString, _ hd: Handle, _ n: Int, _ out: UnsafeMutablePointer<hammer_decision>,
                   _ bs: inout BatchStatus,
                   _ request: (Int) -> Result<(id: UnsafeBufferPointer<UInt8>, lim: Limit, mode: Mode, cost: Int64, now: Int64?), Failure>) {
    out.initialize(repeating: zeroDecision, count: n)
    let t0 = Clock.monotonicUs()
    var o = Outcome(calls: UInt64(n))
    // Each request is checked once, and its time fixed once, so a NOSCRIPT resend decides at the same time.
    let checked = (0..<n).map { request($0) }
    var times = [Int64?](repeating: nil, count: n)
    for i in 0..<n { if case let .success(r) = checked[i] { times[i] = hd.time(r.now) } }
    var todo: [Int] = []
    for i in 0..<n {
        if case let .failure(f) = checked[i] { bs.set(i, f); o.fail(f.status) } else { todo.append(i) }
    }
    // Each chunk names its distinct limiters once; a request carries its limiter's number in the chunk.
    var spec = [Int](repeating: 0, count: n)
    hd.batches(todo, chunk: Handle.batchChunk, Scripts.limiterMany, width: 5, keyCount: { i in
        guard case let .success(r) = checked[i] else { return 0 }
        return Keys.decisionKeyCount(r.lim.algorithm)
    }, keys: { i, a in
        guard case let .success(r) = checked[i] else { return }
        hd.appendDecisionKeys(&a, id: r.id, r.lim, now: times[i])
    }, header: { chunk, a in
        var numbers: [LimiterSpec: Int] = [:]
        var specs: [LimiterSpec] = []
        for i in chunk {
            guard case let .success(r) = checked[i] else { continue }
            let key = LimiterSpec(lim: r.lim, mode: r.mode)
            if let k = numbers[key] { spec[i] = k; continue }
            specs.append(key)
            numbers[key] = specs.count
            spec[i] = specs.count
        }
        a.add(Int64(specs.count))
        for s in specs {
            a.add(Int64(s.lim.algorithm.rawValue))
            a.add(s.mode.letter)
            a.add(s.lim.limit)
            a.add(s.lim.periodMs)
            a.add(s.lim.capacity)
        }
    }, fill: { i, a in
        guard case let .success(r) = checked[i] else { return }
        a.add(Int64(spec[i]))
        a.add(r.cost)
        if let t = times[i] { a.add(t) } else { a.add("") }
    }, take: { i, reply in
        guard case let .success(r) = checked[i] else { return }
        var d: Result<Decision, Failure>
        switch reply {
        case let .failure(f): d = .failure(f)
        case let .success(e): d = Handle.decisionValues(e, r.lim)
        }
        if case let .failure(f) = d, f.transient { d = hd.degrade(f, id: r.id, r.lim, mode: r.mode, cost: r.cost, now: r.now) }
        o.add(d)
        switch d {
        case let .failure(f): bs.set(i, f)
        case let .success(dec): put(out + i, dec); bs.set(i, nil)
        }
    }, idOf: { i in
        if case let .success(r) = checked[i] { return r.id }
        return nil
    })
    hd.pool.record(o, latencyUs: Clock.monotonicUs() - t0)
}

@_cdecl("hammer_hit_many")
public func hammer_hit_many(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_hit_request>?, _ n: Int,
                            _ out: UnsafeMutablePointer<hammer_decision>?, _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_hit_many", h, reqs, n, out, statuses) { hd in
        guard let reqs, let out else { return }
        decisionBatch("hammer_hit_many", hd, n, out, &bs) { i in
            let r = reqs[i]
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            let lim: Limit
            switch validLimit(r.lim, cost: r.cost) {
            case let .failure(f): return .failure(f)
            case let .success(l): lim = l
            }
            let now: Int64? = r.now_ms < 0 ? nil : r.now_ms
            if let now, let f = Limit.validateNow(now) { return .failure(f) }
            switch idBytes(r.id, "hammer_hit_many") {
            case let .failure(f): return .failure(f)
            case let .success(idb): return .success((idb, lim, .hit, r.cost, now))
            }
        }
    }
    return rc != 0 ? rc : bs.first
}

@_cdecl("hammer_check_rates")
public func hammer_check_rates(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_check_request>?, _ n: Int,
                               _ out: UnsafeMutablePointer<hammer_decision>?, _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_check_rates", h, reqs, n, out, statuses) { hd in
        guard let reqs, let out else { return }
        decisionBatch("hammer_check_rates", hd, n, out, &bs) { i in
            let r = reqs[i]
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            let lim: Limit
            switch validCheck(scaleMs: r.scale_ms, limit: r.limit, increment: r.increment) {
            case let .failure(f): return .failure(f)
            case let .success(l): lim = l
            }
            switch idBytes(r.id, "hammer_check_rates") {
            case let .failure(f): return .failure(f)
            case let .success(idb): return .success((idb, lim, .check, r.increment, nil))
            }
        }
    }
    return rc != 0 ? rc : bs.first
}

// MARK: - Statistics

@_cdecl("hammer_stats")
public func hammer_stats(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<hammer_stats_t>?) -> Int32 {
    guard let out else { return invalid("hammer_stats: out is NULL") }
    // Never a byte past the caller's size: a caller built against an older header has a smaller struct.
    let size = Int(out.pointee.size)
    if size < statsSize10 {
        return invalid("hammer_stats: out->size is \(size); set it to sizeof(hammer_stats_t) (HAMMER_STATS_INIT)")
    }
    let filled = min(size, MemoryLayout<hammer_stats_t>.size)
    UnsafeMutableRawPointer(out).initializeMemory(as: UInt8.self, repeating: 0, count: filled)
    out.pointee.size = UInt32(filled)
    guard let hd = handle(h) else { return invalid("hammer_stats: handle is NULL or not open") }
    let (s, open) = hd.pool.snapshot()
    var o = hammer_stats_t()
    o.size = UInt32(filled)
    o.spin_cpus = UInt32(clamping: SpinGate.shared.maxActive)
    o.calls = s.calls
    o.allowed = s.allowed
    o.denied = s.denied
    withUnsafeMutableBytes(of: &o.errors) { raw in
        let e = raw.bindMemory(to: UInt64.self)
        for i in 1..<min(Status.limit, e.count, s.errors.count) { e[i] = s.errors[i] }
    }
    o.reconnects = s.reconnects
    o.degraded = s.degraded
    o.p50_us = Int64(clamping: s.latency.quantile(0.5))
    o.p99_us = Int64(clamping: s.latency.quantile(0.99))
    o.p999_us = Int64(clamping: s.latency.quantile(0.999))
    o.connections = Int64(open)
    if let router = hd.router { router.fill(&o) }
    withUnsafeBytes(of: &o) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: filled) }
    return Status.ok.rawValue
}

/// sizeof(hammer_stats_t) in 1.0: the least a caller may pass.
let statsSize10 = 208
