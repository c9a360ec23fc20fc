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
    slot.pointee.handle.takeUnretainedValue().completions.shutdown()   // its threads end before the handle
    slot.pointee.handle.release()
    slot.deallocate()
}

@_cdecl("hammer_count_hit")
public func hammer_count_hit(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ bucket: Int64, _ nowMs: Int64,
                             _ increment: Int64, _ countOut: UnsafeMutablePointer<Int64>?) -> Int32 {
    countOut?.pointee = 0
    guard let hd = handle(h) else { return invalid("hammer_count_hit: handle is NULL or not open") }
    if let m = hd.config.countHitProblem { return fail(hd.refuse(Failure(.invalid, "hammer_count_hit: " + m))) }
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

private let versionText: StaticString = "1.1.0"

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
    o.decided_by = Int32(clamping: d.decidedBy)
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

// MARK: - Several limits

/// An array of n hammer_limit and a cost, checked: n in 1 ... HAMMER_MAX_LIMITS, each limit as hammer_hit checks
/// it (its index in the message); identical limits folded.
func validLimits(_ lims: UnsafePointer<hammer_limit>?, _ n: Int, cost: Int64) -> Result<MultiLimit.LimitSet, Failure> {
    if n < 1 || n > MultiLimit.maxLimits {
        return .failure(Failure(.invalid, "n must be from 1 to \(MultiLimit.maxLimits) (HAMMER_MAX_LIMITS)"))
    }
    guard let lims else { return .failure(Failure(.invalid, "lims is NULL")) }
    var out: [Limit] = []
    out.reserveCapacity(n)
    for i in 0..<n {
        switch validLimit(lims + i, cost: cost) {
        case let .failure(f): return .failure(Failure(f.status, "lims[\(i)]: " + f.message))
        case let .success(l): out.append(l)
        }
    }
    return .success(MultiLimit.fold(out))
}

func limitedAll(_ fn: StaticString, _ h: OpaquePointer?, _ id: UnsafePointer<CChar>?,
                _ lims: UnsafePointer<hammer_limit>?, _ n: Int, mode: Mode, cost: Int64, now: Int64?,
                _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    guard let out else { return invalid("\(fn): out is NULL") }
    out.pointee = zeroDecision
    guard let hd = handle(h) else { return invalid("\(fn): handle is NULL or not open") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, fn) {
    case let .failure(f): return fail(hd.refuse(f))
    case let .success(b): idb = b
    }
    if let now, let f = Limit.validateNow(now) { return fail(hd.refuse(f.from(fn))) }
    let set: MultiLimit.LimitSet
    switch validLimits(lims, n, cost: cost) {
    case let .failure(f): return fail(hd.refuse(f.from(fn)))
    case let .success(s): set = s
    }
    switch hd.limitAll(MultiRequest(id: idb, set: set, mode: mode, cost: cost, now: now)) {
    case let .failure(f): return fail(f)
    case let .success(d):
        put(out, d)
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_hit_all")
public func hammer_hit_all(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lims: UnsafePointer<hammer_limit>?,
                           _ n: Int, _ cost: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limitedAll("hammer_hit_all", h, id, lims, n, mode: .hit, cost: cost, now: nil, out)
}

@_cdecl("hammer_hit_all_at")
public func hammer_hit_all_at(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lims: UnsafePointer<hammer_limit>?,
                              _ n: Int, _ cost: Int64, _ nowMs: Int64,
                              _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limitedAll("hammer_hit_all_at", h, id, lims, n, mode: .hit, cost: cost, now: nowMs, out)
}

@_cdecl("hammer_peek_all")
public func hammer_peek_all(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lims: UnsafePointer<hammer_limit>?,
                            _ n: Int, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limitedAll("hammer_peek_all", h, id, lims, n, mode: .peek, cost: 1, now: nil, out)
}

@_cdecl("hammer_peek_all_at")
public func hammer_peek_all_at(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ lims: UnsafePointer<hammer_limit>?,
                               _ n: Int, _ nowMs: Int64, _ out: UnsafeMutablePointer<hammer_decision>?) -> Int32 {
    limitedAll("hammer_peek_all_at", h, id, lims, n, mode: .peek, cost: 1, now: nowMs, out)
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
        // Every request is checked before anything is sent: a bad one fails alone, whatever Redis's state.
        let problem = hd.config.countHitProblem
        let checked = (0..<n).map { i -> Result<CountRequest, Failure> in
            let r = reqs[i]
            if let problem { return .failure(Failure(.invalid, problem)) }
            if r.increment < 0 { return .failure(Failure(.invalid, "increment must be >= 0")) }
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            return idBytes(r.id, "hammer_count_hits").map {
                CountRequest(id: $0, bucket: r.bucket, nowMs: r.now_ms, increment: r.increment)
            }
        }
        for (i, res) in hd.countHits(checked).enumerated() {
            switch res {
            case let .failure(f): bs.set(i, f)
            case let .success(c): countsOut[i] = c; bs.set(i, nil)
            }
        }
    }
    return rc != 0 ? rc : bs.first
}

/// Writes each decision of a batch and its status.
func putDecisions(_ results: [Result<Decision, Failure>], _ out: UnsafeMutablePointer<hammer_decision>,
                  _ bs: inout BatchStatus) {
    for (i, d) in results.enumerated() {
        switch d {
        case let .failure(f): bs.set(i, f)
        case let .success(dec): put(out + i, dec); bs.set(i, nil)
        }
    }
}

@_cdecl("hammer_hit_many")
public func hammer_hit_many(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_hit_request>?, _ n: Int,
                            _ out: UnsafeMutablePointer<hammer_decision>?, _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_hit_many", h, reqs, n, out, statuses) { hd in
        guard let reqs, let out else { return }
        out.initialize(repeating: zeroDecision, count: n)
        let checked = (0..<n).map { i -> Result<DecisionRequest, Failure> in
            let r = reqs[i]
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            let lim: Limit
            switch validLimit(r.lim, cost: r.cost) {
            case let .failure(f): return .failure(f)
            case let .success(l): lim = l
            }
            // HAMMER_NOW (any value < 0) or 0, a zeroed request's: the handle's clock.
            let now: Int64? = r.now_ms <= 0 ? nil : r.now_ms
            if let now, let f = Limit.validateNow(now) { return .failure(f) }
            return idBytes(r.id, "hammer_hit_many").map {
                DecisionRequest(id: $0, lim: lim, mode: .hit, cost: r.cost, now: now)
            }
        }
        putDecisions(hd.decide(checked), out, &bs)
    }
    return rc != 0 ? rc : bs.first
}

@_cdecl("hammer_hit_all_many")
public func hammer_hit_all_many(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_multi_request>?, _ n: Int,
                                _ out: UnsafeMutablePointer<hammer_decision>?,
                                _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_hit_all_many", h, reqs, n, out, statuses) { hd in
        guard let reqs, let out else { return }
        out.initialize(repeating: zeroDecision, count: n)
        let checked = (0..<n).map { i -> Result<MultiRequest, Failure> in
            let r = reqs[i]
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            let set: MultiLimit.LimitSet
            switch validLimits(r.lims, r.n_lims, cost: r.cost) {
            case let .failure(f): return .failure(f)
            case let .success(s): set = s
            }
            // 0 too is the handle's clock: a zero-initialised request must not decide at Unix time 0.
            let now: Int64? = r.now_ms <= 0 ? nil : r.now_ms
            if let now, let f = Limit.validateNow(now) { return .failure(f) }
            return idBytes(r.id, "hammer_hit_all_many").map {
                MultiRequest(id: $0, set: set, mode: .hit, cost: r.cost, now: now)
            }
        }
        putDecisions(hd.decideAll(checked), out, &bs)
    }
    return rc != 0 ? rc : bs.first
}

@_cdecl("hammer_check_rates")
public func hammer_check_rates(_ h: OpaquePointer?, _ reqs: UnsafePointer<hammer_check_request>?, _ n: Int,
                               _ out: UnsafeMutablePointer<hammer_decision>?, _ statuses: UnsafeMutablePointer<Int32>?) -> Int32 {
    var bs = BatchStatus(statuses: statuses)
    let rc = batchCall("hammer_check_rates", h, reqs, n, out, statuses) { hd in
        guard let reqs, let out else { return }
        out.initialize(repeating: zeroDecision, count: n)
        let checked = (0..<n).map { i -> Result<DecisionRequest, Failure> in
            let r = reqs[i]
            if r.reserved != (0, 0) { return .failure(reservedNotZero("request")) }
            let lim: Limit
            switch validCheck(scaleMs: r.scale_ms, limit: r.limit, increment: r.increment) {
            case let .failure(f): return .failure(f)
            case let .success(l): lim = l
            }
            return idBytes(r.id, "hammer_check_rates").map {
                DecisionRequest(id: $0, lim: lim, mode: .check, cost: r.increment, now: nil)
            }
        }
        putDecisions(hd.decide(checked), out, &bs)
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
    let (s, open) = hd.snapshot()
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
    hd.topology.fill(&o)
    if let cache = hd.denyCache {
        let served = cache.totals().hits
        o.calls &+= served
        o.denied &+= served
        o.deny_cache_hits = served
    }
    withUnsafeBytes(of: &o) { UnsafeMutableRawPointer(out).copyMemory(from: $0.baseAddress!, byteCount: filled) }
    return Status.ok.rawValue
}

/// sizeof(hammer_stats_t) in 1.0: the least a caller may pass.
let statsSize10 = 208
