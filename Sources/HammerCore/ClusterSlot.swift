// Redis Cluster's key-to-slot rule (src/cluster.c keyHashSlot): CRC16-XMODEM of the key's hash tag, modulo 16384.
// The tag is the text between the first '{' and the first '}' after it, when that text is not empty; otherwise the
// whole key is hashed.

public enum ClusterSlot {
    public static let count = 16384

    /// CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection, no final xor): "123456789" -> 0x31C3.
    static let table: [UInt16] = (0..<256).map { i in
        var crc = UInt16(i) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = (crc << 8) ^ t[Int((crc >> 8) ^ UInt16(b))] }
        }
        return crc
    }

    /// The slot of a key, with the hash-tag rule.
    public static func of<C: Collection>(_ key: C) -> Int where C.Element == UInt8 {
        if let open = key.firstIndex(of: 123) {
            let after = key.index(after: open)
            if let close = key[after...].firstIndex(of: 125), close != after {
                return Int(crc16(key[after..<close]) & 0x3FFF)
            }
        }
        return Int(crc16(key) & 0x3FFF)
    }

    /// The slot of every key of `id` in the braced layout (<prefix>{<id>}:...), computed from the id alone: the
    /// prefix holds no '{' (Config refuses one with hash tags), so the tag is the id up to its first '}'.
    public static func ofId(_ id: UnsafeBufferPointer<UInt8>) -> Int {
        let end = id.firstIndex(of: 125) ?? id.count
        return Int(crc16(UnsafeBufferPointer(rebasing: id[0..<end])) & 0x3FFF)
    }
}
