// Redis error replies mapped to statuses and to messages a person can act on, by the error's code word (its first
// word: "WRONGPASS", "LOADING", ...), never by the rest of its text.
// Transient (Redis cannot answer for now; on_error and fallback may decide): OOM, READONLY, LOADING, BUSY,
// MASTERDOWN, NOREPLICAS, and a cluster's TRYAGAIN / CLUSTERDOWN / MOVED / ASK. Everything else (WRONGPASS, NOAUTH,
// NOPERM, WRONGTYPE, an unknown command, ...) is a configuration or request error that only the user can fix: never
// transient, so no policy hides it.

public enum RedisErrors {
    public static func classify(_ text: String) -> Failure {
        let t = text
        if let r = Redirect.parse(t.utf8) {
            var f = Failure(.redis, "Redis Cluster redirection: \(t)", transient: true)
            f.redirect = r
            return f
        }
        let (code, body) = codeWord(t)
        switch code {
        case "HAMMER_INVALID":   // our scripts' own code for a request they refuse (lua/decide_all.lua)
            return Failure(.invalid, String(body.drop { $0 == " " }))
        case "OOM":
            return Failure(.redis, "Redis is out of memory (maxmemory reached, noeviction): \(t)", transient: true)
        case "READONLY":
            return Failure(.redis, "Redis is a read-only replica; point the URL at the primary: \(t)", transient: true)
        case "LOADING":
            return Failure(.redis, "Redis is loading its dataset; retry shortly: \(t)", transient: true)
        case "BUSY":
            return Failure(.redis, "Redis is busy running a script: \(t)", transient: true)
        case "MASTERDOWN", "NOREPLICAS":
            return Failure(.redis, "Redis cannot accept writes until its replication recovers: \(t)", transient: true)
        case "NOAUTH", "WRONGPASS":
            return Failure(.redis, "Redis needs other credentials: \(t)")
        case "NOPERM":
            return Failure(.redis, "the Redis ACL user lacks a permission hammer needs (see docs/operations.md, minimal ACL): \(t)")
        case "WRONGTYPE":
            return Failure(.redis, "a key of this id holds another type than hammer expects: \(t)")
        case "NOSCRIPT":
            return Failure(.redis, "script not loaded: \(t)")
        default:
            // Redis gives these no code word of their own: INCRBY's overflow ("ERR ..."), and the ACL's refusal of
            // a command inside a script ("ERR The user executing the script can't run ..." on 7.0; on 6.2 the same
            // words wrapped by the script error, with no code word at all).
            if contains(body, "would overflow") {
                return Failure(.invalid, "the counter would overflow int64 (Redis: \(t))")
            }
            if contains(Substring(t), "can't run this command") {
                return Failure(.redis, "the Redis ACL user lacks a permission hammer needs (see docs/operations.md, minimal ACL): \(t)")
            }
            return Failure(.redis, "Redis error: \(t)")
        }
    }

    /// The error's code word and the text after it. An error raised inside a script on Redis before 7.0 comes
    /// wrapped ("ERR Error running script (call to f_...): @user_script:2: -OOM ..."): the code is the inner one.
    public static func codeWord(_ t: String) -> (Substring, Substring) {
        var s = Substring(t)
        if s.hasPrefix("ERR Error running script") {
            // Past the script's location(s) ("@user_script:2: ", "@user_script: 2: "), then an optional '-'.
            if let at = index(of: "@user_script", in: s) { s = s[at...] }
            while s.hasPrefix("@user_script") {
                s = s.dropFirst(12).drop { $0 == ":" || $0 == " " || $0.isASCII && $0.isNumber }
            }
            if s.first == "-" { s = s.dropFirst() }
        }
        let code = s.prefix { $0 != " " }
        return (code, s[code.endIndex...])
    }

    private static func index(of needle: String, in s: Substring) -> Substring.Index? {
        let n = Array(needle.utf8)
        let u = s.utf8
        var i = u.startIndex
        while i != u.endIndex {
            if u[i...].starts(with: n) { return i }
            i = u.index(after: i)
        }
        return nil
    }

    private static func contains(_ s: Substring, _ needle: String) -> Bool { index(of: needle, in: s) != nil }
}
