// libFuzzer entry point for libhammer: the URL parser, the number and key helpers, the limiter models that decide
// in-process under fallback=local, and every exported hammer_* call's argument handling against a real redis-server.
//
// The first byte of an input picks the target; the rest is its data (see `Target`). A crash, a Swift trap (overflow,
// bounds, force unwrap), an ASan report, or a status outside 0...7 (a `fatalError` here) is a finding.
//
// The exported calls need a live server: HAMMER_FUZZ_URL (set by `make fuzz`, a throwaway redis-server). Without it,
// the API targets still run every argument check on a NULL handle.
import CHammer
import Glibc
import Hammer
import HammerCore

enum Target: UInt8 {
    case config = 0       // Config.parse(rest) and its invariants
    case decimal = 1      // Decimal.parse, and the round trip of what it accepts
    case keys = 2         // Keys.globEscape / isBucketKey / bucket / index
    case model = 3        // a validated limit, then a sequence of validated steps through LimiterModel
    case api = 4          // one exported call with fuzzed arguments
    case batch = 5        // one batch call with a fuzzed array of requests
    case statuses = 6     // hammer_strerror / hammer_last_error / hammer_version on any status value
}

/// Reads fuzz data front to back; past the end every read is zero.
struct Reader {
    var bytes: UnsafeBufferPointer<UInt8>
    var at = 0
    var left: Int { bytes.count - at }
    mutating func u8() -> UInt8 {
        guard at < bytes.count else { return 0 }
        at += 1
        return bytes[at - 1]
    }
    mutating func i64() -> Int64 {
        var v: UInt64 = 0
        for _ in 0..<8 { v = v << 8 | UInt64(u8()) }
        return Int64(bitPattern: v)
    }
    mutating func i32() -> Int32 { Int32(truncatingIfNeeded: i64()) }
    /// A number that is often interesting: a boundary, a small value, or raw bits.
    mutating func number() -> Int64 {
        let interesting: [Int64] = [0, 1, -1, 2, 1000, 60_000, Int64.max, Int64.min, Int64.max - 1, Int64.min + 1,
                                    1 << 47, (1 << 47) + 1, 1 << 52, 1_000_000_000, 1_000_000_001, 315_360_000_000,
                                    315_360_000_001, Int64(Int32.max), Int64(Int32.min)]
        let k = u8()
        if k < 128 { return interesting[Int(k) % interesting.count] }
        if k < 192 { return Int64(u8()) - 8 }
        return i64()
    }
    /// Up to `max` bytes, as an id: a length-prefixed run, possibly repeated to reach long lengths cheaply.
    mutating func id(max: Int) -> [UInt8] {
        let n = Int(u8() % 24)
        var b: [UInt8] = []
        for _ in 0..<n { b.append(u8()) }
        let reps = u8()
        if reps > 240, !b.isEmpty {
            // Long ids: 65535 ... 65537 bytes and beyond, around the library's limit.
            let target = [65_535, 65_536, 65_537, 70_000, 1 << 20][Int(reps - 241) % 5]
            let pattern = b
            b = [UInt8](unsafeUninitializedCapacity: target) { buf, n in
                // The pattern, then the filled part copied after itself until the target length.
                var filled = min(pattern.count, target)
                _ = pattern.withUnsafeBufferPointer { memcpy(buf.baseAddress!, $0.baseAddress!, filled) }
                while filled < target {
                    let k = min(filled, target - filled)
                    memcpy(buf.baseAddress! + filled, buf.baseAddress!, k)
                    filled += k
                }
                n = target
            }
        }
        return Array(b.prefix(max))
    }
    mutating func rest() -> [UInt8] {
        guard at < bytes.count else { return [] }
        defer { at = bytes.count }
        return Array(bytes[at...])
    }
}

/// The handle of the live server, opened once.
let live: OpaquePointer? = {
    guard let url = getenv("HAMMER_FUZZ_URL") else { return nil }
    var h: OpaquePointer? = nil
    let rc = Hammer.hammer_open(url, &h)
    if rc != 0 { fatalError("fuzz: Hammer.hammer_open(HAMMER_FUZZ_URL) -> \(rc): \(String(cString: Hammer.hammer_last_error()))") }
    return h
}()

@inline(__always)
func expectStatus(_ rc: Int32, _ what: StaticString) {
    if rc < 0 || rc > 7 { fatalError("\(what) returned \(rc), outside the defined statuses 0...7") }
    // A healthy loopback server never makes a call fail for transport or shape reasons, and nothing is internal.
    if live != nil && (rc == 2 || rc == 3 || rc == 5 || rc == 6 || rc == 7) {
        fatalError("\(what) -> \(rc): \(String(cString: Hammer.hammer_last_error()))")
    }
    if rc != 0 && Hammer.hammer_last_error().pointee == 0 { fatalError("\(what) -> \(rc) with an empty Hammer.hammer_last_error()") }
}

/// The id as a C string: NUL ends it (as for a C caller), and a NUL-free id is used whole.
func withID<T>(_ id: [UInt8], nullable: Bool, _ isNull: Bool, _ body: (UnsafePointer<CChar>?) -> T) -> T {
    if nullable && isNull { return body(nil) }
    return (id + [0]).withUnsafeBufferPointer { p in
        p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { body($0) }
    }
}

func fuzzConfig(_ r: inout Reader) {
    let url = r.rest()
    switch Config.parse(url) {
    case let .failure(f):
        if f.status != .invalid || f.message.isEmpty { fatalError("Config.parse failed without a message") }
    case let .success(c):
        if c.expiryMs < 0 || c.expiryMs > Config.maxExpiryMs { fatalError("expiry_ms out of range: \(c.expiryMs)") }   // 0: not given
        if c.poolSize < 1 || c.poolSize > Int(Config.maxPoolSize) { fatalError("pool_size out of range") }
        if c.prefix.count > Config.maxPrefixBytes { fatalError("prefix too long") }
        if c.connectTimeoutMs < 1 || c.timeoutMs < 1 { fatalError("timeouts out of range") }
        if case let .tcp(_, port) = c.endpoint, port < 1 || port > 65535 { fatalError("port out of range") }
        _ = c.redacted
    }
    _ = Config.percentDecode(url)
}

func fuzzDecimal(_ r: inout Reader) {
    let b = r.rest()
    if let v = Decimal.parse(b) {
        let back = Decimal.bytes(v)
        if Decimal.parse(back) != v { fatalError("Decimal round trip of \(v)") }
    }
    var out: [UInt8] = []
    let n = Int64(bitPattern: UInt64(b.count) &* 0x9E37_79B9_7F4A_7C15)
    Decimal.append(n, to: &out)
    if Decimal.parse(out) != n { fatalError("Decimal.append/parse of \(n)") }
}

func fuzzKeys(_ r: inout Reader) {
    let prefix = r.id(max: 1024)
    let id = r.id(max: 70_000)
    let bucket = r.number()
    let key = Keys.bucket(prefix: prefix, id: id, bucket: bucket)
    if !Keys.isBucketKey(key, prefix: prefix, id: id) { fatalError("a bucket key of the id is not recognised") }
    _ = Keys.index(prefix: prefix, id: id)
    let escaped = Keys.globEscape(id)
    if escaped.count < id.count { fatalError("globEscape shortened its input") }
    _ = Keys.isBucketKey(r.rest(), prefix: prefix, id: id)
}

func fuzzModel(_ r: inout Reader) {
    let lim: Limit
    switch Limit.validate(algorithm: Int32(r.u8() % 8) - 1, limit: r.number(), periodMs: r.number(), burst: r.number()) {
    case .failure: return
    case let .success(l): lim = l
    }
    // A mode byte with its high bit set decides with a third of the limit: the caller lowered the id's limit, so the
    // state may hold more than the new limit allows.
    let lowered = (try? Limit.validate(algorithm: lim.algorithm.rawValue, limit: max(1, lim.limit / 3),
                                       periodMs: lim.periodMs, burst: lim.burst / 3).get()) ?? lim
    var m = LimiterModel()
    for _ in 0..<Int(r.u8() % 16) {
        let modeByte = r.u8()
        let mode: Mode = [.hit, .peek, .check][Int(modeByte & 0x7f) % 3]
        if mode == .check && lim.algorithm != .fixedWindow { continue }
        let cost = r.number(), now = r.number()
        if Limit.validateCost(cost) != nil || Limit.validateNow(now) != nil { continue }
        let d = m.apply(modeByte & 0x80 != 0 ? lowered : lim, mode: mode, cost: mode == .peek ? 1 : cost, now: now)
        let negative = d.remaining < 0
        if d.retryAfterMs < -1 || negative || (d.allowed && d.retryAfterMs != 0) {
            fatalError("model decision out of range: \(lim) \(mode) cost \(cost) now \(now): \(d)")
        }
    }
}

func fuzzAPI(_ r: inout Reader) {
    let fn = r.u8() % 16
    let flags = r.u8()          // bit 0: NULL id, bit 1: NULL out, bit 2: NULL handle, bit 3: NULL lim
    let h = flags & 4 != 0 ? nil : live
    let id = r.id(max: 1 << 20)
    let a = r.number(), b = r.number(), c = r.number(), d = r.number()
    var lim = hammer_limit(algorithm: Int32(r.u8() % 8) - 1, limit: r.number(), period_ms: r.number(), burst: r.number())
    // Several limits (hammer_hit_all ...): up to 17 in C memory (one past HAMMER_MAX_LIMITS), n up to 18 or huge.
    let lims = UnsafeMutablePointer<hammer_limit>.allocate(capacity: 17)
    defer { lims.deallocate() }
    let nl = Int(r.u8() % 18)
    for i in 0..<17 {
        lims[i] = i == 0 || i >= nl ? lim : hammer_limit(algorithm: Int32(r.u8() % 8) - 1, limit: r.number(),
                                                         period_ms: r.number(), burst: r.number())
    }
    let n = r.u8() == 255 ? Int.min : min(nl, 17)
    var dec = hammer_decision()
    var bucket = hammer_bucket()
    var ins = hammer_inspection()
    var stats = hammer_stats_t.sized()
    var count: Int64 = 0
    let nullOut = flags & 2 != 0
    let lsp: UnsafeMutablePointer<hammer_limit>? = flags & 8 != 0 ? nil : lims
    withID(id, nullable: true, flags & 1 != 0) { idp in
        withUnsafeMutablePointer(to: &lim) { limp in
            let lp: UnsafeMutablePointer<hammer_limit>? = flags & 8 != 0 ? nil : limp
            withUnsafeMutablePointer(to: &dec) { dp in
                let o = nullOut ? nil : dp
                let rc: Int32
                switch fn {
                case 0: rc = withUnsafeMutablePointer(to: &count) { Hammer.hammer_count_hit(h, idp, a, b, c, nullOut ? nil : $0) }
                case 1: rc = withUnsafeMutablePointer(to: &bucket) { Hammer.hammer_get_bucket(h, idp, a, nullOut ? nil : $0) }
                case 2: rc = withUnsafeMutablePointer(to: &count) { Hammer.hammer_delete_buckets(h, idp, nullOut ? nil : $0) }
                case 3: rc = Hammer.hammer_check_rate(h, idp, a, b, c, o)
                case 4: rc = Hammer.hammer_check_rate_at(h, idp, a, b, c, d, o)
                case 5: rc = withUnsafeMutablePointer(to: &ins) { Hammer.hammer_inspect_bucket(h, idp, a, b, nullOut ? nil : $0) }
                case 6: rc = Hammer.hammer_hit(h, idp, lp, a, o)
                case 7: rc = Hammer.hammer_hit_at(h, idp, lp, a, b, o)
                case 8: rc = Hammer.hammer_peek(h, idp, lp, o)
                case 9: rc = Hammer.hammer_peek_at(h, idp, lp, a, o)
                case 10: rc = withUnsafeMutablePointer(to: &stats) { Hammer.hammer_stats(h, nullOut ? nil : $0) }
                case 12: rc = Hammer.hammer_hit_all(h, idp, lsp, n, a, o)
                case 13: rc = Hammer.hammer_hit_all_at(h, idp, lsp, n, a, b, o)
                case 14: rc = Hammer.hammer_peek_all(h, idp, lsp, n, o)
                case 15: rc = Hammer.hammer_peek_all_at(h, idp, lsp, n, a, o)
                default:
                    Hammer.hammer_close(nil)
                    rc = 0
                }
                expectStatus(rc, "hammer call")
                let cLength = id.firstIndex(of: 0) ?? id.count   // what a C caller's id would be
                if cLength > 65_536 && flags & 7 == 0 && live != nil && (fn < 10 || fn >= 12) && rc != 1 {
                    fatalError("an id of \(id.count) bytes was not refused (call \(fn) -> \(rc))")
                }
                if rc == 0 && ((fn >= 3 && fn <= 9) && fn != 5 || fn >= 12) {
                    let v = dp.pointee
                    let negative = v.remaining < 0
                    if v.allowed != 0 && v.allowed != 1 || negative || v.retry_after_ms < -1
                        || v.decided_by < 0 || v.decided_by >= max(1, Int32(clamping: n)) {
                        fatalError("decision out of range from call \(fn)")
                    }
                }
            }
        }
    }
}

func fuzzBatch(_ r: inout Reader) {
    let which = r.u8() % 3
    let count = Int(r.u8() % 9)
    let flags = r.u8()       // bit 0: NULL statuses, bit 1: NULL out, bit 2: NULL reqs, bit 3: n out of range
    // The requests' ids and limits live in C memory for the call, as a C caller's would.
    let ids = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: max(count, 1))
    let limits = UnsafeMutablePointer<hammer_limit>.allocate(capacity: max(count, 1))
    var nullIDs = 0
    for i in 0..<count {
        let b = r.id(max: 70_000)
        if b.isEmpty && r.u8() & 1 == 1 {
            ids[i] = nil
            nullIDs += 1
        } else {
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: b.count + 1)
            for (j, c) in b.enumerated() { p[j] = CChar(bitPattern: c) }
            p[b.count] = 0
            ids[i] = p
        }
        limits[i] = hammer_limit(algorithm: Int32(r.u8() % 8) - 1, limit: r.number(), period_ms: r.number(),
                                 burst: r.number())
    }
    defer {
        for i in 0..<count { ids[i]?.deallocate() }
        ids.deallocate()
        limits.deallocate()
    }
    let nums = (0..<(count * 3)).map { _ in r.number() }
    let n = flags & 8 != 0 ? Int(r.number()) : count
    // n beyond the arrays would make the library read past them: it must refuse n < 0 and n > 1,000,000 before
    // reading anything, so only such n (or n <= count) are passed.
    if n > count && n <= 1_000_000 { return }
    var statuses = [Int32](repeating: -99, count: max(count, 1))
    var counts = [Int64](repeating: 0, count: max(count, 1))
    var outs = [hammer_decision](repeating: hammer_decision(), count: max(count, 1))
    let rc: Int32 = statuses.withUnsafeMutableBufferPointer { sb in
        let sp = flags & 1 != 0 ? nil : sb.baseAddress
        switch which {
        case 0:
            var reqs = (0..<count).map { i in
                hammer_count_request(id: ids[i].map { UnsafePointer($0) }, bucket: nums[3 * i],
                                     now_ms: nums[3 * i + 1], increment: nums[3 * i + 2])
            }
            return reqs.withUnsafeMutableBufferPointer { rq in
                counts.withUnsafeMutableBufferPointer { cb in
                    Hammer.hammer_count_hits(live, flags & 4 != 0 ? nil : rq.baseAddress, n,
                                      flags & 2 != 0 ? nil : cb.baseAddress, sp)
                }
            }
        case 1:
            var reqs = (0..<count).map { i in
                hammer_hit_request(id: ids[i].map { UnsafePointer($0) }, lim: nums[3 * i + 2] == 0 ? nil : UnsafePointer(limits + i),
                                   cost: nums[3 * i], now_ms: nums[3 * i + 1])
            }
            return reqs.withUnsafeMutableBufferPointer { rq in
                outs.withUnsafeMutableBufferPointer { ob in
                    Hammer.hammer_hit_many(live, flags & 4 != 0 ? nil : rq.baseAddress, n,
                                    flags & 2 != 0 ? nil : ob.baseAddress, sp)
                }
            }
        default:
            var reqs = (0..<count).map { i in
                hammer_check_request(id: ids[i].map { UnsafePointer($0) }, scale_ms: nums[3 * i],
                                     limit: nums[3 * i + 1], increment: nums[3 * i + 2])
            }
            return reqs.withUnsafeMutableBufferPointer { rq in
                outs.withUnsafeMutableBufferPointer { ob in
                    Hammer.hammer_check_rates(live, flags & 4 != 0 ? nil : rq.baseAddress, n,
                                       flags & 2 != 0 ? nil : ob.baseAddress, sp)
                }
            }
        }
    }
    expectStatus(rc, "hammer batch call")
    if nullIDs > 0 && n == count && count > 0 && flags & 6 == 0 && rc != 1 {
        fatalError("a batch with a NULL id returned \(rc)")
    }
    if flags & 1 != 0 || n != count || flags & 6 != 0 || count == 0 { return }
    // Each request's status is a defined one, and the call returns the first failure.
    for s in statuses[0..<count] where s < 0 || s > 7 { fatalError("batch request status \(s)") }
    let first = statuses[0..<count].first { $0 != 0 } ?? 0
    if first != rc { fatalError("batch returned \(rc) but its first failing request has \(first)") }
}

func fuzzStatuses(_ r: inout Reader) {
    let s = r.i32()
    let text = Hammer.hammer_strerror(s)
    if strlen(text) == 0 { fatalError("empty Hammer.hammer_strerror(\(s))") }
    _ = strlen(Hammer.hammer_last_error())
    if strcmp(Hammer.hammer_version(), HAMMER_VERSION_STRING) != 0 { fatalError("version mismatch") }
}

/// HAMMER_FUZZ_TARGETS: the targets to run, as their numbers ("0,4,5"); all when unset. To focus a run on one part.
let enabled: Set<UInt8> = {
    guard let e = getenv("HAMMER_FUZZ_TARGETS") else { return Set(0..<7) }
    return Set(String(cString: e).split(separator: ",").compactMap { UInt8($0) })
}()

/// HAMMER_FUZZ_SELFTEST=1: the input "SELFTEST" overflows an Int64, as a library trap would, so a test can check that
/// a trap is reported as a crash (and not swallowed by the harness or the Swift backtracer).
let selfTest = getenv("HAMMER_FUZZ_SELFTEST").map { String(cString: $0) == "1" } ?? false

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    var r = Reader(bytes: UnsafeBufferPointer(start: data, count: size))
    if selfTest && r.bytes.elementsEqual("SELFTEST".utf8) {
        var x = Int64.max - 7
        x += Int64(size)     // traps: Int64.max - 7 + 8
        return CInt(truncatingIfNeeded: x)
    }
    let t = r.u8() % 7
    guard enabled.contains(t) else { return 0 }
    switch Target(rawValue: t)! {
    case .config: fuzzConfig(&r)
    case .decimal: fuzzDecimal(&r)
    case .keys: fuzzKeys(&r)
    case .model: fuzzModel(&r)
    case .api: fuzzAPI(&r)
    case .batch: if live != nil { fuzzBatch(&r) }
    case .statuses: fuzzStatuses(&r)
    }
    return 0
}
