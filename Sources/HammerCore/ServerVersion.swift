// The server behind a handle as `INFO server` describes it, and whether the library can work with it: Redis 6.2 or
// later (its scripts use what 6.2 has), Valkey (a fork of Redis 7.2), or a Redis-compatible server that reports a
// redis_version of 6.2 or later and has every command the library sends. Checked once, at open, so that an
// unsupported server is refused then, with what was found and what is needed, and never fails a first call with a
// script error. Pure: Sources/Hammer/ServerCheck.swift sends the commands and hands the replies here.

public struct ServerVersion: Equatable, Sendable {
    /// major.minor.patch; components absent from the text are 0.
    public struct Number: Comparable, Sendable, CustomStringConvertible {
        public var major: Int
        public var minor: Int
        public var patch: Int
        public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
            self.major = major
            self.minor = minor
            self.patch = patch
        }

        /// "6.2.14", "7.2.4", "255.255.255" (an unstable build); a suffix after the numbers ("7.4.0-rc1") is ignored.
        /// nil when the text does not start with a number, or a component is absurdly long.
        public static func parse<S: Sequence>(_ text: S) -> Number? where S.Element == UInt8 {
            var parts: [Int] = []
            var current = -1
            for c in text {
                if c >= 0x30 && c <= 0x39 {
                    current = max(current, 0)
                    if current > 99_999 { return nil }
                    current = current * 10 + Int(c - 0x30)
                } else if c == 0x2E && current >= 0 && parts.count < 2 {   // '.'
                    parts.append(current)
                    current = -1
                } else {
                    break
                }
            }
            if current >= 0 { parts.append(current) }
            guard let major = parts.first else { return nil }
            return Number(major, parts.count > 1 ? parts[1] : 0, parts.count > 2 ? parts[2] : 0)
        }

        public static func < (a: Number, b: Number) -> Bool {
            (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
        }

        public var description: String { "\(major).\(minor).\(patch)" }
    }

    /// "Redis", "Valkey", or the server_name of another Redis-compatible server.
    public var name: String
    /// The server's own version (valkey_version on Valkey).
    public var version: Number
    /// The Redis release whose commands it has (redis_version; Valkey reports 7.2.4).
    public var redisVersion: Number

    public init(name: String, version: Number, redisVersion: Number) {
        self.name = name
        self.version = version
        self.redisVersion = redisVersion
    }

    /// The oldest Redis the scripts run on.
    public static let minimum = Number(6, 2, 0)

    /// "Redis 6.2.14", "Valkey 9.1.2".
    public var description: String { "\(name) \(version)" }

    /// From the text of `INFO server` (lines `field:value`, CRLF or LF, `# Section` headers): nil when it names no
    /// redis_version (a proxy, or not a Redis: nothing to judge by).
    public static func parse(info: [UInt8]) -> ServerVersion? {
        var redis: Number?
        var valkey: Number?
        var serverName: String?
        for line in info.split(separator: 0x0A, omittingEmptySubsequences: true) {
            var l = line[...]
            if l.last == 0x0D { l = l.dropLast() }
            guard let colon = l.firstIndex(of: 0x3A) else { continue }
            let key = l[l.startIndex..<colon]
            let value = l[(colon + 1)...]
            if key.elementsEqual("redis_version".utf8) {
                redis = Number.parse(value)
            } else if key.elementsEqual("valkey_version".utf8) {
                valkey = Number.parse(value)
            } else if key.elementsEqual("server_name".utf8), value.count <= 64,
                      value.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                serverName = String(decoding: value, as: UTF8.self)
            }
        }
        guard let redis else { return nil }
        if let valkey { return ServerVersion(name: "Valkey", version: valkey, redisVersion: redis) }
        if let serverName, serverName.lowercased() != "redis" {
            return ServerVersion(name: serverName, version: redis, redisVersion: redis)
        }
        return ServerVersion(name: "Redis", version: redis, redisVersion: redis)
    }

    /// Why the library cannot work with this server, or nil when it can. `where`: the server's redacted address.
    public func refusal(where place: String) -> Failure? {
        if redisVersion >= ServerVersion.minimum { return nil }
        let found = version == redisVersion ? description : "\(description) (redis_version \(redisVersion))"
        return Failure(.redis, "\(found) at \(place) is too old: hammer needs Redis \(ServerVersion.minimum.major)."
                               + "\(ServerVersion.minimum.minor) or later (or Valkey)", transient: false)
    }

    /// Every command the library sends (lua/*.lua's redis.call()s included; a unit test holds the list to the
    /// scripts), in lower case as COMMAND INFO takes them. The cluster's and Sentinel's own commands are checked by
    /// their use at open.
    public static let commands = [
        "evalsha", "eval", "hmget", "zrange", "scan", "del",   // sent by the library itself
        "get", "set", "time", "hget", "hset", "hincrby", "pttl", "pexpire", "exists", "unlink",
        "zadd", "zcard", "zcount", "zrem", "zscore", "zrangebyscore", "zremrangebyscore",
        "zremrangebyrank",   // called by the scripts
    ]

    /// The refusal of a server whose COMMAND INFO answered nothing (nil) for `missing` of `commands`.
    public static func missing(_ missing: [String], server: ServerVersion?, where place: String) -> Failure? {
        if missing.isEmpty { return nil }
        let who = server.map { "\($0.description)" } ?? "the server"
        return Failure(.redis, "\(who) at \(place) lacks \(missing.map { $0.uppercased() }.joined(separator: ", ")), "
                               + "which hammer needs (Redis 6.2 or later has every command hammer sends)",
                       transient: false)
    }
}
