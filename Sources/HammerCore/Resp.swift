// Commands in Redis's wire format (RESP: an array of bulk strings), written by us into a reused buffer: hiredis's
// own formatting (redisAppendCommandArgv) allocates a string per command and formats each length with sdscatfmt.

public enum Resp {
    /// Appends to `out` the command whose arguments are `bytes` cut at the offsets `ends` (argument i is
    /// bytes[ends[i-1] ..< ends[i]], the first from 0).
    public static func appendCommand(bytes: [UInt8], ends: [Int], to out: inout [UInt8]) {
        out.append(42)   // '*'
        Decimal.append(Int64(ends.count), to: &out)
        out.append(13)
        out.append(10)
        var from = 0
        bytes.withUnsafeBufferPointer { b in
            for end in ends {
                out.append(36)   // '$'
                Decimal.append(Int64(end - from), to: &out)
                out.append(13)
                out.append(10)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[from..<end]))
                out.append(13)
                out.append(10)
                from = end
            }
        }
    }
}
