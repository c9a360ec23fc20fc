// Call statistics: counters and a fixed-size log-linear latency histogram (16 sub-buckets per power of two,
// so a percentile is exact to within 1/16 of its value). Plain values: the library keeps them under its pool lock.

public struct LatencyHistogram: Equatable, Sendable {
    public static let bucketCount = 1024
    public private(set) var counts = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)
    public private(set) var total: UInt64 = 0

    public init() {}

    /// The bucket of a value (microseconds): values below 16 have their own; above, 16 per power of two.
    @inline(__always)
    public static func index(_ v: UInt64) -> Int {
        if v < 16 { return Int(v) }
        let m = 63 - v.leadingZeroBitCount          // v in [2^m, 2^(m+1)), m >= 4
        return (m - 3) * 16 + Int((v >> UInt64(m - 4)) & 15)
    }

    /// The largest value that falls in bucket `i`.
    public static func upperBound(_ i: Int) -> UInt64 {
        if i < 16 { return UInt64(i) }
        let k = UInt64(i / 16 - 1)                   // shift m - 4
        let s = UInt64(i % 16 + 16)
        if k > 59 || (k == 59 && s == 31) { return UInt64.max }
        return ((s + 1) << k) - 1
    }

    public mutating func record(_ v: UInt64) {
        counts[LatencyHistogram.index(v)] &+= 1
        total &+= 1
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for i in 0..<counts.count { counts[i] &+= other.counts[i] }
        total &+= other.total
    }

    /// The value at quantile q (0 < q <= 1): the upper bound of the bucket holding it; 0 when empty.
    public func quantile(_ q: Double) -> UInt64 {
        guard total > 0 else { return 0 }
        var rank = UInt64((Double(total) * q).rounded(.up))
        if rank < 1 { rank = 1 }
        if rank > total { rank = total }
        var seen: UInt64 = 0
        for i in 0..<counts.count {
            seen &+= counts[i]
            if seen >= rank { return LatencyHistogram.upperBound(i) }
        }
        return LatencyHistogram.upperBound(counts.count - 1)
    }
}

public struct Stats: Equatable, Sendable {
    public var calls: UInt64 = 0
    public var allowed: UInt64 = 0
    public var denied: UInt64 = 0
    public var errors = [UInt64](repeating: 0, count: Status.limit)
    public var reconnects: UInt64 = 0
    public var degraded: UInt64 = 0
    public var latency = LatencyHistogram()
    public init() {}
}
