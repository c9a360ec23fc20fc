// The configuration string: a Redis URL with hammer's options in its query.
//   redis://[[user]:password@]host[:port][/db][?opt=val&...]
//   rediss://... the same over TLS, with the ssl_* options of redis-py and Python's limits
//   unix:///path/to/redis.sock[?db=N&opt=val...]
//   memory://?expiry_ms=N[&clock=local]   no Redis: the state in the process (MemoryStore)

public enum Endpoint: Equatable, Sendable {
    case tcp(host: String, port: Int32)
    case unix(path: String)
}

public enum ClockSource: Equatable, Sendable {
    case local   // the library's clock (CLOCK_REALTIME)
    case redis   // Redis's TIME, read inside each script
}

public enum ErrorPolicy: Equatable, Sendable {
    case error, allow, deny
}

public enum TLSVersion: Equatable, Sendable {
    case tls12, tls13
}

/// TLS settings (rediss://). The defaults verify the server's chain against the system's trust store and its name
/// against the URL's host, and accept TLS 1.2 and later.
public struct TLSOptions: Equatable, Sendable {
    /// ssl_ca_certs: a PEM file of trusted CAs; ssl_ca_path: a directory of them (hashed names, c_rehash). With
    /// neither, the system's trust store.
    public var caFile: String? = nil
    public var caPath: String? = nil
    /// ssl_certfile / ssl_keyfile: a client certificate (chain) and its key (in the certificate's file when no key
    /// file is given).
    public var certFile: String? = nil
    public var keyFile: String? = nil
    /// ssl_cert_reqs=required (true) | none (false: nothing is verified; for tests only).
    public var verifyPeer: Bool = true
    /// ssl_check_hostname: the certificate must name the host (or ssl_server_name); false keeps the chain check.
    public var checkHostname: Bool = true
    /// ssl_server_name: the name sent as SNI and verified, instead of the URL's host (needed when the host is an IP
    /// address and the certificate names a host).
    public var serverName: String? = nil
    public var minVersion: TLSVersion = .tls12

    public init() {}
}

/// Redis Sentinel (redis+sentinel://): the sentinels to ask, in order, for the master of `service`.
public struct SentinelOptions: Equatable, Sendable {
    public var sentinels: [Endpoint]
    public var service: String
    /// sentinel_user / sentinel_password: the sentinels' own credentials (the URL's user and password are the data
    /// nodes').
    public var user: String? = nil
    public var password: String? = nil

    public init(sentinels: [Endpoint], service: String) {
        self.sentinels = sentinels
        self.service = service
    }
}

public struct Config: Equatable, Sendable {
    public var endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379)
    public var user: String? = nil
    public var password: String? = nil
    public var db: Int64 = 0
    /// TTL of count_hit's buckets; 0: not given (count_hit and count_hits then refuse to run, see countHitProblem).
    public var expiryMs: Int64 = 0
    public var prefix: [UInt8] = Array("Hammer:Redis:".utf8)
    public var connectTimeoutMs: Int64 = 1000
    public var timeoutMs: Int64 = 1000
    public var poolSize: Int = 8
    /// Microseconds a call polls its socket before it sleeps in read(): replies from a nearby Redis come in tens of
    /// microseconds, and a thread that sleeps through them pays a wake-up as long. 0: never poll.
    public var spinUs: Int64 = 100
    public var clock: ClockSource = .local
    public var onError: ErrorPolicy = .error
    public var localFallback: Bool = false
    /// delete_buckets also SCANs for buckets of the id that other clients (Hammer's Elixir backend) wrote without
    /// our index. Exact still, but its cost grows with the keyspace.
    public var scanDelete: Bool = false
    /// deny_cache=ENTRIES: denials kept in-process until Redis said a unit hit can pass (0: off). See DenyCache.
    public var denyCacheEntries: Int = 0
    /// hammer_open does not connect (lazy_connect=true): the first calls do, and while Redis cannot be reached
    /// on_error / fallback answer them, so a service can start while Redis is down. The URL and TLS files are
    /// still checked at open.
    public var lazyConnect: Bool = false
    /// TLS, for rediss:// URLs; nil for plain connections.
    public var tls: TLSOptions? = nil
    /// Sentinel, for redis+sentinel:// URLs: `endpoint` is then the first sentinel, and the master is found.
    public var sentinel: SentinelOptions? = nil
    /// The braced key layout <prefix>{<id>}:... (hash_tags=true; always on a cluster). See Keys, ClusterURL.
    public var hashTags: Bool = false
    var hashTagsGiven = false
    /// A cluster's seed nodes (redis+cluster://); empty for a single Redis.
    public var seeds: [Endpoint] = []
    public var isCluster: Bool { !seeds.isEmpty }
    /// memory://: no Redis; the handle keeps the state in the process.
    public var memory: Bool = false
    /// The options memory:// takes: the others tune a connection, a key layout or a policy for when Redis fails.
    public static let memoryOptions: Set<String> = ["expiry_ms", "clock"]

    public init() {}

    public static let maxExpiryMs: Int64 = 3_153_600_000_000      // 100 years
    public static let maxTimeoutMs: Int64 = 3_600_000              // 1 hour
    public static let maxPoolSize: Int64 = 1024
    public static let maxPrefixBytes = 1024
    public static let maxSpinUs: Int64 = 1000
    public static let maxPathBytes = 4096
    public static let maxDenyCacheEntries: Int64 = 10_000_000

    /// A description safe to print: never the password.
    public var redacted: String {
        switch endpoint {
        case let .tcp(host, port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "\(h):\(port)" + (tls == nil ? "" : " (TLS)")
        case let .unix(path):
            return "unix:\(path)"
        }
    }

    public static func parse(_ text: String) -> Result<Config, Failure> {
        parse(Array(text.utf8))
    }

    /// Parses the URL bytes. Messages name the part at fault and never echo a password.
    public static func parse(_ url: [UInt8]) -> Result<Config, Failure> {
        func bad(_ m: String) -> Result<Config, Failure> { .failure(Failure(.invalid, "config: " + m)) }
        var c = Config()
        let schemeEnd = find(url, Array("://".utf8), from: 0)
        guard let se = schemeEnd else {
            return bad("expected a URL starting with redis://, rediss://, unix:// or memory://")
        }
        let scheme = String(decoding: url[0..<se], as: UTF8.self).lowercased()
        if scheme == "redis+cluster" || scheme == "rediss+cluster" {
            return parseCluster(url, schemeEnd: se, tls: scheme == "rediss+cluster")
        }
        var rest = Array(url[(se + 3)...])
        // A password may hold raw '?', '&' or '=' that end up read as the query: when the URL may carry a secret,
        // messages quote none of its text.
        let mayHoldSecret = rest.contains(64) || find(url, Array("password".utf8), from: 0) != nil
        func quote(_ b: [UInt8]) -> String { mayHoldSecret ? "(not shown: the URL may hold a password)" : "'\(clip(b))'" }
        if rest.contains(35) { return bad("a '#' fragment is not allowed") }
        var query: [UInt8] = []
        if let q = rest.firstIndex(of: 63) {
            query = Array(rest[(q + 1)...])
            rest = Array(rest[..<q])
        }
        var dbGiven = false
        switch scheme {
        case "redis", "rediss", "redis+sentinel", "rediss+sentinel":
            if scheme.hasPrefix("rediss") { c.tls = TLSOptions() }
            var hostport = rest
            var pathPart: [UInt8] = []
            if let slash = rest.firstIndex(of: 47) {
                hostport = Array(rest[..<slash])
                pathPart = Array(rest[(slash + 1)...])
            }
            if let at = hostport.lastIndex(of: 64) {
                let userinfo = Array(hostport[..<at])
                hostport = Array(hostport[(at + 1)...])
                if let colon = userinfo.firstIndex(of: 58) {
                    let u = Array(userinfo[..<colon])
                    let p = Array(userinfo[(colon + 1)...])
                    guard let ud = percentDecode(u) else { return bad("bad percent-encoding in the user name") }
                    guard let pd = percentDecode(p) else { return bad("bad percent-encoding in the password") }
                    c.user = ud.isEmpty ? nil : ud
                    c.password = pd.isEmpty ? nil : pd
                } else {
                    // "redis://secret@host": a lone userinfo is the password, as in redis-cli and most clients.
                    guard let pd = percentDecode(userinfo) else { return bad("bad percent-encoding in the password") }
                    c.password = pd.isEmpty ? nil : pd
                }
                if c.password?.utf8.contains(0) == true || c.user?.utf8.contains(0) == true {
                    return bad("user and password may not contain NUL")
                }
            }
            let sentinel = scheme.hasSuffix("+sentinel")
            var hosts: [Endpoint] = []
            let parts = hostport.split(separator: 44, omittingEmptySubsequences: false)
            if parts.count > 1 && parts.contains(where: { $0.isEmpty }) { return bad("an empty host in the host list") }
            for one in parts {
                switch hostAndPort(Array(one), defaultPort: sentinel ? 26379 : 6379) {
                case let .failure(f): return .failure(f)
                case let .success(e): hosts.append(e)
                }
            }
            guard let first = hosts.first else { return bad("no host") }
            if hosts.count > 1 && !sentinel { return bad("several hosts are for redis+sentinel:// only") }
            if hosts.count > 16 { return bad("at most 16 sentinels") }
            c.endpoint = first
            if sentinel {
                // /service_name[/db]
                var service = pathPart
                if let slash = pathPart.firstIndex(of: 47) {
                    service = Array(pathPart[..<slash])
                    pathPart = Array(pathPart[(slash + 1)...])
                } else {
                    pathPart = []
                }
                guard let name = percentDecode(service), !name.isEmpty, name.utf8.count <= 256,
                      name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                    return bad("redis+sentinel:// needs the service name as the path: redis+sentinel://host:26379/mymaster")
                }
                c.sentinel = SentinelOptions(sentinels: hosts, service: name)
            }
            if !pathPart.isEmpty {
                guard let d = Decimal.parse(pathPart), d >= 0, d <= 1_000_000, pathPart.first != 45 else {
                    return bad("the path must be a database number (/0, /1, ...)")
                }
                c.db = d
                dbGiven = true
            }
        case "unix":
            guard let path = percentDecode(rest), path.hasPrefix("/"), path.utf8.count > 1 else {
                return bad("unix:// needs an absolute socket path, as unix:///path/to/redis.sock")
            }
            if path.utf8.contains(0) { return bad("socket path may not contain NUL") }
            if path.utf8.count > 107 { return bad("socket path is longer than 107 bytes") }
            c.endpoint = .unix(path: path)
        case "memory":
            if !rest.isEmpty { return bad("memory:// takes no host or path (memory://?expiry_ms=60000)") }
            c.memory = true
        default:
            let plain = scheme.utf8.allSatisfy { isAlnum($0) || $0 == 43 || $0 == 45 || $0 == 46 }
            return bad("unknown scheme \(plain && !mayHoldSecret ? "'" + String(scheme.prefix(16)) + "'" : "(not shown)"); use redis://, rediss://, redis+sentinel:// or unix://")
        }

        var seen: Set<String> = []
        var tls = TLSOptions()
        var sslGiven = false
        for pair in query.split(separator: 38, omittingEmptySubsequences: true) {
            let p = Array(pair)
            guard let eq = p.firstIndex(of: 61) else {
                return bad("option \(quote(p)) has no value (use name=value)")
            }
            let name = String(decoding: p[..<eq], as: UTF8.self)
            guard let value = percentDecode(Array(p[(eq + 1)...])) else {
                return bad("bad percent-encoding in option \(quote(Array(name.utf8)))")
            }
            let canonical = name == "username" ? "user" : name
            if seen.contains(canonical) { return bad("option \(quote(Array(name.utf8))) is given twice") }
            seen.insert(canonical)
            func number(_ lo: Int64, _ hi: Int64) -> Int64? {
                guard let v = Decimal.parse(value), v >= lo, v <= hi else { return nil }
                return v
            }
            switch name {
            case "expiry_ms":
                guard let v = number(1, maxExpiryMs) else {
                    return bad("expiry_ms must be a whole number of milliseconds from 1 to \(maxExpiryMs)")
                }
                c.expiryMs = v
            case "prefix":
                let b = Array(value.utf8)
                if b.count > maxPrefixBytes { return bad("prefix is longer than \(maxPrefixBytes) bytes") }
                c.prefix = b
            case "connect_timeout_ms":
                guard let v = number(1, maxTimeoutMs) else {
                    return bad("connect_timeout_ms must be from 1 to \(maxTimeoutMs)")
                }
                c.connectTimeoutMs = v
            case "timeout_ms":
                guard let v = number(1, maxTimeoutMs) else { return bad("timeout_ms must be from 1 to \(maxTimeoutMs)") }
                c.timeoutMs = v
            case "pool_size":
                guard let v = number(1, maxPoolSize) else { return bad("pool_size must be from 1 to \(maxPoolSize)") }
                c.poolSize = Int(v)
            case "spin_us":
                guard let v = number(0, maxSpinUs) else { return bad("spin_us must be from 0 to \(maxSpinUs)") }
                c.spinUs = v
            case "db":
                guard let v = number(0, 1_000_000) else { return bad("db must be a database number") }
                if dbGiven && v != c.db { return bad("db is given both in the path and as an option") }
                c.db = v
            case "password":
                if value.utf8.contains(0) { return bad("password may not contain NUL") }
                c.password = value.isEmpty ? nil : value
            case "user", "username":
                if value.utf8.contains(0) { return bad("user may not contain NUL") }
                c.user = value.isEmpty ? nil : value
            case "clock":
                switch value {
                case "local": c.clock = .local
                case "redis": c.clock = .redis
                default: return bad("clock must be local or redis")
                }
            case "on_error":
                switch value {
                case "error": c.onError = .error
                case "allow": c.onError = .allow
                case "deny": c.onError = .deny
                default: return bad("on_error must be error, allow or deny")
                }
            case "fallback":
                switch value {
                case "none": c.localFallback = false
                case "local": c.localFallback = true
                default: return bad("fallback must be none or local")
                }
            case "deny_cache":
                guard let v = number(0, maxDenyCacheEntries) else {
                    return bad("deny_cache must be a number of entries from 0 (off) to \(maxDenyCacheEntries)")
                }
                c.denyCacheEntries = Int(v)
            case "scan_delete":
                switch value {
                case "0", "false", "no": c.scanDelete = false
                case "1", "true", "yes": c.scanDelete = true
                default: return bad("scan_delete must be true or false")
                }
            case "lazy_connect":
                switch value {
                case "0", "false", "no": c.lazyConnect = false
                case "1", "true", "yes": c.lazyConnect = true
                default: return bad("lazy_connect must be true or false")
                }
            case "sentinel_password", "sentinel_user":
                guard c.sentinel != nil else { return bad("\(name) needs a redis+sentinel:// URL") }
                if value.utf8.contains(0) { return bad("\(name) may not contain NUL") }
                if name == "sentinel_user" { c.sentinel?.user = value.isEmpty ? nil : value }
                else { c.sentinel?.password = value.isEmpty ? nil : value }
            case "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile":
                if value.isEmpty || value.utf8.contains(0) || value.utf8.count > maxPathBytes {
                    return bad("\(name) must be a path (at most \(maxPathBytes) bytes, no NUL)")
                }
                switch name {
                case "ssl_ca_certs": tls.caFile = value
                case "ssl_ca_path": tls.caPath = value
                case "ssl_certfile": tls.certFile = value
                default: tls.keyFile = value
                }
                sslGiven = true
            case "ssl_cert_reqs":
                switch value.lowercased() {
                case "required": tls.verifyPeer = true
                case "none": tls.verifyPeer = false
                default: return bad("ssl_cert_reqs must be required or none")
                }
                sslGiven = true
            case "ssl_check_hostname":
                switch value.lowercased() {
                case "1", "true", "yes": tls.checkHostname = true
                case "0", "false", "no": tls.checkHostname = false
                default: return bad("ssl_check_hostname must be true or false")
                }
                sslGiven = true
            case "ssl_server_name":
                let b = Array(value.utf8)
                if b.isEmpty || b.count > 253 || !b.allSatisfy({ isAlnum($0) || $0 == 45 || $0 == 46 || $0 == 95 }) {
                    return bad("ssl_server_name must be a host name")
                }
                tls.serverName = value
                sslGiven = true
            case "ssl_min_version":
                switch value.lowercased() {
                case "tlsv1.2", "tlsv1_2": tls.minVersion = .tls12
                case "tlsv1.3", "tlsv1_3": tls.minVersion = .tls13
                default: return bad("ssl_min_version must be TLSv1.2 or TLSv1.3")
                }
                sslGiven = true
            case "hash_tags":
                switch value {
                case "0", "false", "no": c.hashTags = false
                case "1", "true", "yes": c.hashTags = true
                default: return bad("hash_tags must be true or false")
                }
                c.hashTagsGiven = true
            default:
                return bad("unknown option \(quote(Array(name.utf8)))")
            }
        }
        if c.memory {
            if let other = seen.subtracting(memoryOptions).sorted().first {
                return bad("memory:// takes only expiry_ms and clock=local; option \(quote(Array(other.utf8))) means nothing without Redis")
            }
            if c.clock == .redis { return bad("memory:// has no Redis clock: clock must be local") }
        }
        if sslGiven {
            guard c.tls != nil else { return bad("ssl_* options need a rediss:// URL (TLS)") }
            if tls.keyFile != nil && tls.certFile == nil { return bad("ssl_keyfile needs ssl_certfile") }
            c.tls = tls
        }
        if let st = c.sentinel, st.user != nil && st.password == nil {
            return bad("sentinel_user needs sentinel_password")
        }
        if c.user != nil && c.password == nil {
            return bad("a user name needs a password (redis://user:password@host)")
        }
        if let m = c.prefixTagProblem { return bad(m) }
        return .success(c)
    }

    /// Why count_hit cannot run with this configuration, or nil: only count_hit needs expiry_ms (the TTL of its
    /// buckets), so a URL for the other calls may leave it out.
    public var countHitProblem: String? {
        expiryMs > 0 ? nil
            : "count_hit needs expiry_ms in the URL (e.g. ?expiry_ms=7200000: the TTL of its buckets, as in Hammer's "
              + "Redis backend)"
    }

    /// One `host[:port]` (IPv6 in brackets) of a URL.
    public static func hostAndPort(_ hostport: [UInt8], defaultPort: Int64) -> Result<Endpoint, Failure> {
        func bad(_ m: String) -> Result<Endpoint, Failure> { .failure(Failure(.invalid, "config: " + m)) }
        var host: String
        var portText: [UInt8]? = nil
        if hostport.first == 91 {  // '[' IPv6 literal
            guard let close = hostport.firstIndex(of: 93) else { return bad("IPv6 host has no closing ']'") }
            host = String(decoding: hostport[1..<close], as: UTF8.self)
            let after = hostport[(close + 1)...]
            if !after.isEmpty {
                guard after.first == 58 else { return bad("unexpected text after the IPv6 host") }
                portText = Array(after.dropFirst())
            }
            if host.isEmpty || !host.utf8.allSatisfy({ isHex($0) || $0 == 58 || $0 == 46 }) {
                return bad("bad IPv6 host")
            }
        } else {
            if let colon = hostport.firstIndex(of: 58) {
                host = String(decoding: hostport[..<colon], as: UTF8.self)
                portText = Array(hostport[(colon + 1)...])
            } else {
                host = String(decoding: hostport, as: UTF8.self)
            }
            if host.isEmpty { host = "127.0.0.1" }
            if !host.utf8.allSatisfy({ isAlnum($0) || $0 == 45 || $0 == 46 || $0 == 95 }) {
                return bad("bad host name")
            }
        }
        var port: Int64 = defaultPort
        if let pt = portText {
            guard let p = Decimal.parse(pt), p >= 1, p <= 65535, pt.first != 45 else {
                return bad("port must be a number from 1 to 65535")
            }
            port = p
        }
        return .success(.tcp(host: host, port: Int32(port)))
    }

    static func clip(_ b: [UInt8]) -> String {
        let s = String(decoding: b.prefix(40), as: UTF8.self)
        return b.count > 40 ? s + "..." : s
    }

    static func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
    }

    static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        guard hay.count >= needle.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Decodes %XX escapes; nil on a malformed escape or bytes that are not UTF-8.
    public static func percentDecode(_ b: [UInt8]) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if b[i] == 37 {
                guard i + 2 < b.count, let h = hexValue(b[i + 1]), let l = hexValue(b[i + 2]) else { return nil }
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }
}
