// The arguments of one command, built in place without allocating.
import HammerCore

/// Arguments of one command, packed in one byte buffer; reused call after call so the hot path does not allocate.
struct Args {
    var bytes: [UInt8] = []
    var ends: [Int] = []

    init() {
        bytes.reserveCapacity(1024)
        ends.reserveCapacity(16)
    }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }
    mutating func add(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        ends.append(bytes.count)
    }
    mutating func add(_ b: [UInt8]) { bytes.append(contentsOf: b); ends.append(bytes.count) }
    mutating func add(_ v: Int64) { Decimal.append(v, to: &bytes); ends.append(bytes.count) }
    /// Opens an argument built in pieces: append to `bytes`, then call `end()`.
    mutating func end() { ends.append(bytes.count) }
    var count: Int { ends.count }

    /// The argument `i`'s bytes.
    func arg(_ i: Int) -> ArraySlice<UInt8> { bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]] }
}
