// Redis key layout, the one Hammer's Elixir Redis backend uses for its buckets:
//   <prefix><id>:<bucket>   a fixed-window bucket: hash {count, created, updated}
//   <prefix><id>:index      sorted set of the id's bucket numbers (score: when the bucket expires, on Redis's clock),
//                           kept by our scripts so that delete_buckets is exact and costs what the id owns, not what
//                           the keyspace holds
//   <prefix><id>:sw ...     state of the other algorithms (see stateSuffixes)
//   <prefix><id>:tb.10.1000.20 ...
//                           a limit's state of its own in hammer_hit_all (MultiLimit.ownStates): the state word, then
//                           the limit, period_ms and capacity in decimal, '.' between (ownSuffix); a fixed window's
//                           own buckets fw.<limit>.<period_ms>.<capacity>.<window>; listed in the index (scored as
//                           the buckets are) so that delete_buckets finds them
// Every suffix is a decimal integer, a fixed word, or a word and three or four decimals joined by '.', none with ':',
// so the split at the last ':' is unique and no id's keys can be another id's keys.
// With hash tags (a cluster, or hash_tags=true) the id is braced, <prefix>{<id>}:<suffix>, so that every key of an
// id hashes to one slot and each script stays on one node (Redis's rule: see ClusterSlot).

public enum Keys {
    public static let indexSuffix: [UInt8] = Array("index".utf8)

    /// Appends prefix + id + ":" to `out` (prefix + "{" + id + "}:" with `tags`): every key of `id` starts so.
    @inline(__always)
    public static func appendIdBase(prefix: [UInt8], id: UnsafeBufferPointer<UInt8>, tags: Bool = false,
                                    to out: inout [UInt8]) {
        out.append(contentsOf: prefix)
        if tags { out.append(123) }
        out.append(contentsOf: id)
        if tags { out.append(125) }
        out.append(58)
    }

    public static func bucket(prefix: [UInt8], id: [UInt8], bucket: Int64, tags: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        id.withUnsafeBufferPointer { appendIdBase(prefix: prefix, id: $0, tags: tags, to: &out) }
        Decimal.append(bucket, to: &out)
        return out
    }

    public static func index(prefix: [UInt8], id: [UInt8], tags: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        id.withUnsafeBufferPointer { appendIdBase(prefix: prefix, id: $0, tags: tags, to: &out) }
        out.append(contentsOf: indexSuffix)
        return out
    }

    /// Escapes a byte string for a Redis glob (MATCH): every *, ?, [, ] and \ gets a backslash.
    public static func globEscape(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        for c in b {
            if c == 42 || c == 63 || c == 91 || c == 93 || c == 92 { out.append(92) }
            out.append(c)
        }
        return out
    }

    /// For a key found by SCAN: is it exactly a bucket of `id` (its base, then a decimal)?
    public static func isBucketKey(_ key: [UInt8], prefix: [UInt8], id: [UInt8], tags: Bool = false) -> Bool {
        var base: [UInt8] = []
        id.withUnsafeBufferPointer { appendIdBase(prefix: prefix, id: $0, tags: tags, to: &base) }
        guard key.count > base.count, key.starts(with: base) else { return false }
        return Decimal.parse(key[base.count...]) != nil
    }

    /// Why an id cannot have the braced layout, or nil. Redis hashes a whole key whose tag is empty, so an empty id
    /// or one starting with '}' would spread its keys over several slots.
    public static func tagProblem(id: UnsafeBufferPointer<UInt8>) -> String? {
        if id.isEmpty { return "an empty id cannot be used with hash tags (a cluster or hash_tags=true)" }
        if id[0] == 125 { return "an id starting with '}' cannot be used with hash tags (a cluster or hash_tags=true)" }
        return nil
    }
}

extension Keys {
    /// Suffixes of the per-id limiter state of the other algorithms, in the order delete_buckets takes them.
    public static let stateSuffixes: [[UInt8]] = ["sw", "swm", "tb", "lb", "gcra", "swc"].map { Array($0.utf8) }

    /// How many keys a decision of `a` passes in KEYS (lua/*.lua): the fixed window its bucket and the index, the
    /// sliding window its log and meta, the others their state.
    public static func decisionKeyCount(_ a: Algorithm) -> Int {
        switch a {
        case .fixedWindow, .slidingWindow: return 2
        case .tokenBucket, .leakyBucket, .gcra, .slidingCounter: return 1
        }
    }

    /// The suffixes of the keys a decision of `a` passes in KEYS, after the id's base, in the order lua/*.lua take
    /// them. The fixed window's are its window's number (or nothing with Redis's clock: the script completes the key)
    /// and the index: see Handle.appendDecisionKeys.
    public static let slidingKeys = [stateSuffixes[0], stateSuffixes[1]]
    public static let tokenBucketKeys = [stateSuffixes[2]]
    public static let leakyBucketKeys = [stateSuffixes[3]]
    public static let gcraKeys = [stateSuffixes[4]]
    /// The sliding counter's hash: one field a period, so counters of several periods of one id coexist.
    public static let slidingCounterKeys = [stateSuffixes[5]]

    /// The suffixes of a decision's state keys (not the fixed window's), as decisionKeys lists them.
    public static func stateKeys(_ a: Algorithm) -> [[UInt8]] {
        switch a {
        case .fixedWindow: return []
        case .slidingWindow: return slidingKeys
        case .tokenBucket: return tokenBucketKeys
        case .leakyBucket: return leakyBucketKeys
        case .gcra: return gcraKeys
        case .slidingCounter: return slidingCounterKeys
        }
    }

    /// A state key of a limit of its own (MultiLimit.ownStates): word.limit.period_ms.capacity.
    public static func ownSuffix(_ word: [UInt8], _ l: Limit) -> [UInt8] {
        var out = word
        for v in [l.limit, l.periodMs, l.capacity] {
            out.append(46)
            Decimal.append(v, to: &out)
        }
        return out
    }

    /// The word of a fixed window's buckets of its own: fw.limit.period_ms.capacity.window.
    public static let ownBucketWord: [UInt8] = Array("fw".utf8)

    /// Is an index member the suffix of a state of its own (ownSuffix's form: one of stateSuffixes then three runs
    /// of 1 to 19 digits, or fw then four, each after a '.')? Only those and bucket numbers name keys of the id:
    /// anything else in the index (another client's) names nothing. lua/delete_buckets.lua tests the same form.
    public static func isOwnSuffix<C: Collection>(_ m: C) -> Bool where C.Element == UInt8 {
        let parts = m.split(separator: 46, omittingEmptySubsequences: false)
        guard let word = parts.first else { return false }
        if word.elementsEqual(ownBucketWord) {
            guard parts.count == 5 else { return false }
        } else {
            guard parts.count == 4, stateSuffixes.contains(where: { $0.elementsEqual(word) }) else { return false }
        }
        return parts.dropFirst().allSatisfy { p in
            !p.isEmpty && p.count <= 19 && p.allSatisfy { (48...57).contains($0) }
        }
    }
}

/// The shard (0 ..< 2^bits) of in-process state that holds an id: FNV-1a over its bytes, mixed (MurmurHash3's
/// finalizer) so that ids differing only in their last bytes spread over every shard.
@inline(__always) public func shardIndex(_ b: UnsafeBufferPointer<UInt8>, bits: Int) -> Int {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for x in b { h = (h ^ UInt64(x)) &* 0x0000_0100_0000_01B3 }
    h ^= h >> 33
    h &*= 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    h &*= 0xC4CE_B9FE_1A85_EC53
    h ^= h >> 33
    return Int(truncatingIfNeeded: h >> UInt64(64 - bits))
}
