// Redis error replies mapped to statuses and to messages a person can act on.

public enum RedisErrors {
    public static func classify(_ text: String) -> Failure {
        // Errors raised inside a script come wrapped: "ERR Error running script ...: <the real error>".
        let t = text
        if let r = Redirect.parse(t.utf8) {
            var f = Failure(.redis, "Redis Cluster redirection: \(t)", transient: true)
            f.redirect = r
            return f
        }
        func has(_ s: String) -> Bool { t.contains(s) }
        // Our scripts' own code for a request they refuse (lua/decide_all.lua).
        if t.hasPrefix("HAMMER_INVALID ") { return Failure(.invalid, String(t.dropFirst(15))) }
        if has("would overflow") || has("overflow") {
            return Failure(.invalid, "the counter would overflow int64 (Redis: \(t))")
        }
        if t.hasPrefix("OOM") || has("OOM command not allowed") {
            return Failure(.redis, "Redis is out of memory (maxmemory reached, noeviction): \(t)", transient: true)
        }
        if t.hasPrefix("READONLY") || has("READONLY") {
            return Failure(.redis, "Redis is a read-only replica; point the URL at the primary: \(t)", transient: true)
        }
        if t.hasPrefix("LOADING") {
            return Failure(.redis, "Redis is loading its dataset; retry shortly: \(t)", transient: true)
        }
        if t.hasPrefix("BUSY") {
            return Failure(.redis, "Redis is busy running a script: \(t)", transient: true)
        }
        if t.hasPrefix("NOAUTH") || t.hasPrefix("WRONGPASS") {
            return Failure(.redis, "Redis needs other credentials: \(t)")
        }
        if t.hasPrefix("NOPERM") || has("NOPERM") || has("can't run this command") || has("no permissions") {
            return Failure(.redis, "the Redis ACL user lacks a permission hammer needs (see README, minimal ACL): \(t)")
        }
        if t.hasPrefix("WRONGTYPE") || has("WRONGTYPE") {
            return Failure(.redis, "a key of this id holds another type than hammer expects: \(t)")
        }
        if t.hasPrefix("NOSCRIPT") {
            return Failure(.redis, "script not loaded: \(t)")
        }
        return Failure(.redis, "Redis error: \(t)")
    }
}
