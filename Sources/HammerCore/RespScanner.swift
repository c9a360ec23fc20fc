// A check of the reply stream before hiredis's reader sees it. hiredis 0.14 trusts headers: `*2147483647` makes it
// reserve 2^31 slots (seconds to free), a bulk's CRLF is skipped unread (so a bulk without it puts the stream out of
// step) and a line may grow without end. No reply of the library is that large, so the scanner refuses, byte by
// byte as they arrive, any header larger than the call can expect.

public struct RespLimits: Equatable, Sendable {
    /// Elements of any one array header.
    public var elements: Int
    /// Bytes of any one bulk string.
    public var bulkBytes: Int
    /// Bytes of a status, error or integer line (with its CRLF).
    public var lineBytes: Int
    /// Bytes the whole call may read.
    public var totalBytes: Int

    public init(elements: Int, bulkBytes: Int = 1 << 20, lineBytes: Int = 1 << 16, totalBytes: Int = 4 << 20) {
        self.elements = elements
        self.bulkBytes = bulkBytes
        self.lineBytes = lineBytes
        self.totalBytes = totalBytes
    }

    /// A single call: the longest reply is a decision's 5 integers; room is left for scripts that grow.
    public static let single = RespLimits(elements: 64)
    /// A listing whose length Redis decides (an id's index, a SCAN page): bounded so that a header like *2147483647
    /// is still refused before hiredis reserves its slots.
    public static let listing = RespLimits(elements: 1 << 22, totalBytes: 1 << 28)
}

public struct RespScanner: Sendable {
    enum State: Sendable {
        case type                       // the next byte starts an element
        case number(aggregate: UInt8)   // after '*' or '$': digits, or '-1', up to CR
        case line                       // after '+', '-' or ':': anything up to LF
        case lf                         // CR seen at a header's end: LF must follow
        case payload                    // a bulk's bytes
        case crlf(UInt8)                // a bulk's CR (13) then LF (10)
    }

    public var limits: RespLimits
    var state = State.type
    var value = 0
    var negative = false
    var digits = 0
    var lineLength = 0
    var remaining = 0
    public private(set) var total = 0

    public init(limits: RespLimits = .single) { self.limits = limits }

    /// Starts a call: new limits, its byte count from zero. The position in the stream is kept.
    public mutating func begin(_ l: RespLimits) {
        limits = l
        total = 0
    }

    /// Checks the next bytes of the stream; nil when they may be fed to the reader, else why not.
    public mutating func scan(_ b: UnsafeRawBufferPointer) -> String? {
        total &+= b.count
        if total > limits.totalBytes { return "the reply is longer than the \(limits.totalBytes) bytes expected" }
        var i = 0
        let n = b.count
        while i < n {
            switch state {
            case .type:
                let c = b[i]
                switch c {
                case 42, 36:   // '*' '$'
                    state = .number(aggregate: c)
                    value = 0
                    negative = false
                    digits = 0
                case 43, 45, 58:   // '+' '-' ':'
                    state = .line
                    lineLength = 1
                default:
                    return "byte \(c) where a reply's type was expected"
                }
                i += 1
            case let .number(kind):
                let c = b[i]
                i += 1
                if c >= 48 && c <= 57 {
                    value = value &* 10 &+ Int(c - 48)
                    digits += 1
                    if negative && value != 1 { return "a negative length other than -1" }
                    let cap = kind == 42 ? limits.elements : limits.bulkBytes
                    if value > cap || digits > 10 {
                        return kind == 42 ? "an array header over the \(cap) elements expected"
                                          : "a bulk string over the \(cap) bytes expected"
                    }
                } else if c == 45 && digits == 0 && !negative {
                    negative = true
                } else if c == 13 && digits > 0 {
                    state = .lf
                    remaining = negative || kind == 42 ? -1 : value
                } else {
                    return "a malformed length"
                }
            case .line:
                let c = b[i]
                i += 1
                lineLength += 1
                if c == 10 {
                    state = .type
                } else if lineLength > limits.lineBytes {
                    return "a line over the \(limits.lineBytes) bytes expected"
                }
            case .lf:
                guard b[i] == 10 else { return "a header without its CRLF" }
                i += 1
                if remaining >= 0 {
                    state = remaining == 0 ? .crlf(13) : .payload
                } else {
                    state = .type
                }
            case .payload:
                let take = min(remaining, n - i)
                remaining -= take
                i += take
                if remaining == 0 { state = .crlf(13) }
            case let .crlf(want):
                guard b[i] == want else { return "a bulk string without its CRLF" }
                i += 1
                state = want == 13 ? .crlf(10) : .type
            }
        }
        return nil
    }
}
