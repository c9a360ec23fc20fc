// A submitted op in Swift terms: checked as its blocking call checks its arguments, and owning a copy of all it
// needs (the caller may free its own memory once hammer_submit returns).
import CHammer
import Glibc
import HammerCore

/// What an op asks, with its numbers checked.
enum OpBody {
    case count(bucket: Int64, nowMs: Int64, increment: Int64)
    case getBucket(bucket: Int64)
    case delete
    /// check_rate (mode .check), hit, peek; now nil: the handle's clock.
    case decision(lim: Limit, mode: Mode, cost: Int64, now: Int64?)
    case multi(set: MultiLimit.LimitSet, mode: Mode, cost: Int64, now: Int64?)
    case inspect(scaleMs: Int64, limit: Int64)
}

struct AsyncOp {
    let tag: UInt64
    let kind: Int32
    /// The id's bytes, owned by the op: freed (release()) when it completes or is dropped.
    let id: UnsafeMutableBufferPointer<UInt8>
    let body: OpBody
    /// Monotonic microseconds by which the op must complete: submit + connect_timeout_ms + timeout_ms.
    let deadlineUs: Int64
    /// The id's bytes are a copy of the op's own (false: a blocking call's, valid while it waits).
    var owned = true

    var idBuffer: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(id) }

    func release() { if owned { id.deallocate() } }

    /// The op checked and copied, or the failure it completes with.
    static func make(_ op: hammer_op, deadlineUs: Int64) -> Result<AsyncOp, Failure> {
        let fn: StaticString = "hammer_submit"
        if op.reserved32 != 0 || op.reserved != (0, 0, 0, 0) { return .failure(reservedNotZero("op").from(fn)) }
        let idb: UnsafeBufferPointer<UInt8>
        switch idBytes(op.id, fn) {
        case let .failure(f): return .failure(f)
        case let .success(b): idb = b
        }
        let body: OpBody
        switch checkBody(op) {
        case let .failure(f): return .failure(f.from(fn))
        case let .success(b): body = b
        }
        let copy = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, idb.count))
        _ = copy.initialize(from: idb)
        return .success(AsyncOp(tag: op.tag, kind: op.kind, id: UnsafeMutableBufferPointer(rebasing: copy[0..<idb.count]),
                                body: body, deadlineUs: deadlineUs))
    }

    private static func at(_ op: hammer_op, _ timed: Bool) -> Result<Int64?, Failure> {
        guard timed else { return .success(nil) }
        if let f = Limit.validateNow(op.now_ms) { return .failure(f) }
        return .success(op.now_ms)
    }

    private static func checkBody(_ op: hammer_op) -> Result<OpBody, Failure> {
        switch op.kind {
        case Int32(HAMMER_OP_COUNT_HIT):
            if op.amount < 0 { return .failure(Failure(.invalid, "increment (amount) must be >= 0")) }
            return .success(.count(bucket: op.bucket, nowMs: op.now_ms, increment: op.amount))
        case Int32(HAMMER_OP_GET_BUCKET):
            return .success(.getBucket(bucket: op.bucket))
        case Int32(HAMMER_OP_DELETE_BUCKETS):
            return .success(.delete)
        case Int32(HAMMER_OP_CHECK_RATE), Int32(HAMMER_OP_CHECK_RATE_AT):
            return at(op, op.kind == Int32(HAMMER_OP_CHECK_RATE_AT)).flatMap { now in
                validCheck(scaleMs: op.scale_ms, limit: op.limit, increment: op.amount).map {
                    .decision(lim: $0, mode: .check, cost: op.amount, now: now)
                }
            }
        case Int32(HAMMER_OP_INSPECT_BUCKET):
            return validCheck(scaleMs: op.scale_ms, limit: op.limit, increment: 0).map { _ in
                .inspect(scaleMs: op.scale_ms, limit: op.limit)
            }
        case Int32(HAMMER_OP_HIT), Int32(HAMMER_OP_HIT_AT), Int32(HAMMER_OP_PEEK), Int32(HAMMER_OP_PEEK_AT):
            let peek = op.kind == Int32(HAMMER_OP_PEEK) || op.kind == Int32(HAMMER_OP_PEEK_AT)
            let cost: Int64 = peek ? 1 : op.amount
            return at(op, op.kind == Int32(HAMMER_OP_HIT_AT) || op.kind == Int32(HAMMER_OP_PEEK_AT)).flatMap { now in
                validLimit(op.lims, cost: cost).map {
                    .decision(lim: $0, mode: peek ? .peek : .hit, cost: cost, now: now)
                }
            }
        case Int32(HAMMER_OP_HIT_ALL), Int32(HAMMER_OP_HIT_ALL_AT), Int32(HAMMER_OP_PEEK_ALL),
             Int32(HAMMER_OP_PEEK_ALL_AT):
            let peek = op.kind == Int32(HAMMER_OP_PEEK_ALL) || op.kind == Int32(HAMMER_OP_PEEK_ALL_AT)
            let cost: Int64 = peek ? 1 : op.amount
            let timed = op.kind == Int32(HAMMER_OP_HIT_ALL_AT) || op.kind == Int32(HAMMER_OP_PEEK_ALL_AT)
            if op.n_lims > MultiLimit.maxLimits {
                return .failure(Failure(.invalid, "n_lims must be from 1 to \(MultiLimit.maxLimits) (HAMMER_MAX_LIMITS)"))
            }
            return at(op, timed).flatMap { now in
                validLimits(op.lims, Int(op.n_lims), cost: cost).map {
                    .multi(set: $0, mode: peek ? .peek : .hit, cost: cost, now: now)
                }
            }
        default:
            return .failure(Failure(.invalid, "kind \(op.kind) is not a HAMMER_OP_* value"))
        }
    }
}

extension hammer_completion {
    /// A completion of `tag` and `kind` with status `f` (nil: HAMMER_OK); results are set by the caller.
    init(tag: UInt64, kind: Int32, failure f: Failure?) {
        self.init()   // every byte 0: results, reserved, message ""
        self.tag = tag
        self.kind = kind
        guard let f else { return }
        status = f.status.rawValue
        withUnsafeMutableBytes(of: &message) { raw in
            var n = 0
            for b in f.message.utf8 {
                if n >= raw.count - 1 { break }
                raw[n] = b
                n += 1
            }
            // Cut on a UTF-8 boundary, so the text stays valid.
            if n == raw.count - 1 { while n > 0 && raw[n - 1] & 0xC0 == 0x80 { n -= 1 }; if n > 0 && raw[n - 1] >= 0xC0 { n -= 1 } }
            raw[n] = 0
        }
    }
}
