// Exact decimal conversions of Int64, byte by byte: ids and numbers travel as bytes, never as formatted text.

public enum Decimal {
    /// Appends the decimal digits of `v` (with a '-' when negative) to `out`.
    @inline(__always)
    public static func append(_ v: Int64, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var mag = v.magnitude  // UInt64: no overflow for Int64.min
        var n = 0
        withUnsafeMutableBytes(of: &digits) { buf in
            repeat {
                buf[n] = UInt8(truncatingIfNeeded: mag % 10) &+ 48
                mag /= 10
                n += 1
            } while mag != 0
            if v < 0 { out.append(45) }
            while n > 0 {
                n -= 1
                out.append(buf[n])
            }
        }
    }

    public static func bytes(_ v: Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        append(v, to: &out)
        return out
    }

    /// Parses an optional '-' and decimal digits, exactly; nil on anything else or overflow.
    public static func parse<C: Collection>(_ bytes: C) -> Int64? where C.Element == UInt8 {
        var it = bytes.makeIterator()
        guard var c = it.next() else { return nil }
        var negative = false
        if c == 45 {
            negative = true
            guard let d = it.next() else { return nil }
            c = d
        }
        var mag: UInt64 = 0
        while true {
            guard c >= 48 && c <= 57 else { return nil }
            let (m, o1) = mag.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c &- 48))
            if o1 || o2 { return nil }
            mag = s
            guard let next = it.next() else { break }
            c = next
        }
        if negative {
            if mag <= UInt64(Int64.max) { return -Int64(mag) }
            if mag == UInt64(Int64.max) + 1 { return Int64.min }
            return nil
        }
        return mag <= UInt64(Int64.max) ? Int64(mag) : nil
    }

    public static func parse(_ s: String) -> Int64? { parse(Array(s.utf8)) }
}

extension Int64 {
    /// self + other, clamped to Int64's range: for counts from Redis, where an overflow must not trap.
    public func addingClamped(_ other: Int64) -> Int64 {
        let (v, o) = addingReportingOverflow(other)
        return o ? (other > 0 ? .max : .min) : v
    }
}
