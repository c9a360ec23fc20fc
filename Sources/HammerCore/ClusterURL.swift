// The cluster URL, as Python's limits writes it:
//   redis+cluster://[[user]:password@]host:port[,host:port...][/0][?opt=val&...]
//   rediss+cluster://...   the same over TLS to every node (the ssl_* options of rediss://)
// The seeds are only where the slot map is first read (one reachable seed is enough; a cloud's configuration
// endpoint is one). Everything else is the redis:// URL's, so it is parsed by Config.parse on the URL rewritten
// (or rediss://) with the first seed; the cluster adds its facts: one database (0), and the braced key layout, always.

extension Config {
    static func parseCluster(_ url: [UInt8], schemeEnd se: Int, tls: Bool) -> Result<Config, Failure> {
        func bad(_ m: String) -> Result<Config, Failure> { .failure(Failure(.invalid, "config: " + m)) }
        let rest = Array(url[(se + 3)...])
        let authEnd = rest.firstIndex(where: { $0 == 47 || $0 == 63 }) ?? rest.count
        let authority = Array(rest[..<authEnd])
        var userinfo: [UInt8] = []
        var hostlist = authority
        if let at = authority.lastIndex(of: 64) {
            userinfo = Array(authority[...at])
            hostlist = Array(authority[(at + 1)...])
        }
        var seeds: [Endpoint] = []
        for part in hostlist.split(separator: 44, omittingEmptySubsequences: false) {
            guard let e = seed(Array(part)) else {
                return bad("each cluster seed must be host:port (IPv6 as [addr]:port), separated by ','")
            }
            if !seeds.contains(e) { seeds.append(e) }
        }
        guard case let .tcp(host, port)? = seeds.first else { return bad("a cluster URL needs at least one host:port") }
        let first = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let single = Array((tls ? "rediss://" : "redis://").utf8) + userinfo + Array(first.utf8) + Array(rest[authEnd...])
        switch parse(single) {
        case let .failure(f): return .failure(f)
        case var .success(c):
            if c.db != 0 { return bad("a cluster has one database: db must be 0") }
            if c.hashTagsGiven && !c.hashTags { return bad("hash_tags cannot be false on a cluster") }
            c.seeds = seeds
            c.hashTags = true
            if let m = c.prefixTagProblem { return bad(m) }
            return .success(c)
        }
    }

    /// One seed: host:port, [v6]:port, or a host alone (port 6379).
    static func seed(_ b: [UInt8]) -> Endpoint? {
        var host: [UInt8]
        var port: Int64 = 6379
        if b.first == 91 {
            guard let close = b.firstIndex(of: 93) else { return nil }
            host = Array(b[1..<close])
            let after = b[(close + 1)...]
            if !after.isEmpty {
                guard after.first == 58, let p = Decimal.parse(after.dropFirst()), after.dropFirst().first != 45
                else { return nil }
                port = p
            }
        } else {
            host = b
            if let colon = b.firstIndex(of: 58) {
                host = Array(b[..<colon])
                let pt = b[(colon + 1)...]
                guard let p = Decimal.parse(pt), pt.first != 45 else { return nil }
                port = p
            }
        }
        guard port >= 1, port <= 65535, let h = String(validating: host, as: UTF8.self), SlotMap.validHost(h)
        else { return nil }
        return .tcp(host: h, port: Int32(port))
    }

    /// With hash tags, the prefix may hold no '{' or '}': Redis would take a brace in the prefix as the tag, and
    /// every id would hash to the prefix's slot (or to slots that split an id's keys).
    var prefixTagProblem: String? {
        guard hashTags, prefix.contains(123) || prefix.contains(125) else { return nil }
        return "with hash tags (a cluster or hash_tags=true) the prefix may not contain '{' or '}'"
    }
}
