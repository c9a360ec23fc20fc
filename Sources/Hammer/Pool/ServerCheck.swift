// At open, on the first connection: is the server one the library works with (ServerVersion)? INFO server and
// COMMAND INFO of every command the library sends, pipelined: one round trip more per hammer_open, none per call.
// A server that answers either with an error (an ACL user without INFO or COMMAND, a proxy) is not judged by it:
// its first call shows what it lacks.
import CHiredis
import HammerCore

enum ServerCheck {
    static func run(_ conn: Connection, _ config: Config) -> Result<Void, Failure> {
        conn.expect(.listing)   // COMMAND INFO: an entry of nested arrays per command
        conn.args.reset()
        conn.args.add("INFO")
        conn.args.add("server")
        if let f = conn.append() { return .failure(f) }
        conn.args.reset()
        conn.args.add("COMMAND")
        conn.args.add("INFO")
        for c in ServerVersion.commands { conn.args.add(Array(c.utf8)) }
        if let f = conn.append() { return .failure(f) }
        // Both replies are read before anything is judged, so none is left for a later call.
        let info: [UInt8]?
        switch conn.read() {
        case let .failure(f): conn.broken = true; return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            switch r.pointee.type {
            case REDIS_REPLY_STRING: info = Array(Connection.bytes(r))
            case REDIS_REPLY_ERROR: info = nil
            default:
                conn.broken = true
                return .failure(Failure(.protocol, "INFO server on \(config.redacted): the answer is not Redis's"))
            }
        }
        var missing: [String] = []
        switch conn.read() {
        case let .failure(f): conn.broken = true; return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            if r.pointee.type == REDIS_REPLY_ARRAY {
                guard r.pointee.elements == ServerVersion.commands.count, let el = r.pointee.element else {
                    conn.broken = true
                    return .failure(Failure(.protocol, "COMMAND INFO on \(config.redacted): the answer is not Redis's"))
                }
                for (i, c) in ServerVersion.commands.enumerated() {
                    // An unknown command's entry is nil (RESP2) or an empty array.
                    guard let e = el[i] else { missing.append(c); continue }
                    if e.pointee.type == REDIS_REPLY_NIL || (e.pointee.type == REDIS_REPLY_ARRAY && e.pointee.elements == 0) {
                        missing.append(c)
                    }
                }
            } else if r.pointee.type != REDIS_REPLY_ERROR {
                conn.broken = true
                return .failure(Failure(.protocol, "COMMAND INFO on \(config.redacted): the answer is not Redis's"))
            }
        }
        let server = info.flatMap { ServerVersion.parse(info: $0) }
        if let f = server?.refusal(where: config.redacted) { return .failure(f) }
        if let f = ServerVersion.missing(missing, server: server, where: config.redacted) { return .failure(f) }
        return .success(())
    }
}
