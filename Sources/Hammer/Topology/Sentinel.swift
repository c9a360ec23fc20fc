// Redis Sentinel, as Redis's client guide says: ask the sentinels in order for the service's master (SENTINEL
// MASTER: its address and flags), move the one
// that answered to the front, connect to that address and check with ROLE that it is the master (else ask the
// next sentinel). The pool asks again on failures and every `pollUs` while calls are made, so that a failover is
// followed even while the old master still accepts writes (it does for about 10 s, until Sentinel demotes it).
import CHiredis
import Glibc
import HammerCore

final class SentinelWatch {
    let options: SentinelOptions
    private let config: Config
    private let tls: Result<TLSContext, Failure>?
    /// The sentinels, the last one that answered first.
    private var order: [Endpoint]
    /// A connection to the sentinel that answered last, kept for the polls.
    private var link: Connection?
    private var linkTo: Endpoint?

    /// How often calls confirm the master with a sentinel.
    static let pollUs: Int64 = 100_000

    init(_ config: Config, tls: Result<TLSContext, Failure>?) {
        options = config.sentinel ?? SentinelOptions(sentinels: [config.endpoint], service: "")
        self.config = config
        self.tls = tls
        order = options.sentinels
    }

    /// The master's address by the sentinels, within `deadlineUs`. `known`: the address in use; when a sentinel
    /// names it again, no ROLE check is made (a poll costs one round trip on a kept connection).
    func master(known: Endpoint?, until deadlineUs: Int64) -> Result<Endpoint, Failure> {
        var reasons: [String] = []
        var unknownService = 0
        failingOver = false
        for s in order {
            if Clock.monotonicUs() >= deadlineUs { reasons.append("no time left"); break }
            switch ask(s, until: deadlineUs) {
            case let .failure(f) where failingOver:
                return .failure(f)
            case let .failure(f):
                close()
                if f.status == .invalid { unknownService += 1 }
                reasons.append(f.message)
                continue
            case let .success(addr):
                if let i = order.firstIndex(of: s), i != 0 {
                    order.remove(at: i)
                    order.insert(s, at: 0)
                }
                if addr == known { return .success(addr) }
                if let why = checkRole(addr, until: deadlineUs) {
                    reasons.append(why)
                    continue
                }
                return .success(addr)
            }
        }
        if unknownService == order.count {
            return .failure(Failure(.invalid, "no sentinel knows a master named '\(options.service)': \(reasons.first ?? "")"))
        }
        return .failure(Failure(.connect, "no sentinel named a usable master for '\(options.service)': "
                                + reasons.joined(separator: "; ")))
    }

    /// SENTINEL MASTER <service> on sentinel `s`: the master's address, unless a failover is in progress.
    private func ask(_ s: Endpoint, until deadlineUs: Int64) -> Result<Endpoint, Failure> {
        var sc = config
        sc.endpoint = s
        sc.user = options.user
        sc.password = options.password
        sc.db = 0
        sc.sentinel = nil
        let conn: Connection
        if let l = link, linkTo == s, !l.isBroken, !l.isStale {
            conn = l
        } else {
            close()
            conn = Connection()
            if let f = conn.connect(sc, tls: tls, until: min(deadlineUs, Clock.monotonicUs() &+ config.connectTimeoutMs &* 1000)) {
                return .failure(Failure(f.status == .invalid ? .connect : f.status, "sentinel \(sc.redacted): \(f.message)"))
            }
            link = conn
            linkTo = s
        }
        conn.begin(until: min(deadlineUs, Clock.monotonicUs() &+ config.timeoutMs &* 1000))
        // SENTINEL MASTER rather than get-master-addr-by-name: its flags show a failover in progress, during which
        // the old master still takes writes that the promoted replica will not have.
        conn.expect(RespLimits(elements: 1024))   // some 20 field-value pairs, more in newer versions
        conn.args.reset()
        conn.args.add("SENTINEL")
        conn.args.add("MASTER")
        conn.args.add(Array(options.service.utf8))
        switch conn.run(poll: false) {
        case let .failure(f): return .failure(Failure(f.status, "sentinel \(sc.redacted): \(f.message)"))
        case let .success(r):
            defer { freeReplyObject(r) }
            if r.pointee.type == REDIS_REPLY_ERROR {
                // ERR: the sentinel knows no master of that name (its only ERR for SENTINEL MASTER <name>); NOAUTH,
                // NOPERM and the like: the sentinel's credentials, worth asking the next sentinel.
                let text = Connection.text(r)
                let unknown = RedisErrors.codeWord(text).0 == "ERR"
                return .failure(Failure(unknown ? .invalid : .connect, "sentinel \(sc.redacted): \(text)"))
            }
            guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements % 2 == 0, let el = r.pointee.element else {
                conn.broken = true
                return .failure(Failure(.protocol, "sentinel \(sc.redacted): an answer of an unexpected shape"))
            }
            var ip: [UInt8]? = nil, port: Int64? = nil, flags: String = ""
            for i in stride(from: 0, to: r.pointee.elements, by: 2) {
                guard let k = el[i], let v = el[i + 1] else { continue }
                switch Connection.text(k) {
                case "ip": ip = Array(Connection.bytes(v))
                case "port": port = Replies.integer(v)
                case "flags": flags = Connection.text(v)
                default: break
                }
            }
            guard let ip, let port, port >= 1, port <= 65535,
                  case let .success(addr) = Config.hostAndPort(bracketed(ip), defaultPort: 6379),
                  case let .tcp(host, _) = addr else {
                conn.broken = true
                return .failure(Failure(.protocol, "sentinel \(sc.redacted): an answer of an unexpected shape"))
            }
            failingOver = flags.split(separator: ",").contains("failover_in_progress")
            if failingOver {
                return .failure(Failure(.connect, "Sentinel is failing '\(options.service)' over; calls resume on the new master"))
            }
            return .success(.tcp(host: host, port: Int32(port)))
        }
    }

    /// The last sentinel that answered reported a failover in progress: no master may be written now.
    private(set) var failingOver = false

    /// A host as a URL writes it: an IPv6 address in brackets.
    private func bracketed(_ host: [UInt8]) -> [UInt8] { host.contains(58) ? [91] + host + [93] : host }

    /// nil when `addr` answers ROLE with "master", else why not.
    private func checkRole(_ addr: Endpoint, until deadlineUs: Int64) -> String? {
        var mc = config
        mc.endpoint = addr
        mc.sentinel = nil
        let conn = Connection()
        defer { conn.close() }
        if let f = conn.connect(mc, tls: tls, until: min(deadlineUs, Clock.monotonicUs() &+ config.connectTimeoutMs &* 1000)) {
            return "master \(mc.redacted): \(f.message)"
        }
        conn.begin(until: min(deadlineUs, Clock.monotonicUs() &+ config.timeoutMs &* 1000))
        conn.expect(RespLimits(elements: 1 << 16))   // ROLE lists the master's replicas
        conn.args.reset()
        conn.args.add("ROLE")
        switch conn.run(poll: false) {
        case let .failure(f): return "master \(mc.redacted): ROLE: \(f.message)"
        case let .success(r):
            defer { freeReplyObject(r) }
            guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements >= 1, let e = r.pointee.element?[0],
                  e.pointee.type == REDIS_REPLY_STRING else {
                return "master \(mc.redacted): ROLE answered \(Connection.text(r))"
            }
            let role = Connection.text(e)
            return role == "master" ? nil : "\(mc.redacted) is a \(role), not the master (a failover in progress?)"
        }
    }

    /// In a fork's child: the kept connection is the parent's; its descriptor is closed, nothing sent or freed.
    func abandonAfterFork() {
        link?.abandon(inUse: true)
    }

    func close() {
        link?.close()
        link = nil
        linkTo = nil
    }
}
