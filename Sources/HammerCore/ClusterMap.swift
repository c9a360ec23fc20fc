// The cluster's slot map: which master serves each of the 16384 slots, read from CLUSTER SHARDS (Redis 7) or
// CLUSTER SLOTS (older servers, and the fallback). Every value comes from the network, so each is checked: a reply
// that does not make sense is refused whole rather than half-used.

/// A reply tree, decoded from hiredis by the library, so the parsing here is testable without Redis.
public indirect enum RedisValue: Equatable, Sendable {
    case integer(Int64)
    case bulk([UInt8])
    case array([RedisValue])
    case null
    case error([UInt8])
}

public struct NodeAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int32
    public init(host: String, port: Int32) {
        self.host = host
        self.port = port
    }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct SlotMap: Equatable, Sendable {
    /// The masters, each once.
    public var nodes: [NodeAddress] = []
    /// For each slot, an index into nodes, or -1 when no master serves it.
    public var owner: [Int16] = Array(repeating: -1, count: ClusterSlot.count)

    public init() {}

    public func node(ofSlot s: Int) -> NodeAddress? {
        guard s >= 0, s < ClusterSlot.count else { return nil }
        let i = Int(owner[s])
        return i >= 0 && i < nodes.count ? nodes[i] : nil
    }

    /// Index of `a` in nodes, added if new.
    public mutating func intern(_ a: NodeAddress) -> Int {
        if let i = nodes.firstIndex(of: a) { return i }
        nodes.append(a)
        return nodes.count - 1
    }

    /// Serves `slot` from `a` (a MOVED: the slot changed hands).
    public mutating func assign(slot: Int, to a: NodeAddress) {
        guard slot >= 0, slot < ClusterSlot.count, nodes.count < Int(Int16.max) else { return }
        owner[slot] = Int16(intern(a))
    }

    public var coveredSlots: Int { owner.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// CLUSTER SHARDS: [ [ "slots", [lo, hi, ...], "nodes", [ [ "id", .., "port", p, "tls-port", p, "ip", ..,
    /// "endpoint", .., "hostname", .., "role", "master", "health", "online", ... ], ... ] ], ... ].
    /// `seedHost` stands in for an endpoint of "?" (unknown) and "" (the seed's own address). With `tls` the node's
    /// tls-port is used.
    public static func parseShards(_ v: RedisValue, seedHost: String, tls: Bool = false) -> Result<SlotMap, Failure> {
        func bad(_ m: String) -> Result<SlotMap, Failure> { .failure(Failure(.protocol, "CLUSTER SHARDS: " + m)) }
        guard case let .array(shards) = v else { return bad("expected an array") }
        var map = SlotMap()
        for shard in shards {
            guard let fields = pairs(shard) else { return bad("a shard is not a list of name/value pairs") }
            guard case let .array(ranges)? = fields["slots"], ranges.count % 2 == 0 else {
                return bad("a shard's slots are not pairs of numbers")
            }
            guard case let .array(members)? = fields["nodes"] else { return bad("a shard has no nodes") }
            var master: NodeAddress? = nil
            for m in members {
                guard let nf = pairs(m) else { return bad("a node is not a list of name/value pairs") }
                guard text(nf["role"]) == "master" else { continue }
                if let h = text(nf["health"]), h != "online" { continue }
                // The port for our kind of connection; a TLS-only node (port 0) lists only its tls-port.
                let portField = (tls ? nf["tls-port"] : nf["port"]) ?? nf["port"] ?? nf["tls-port"]
                guard case let .integer(p)? = portField, p >= 1, p <= 65535 else { continue }
                var host = text(nf["endpoint"]) ?? text(nf["ip"]) ?? ""
                if host == "?" || host.isEmpty { host = text(nf["ip"]) ?? "" }
                if host == "?" || host.isEmpty { host = seedHost }
                guard validHost(host) else { return bad("a node's address is not a host name or IP") }
                master = NodeAddress(host: host, port: Int32(p))
                break
            }
            if ranges.isEmpty { continue }
            guard let master else { continue }   // a shard whose master is down: its slots stay unserved
            if let f = map.fill(ranges, master) { return bad(f) }
        }
        return .success(map)
    }

    /// CLUSTER SLOTS: [ [lo, hi, [host, port, id, ...], replicas...], ... ] (the first node is the master).
    public static func parseSlots(_ v: RedisValue, seedHost: String) -> Result<SlotMap, Failure> {
        func bad(_ m: String) -> Result<SlotMap, Failure> { .failure(Failure(.protocol, "CLUSTER SLOTS: " + m)) }
        guard case let .array(entries) = v else { return bad("expected an array") }
        var map = SlotMap()
        for e in entries {
            guard case let .array(f) = e, f.count >= 3, case let .array(node) = f[2], node.count >= 2,
                  case let .integer(p) = node[1], p >= 1, p <= 65535 else {
                return bad("an entry is not [first, last, [host, port, ...], ...]")
            }
            var host = text(node[0]) ?? ""
            if host.isEmpty || host == "?" { host = seedHost }
            guard validHost(host) else { return bad("a node's address is not a host name or IP") }
            if let f = map.fill([f[0], f[1]], NodeAddress(host: host, port: Int32(p))) { return bad(f) }
        }
        return .success(map)
    }

    /// Assigns the ranges [lo, hi, lo, hi, ...] to `a`; an error text when a bound is not a slot.
    mutating func fill(_ ranges: [RedisValue], _ a: NodeAddress) -> String? {
        var i = 0
        while i + 1 < ranges.count {
            guard case let .integer(lo) = ranges[i], case let .integer(hi) = ranges[i + 1],
                  lo >= 0, hi < ClusterSlot.count, lo <= hi else { return "a slot range is out of 0...16383" }
            guard nodes.count < Int(Int16.max) else { return "too many nodes" }
            let n = Int16(intern(a))
            for s in Int(lo)...Int(hi) { owner[s] = n }
            i += 2
        }
        return nil
    }

    static func pairs(_ v: RedisValue) -> [String: RedisValue]? {
        guard case let .array(a) = v, a.count % 2 == 0 else { return nil }
        var out: [String: RedisValue] = [:]
        var i = 0
        while i < a.count {
            guard let k = text(a[i]) else { return nil }
            out[k] = a[i + 1]
            i += 2
        }
        return out
    }

    static func text(_ v: RedisValue?) -> String? {
        guard case let .bulk(b)? = v else { return nil }
        return String(validating: b, as: UTF8.self)
    }

    /// A host name or an IP literal, as Config accepts them.
    public static func validHost(_ h: String) -> Bool {
        guard !h.isEmpty, h.utf8.count <= 255 else { return false }
        return h.utf8.allSatisfy { Config.isAlnum($0) || $0 == 45 || $0 == 46 || $0 == 95 || $0 == 58 }
    }
}
