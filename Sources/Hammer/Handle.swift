// A hammer_t: the configuration and the connection pool, and the operations in Swift terms.
import CHiredis
import HammerCore

struct BucketInfo {
    var count: Int64
    var created: Int64
    var updated: Int64
}

final class Handle {
    let config: Config
    let pool: Pool

    init(config: Config) {
        self.config = config
        self.pool = Pool(config: config)
    }

    /// Opens the first connection, so that a wrong address or password shows at open.
    func check() -> Failure? {
        switch pool.with({ _ in Result<Void, Failure>.success(()) }) {
        case .success: return nil
        case let .failure(f): return f
        }
    }

    func countHit(id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64, increment: Int64,
                  ttlMs: Int64) -> Result<Int64, Failure> {
        let prefix = config.prefix
        return pool.with { conn in
            let r = conn.eval(Scripts.countHit) { a in
                a.add("2")
                Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
                Decimal.append(bucket, to: &a.bytes)
                a.end()
                Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
                a.bytes.append(contentsOf: Keys.indexSuffix)
                a.end()
                a.add(increment)
                a.add(nowMs)
                a.add(ttlMs)
                a.add(bucket)
            }
            return Replies.int64(r, what: "count_hit")
        }
    }

    func getBucket(id: UnsafeBufferPointer<UInt8>, bucket: Int64) -> Result<BucketInfo?, Failure> {
        let prefix = config.prefix
        return pool.with { conn in
            conn.args.reset()
            conn.args.add("HMGET")
            Keys.appendIdBase(prefix: prefix, id: id, to: &conn.args.bytes)
            Decimal.append(bucket, to: &conn.args.bytes)
            conn.args.end()
            conn.args.add("count")
            conn.args.add("created")
            conn.args.add("updated")
            switch conn.run() {
            case let .failure(f): return .failure(f)
            case let .success(r):
                defer { freeReplyObject(r) }
                if let f = Replies.error(r) { return .failure(f) }
                guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == 3, let el = r.pointee.element else {
                    return .failure(Failure(.protocol, "get_bucket: HMGET did not answer three fields"))
                }
                var v: [Int64?] = [nil, nil, nil]
                for i in 0..<3 {
                    guard let e = el[i] else { return .failure(Failure(.protocol, "get_bucket: missing field")) }
                    if e.pointee.type == REDIS_REPLY_NIL { continue }
                    guard e.pointee.type == REDIS_REPLY_STRING,
                          let n = Decimal.parse(Connection.bytes(e)) else {
                        return .failure(Failure(.protocol, "get_bucket: a field of the bucket is not an integer"))
                    }
                    v[i] = n
                }
                guard let count = v[0] else { return .success(nil) }
                return .success(BucketInfo(count: count, created: v[1] ?? 0, updated: v[2] ?? 0))
            }
        }
    }

    func deleteBuckets(id: UnsafeBufferPointer<UInt8>) -> Result<Int64, Failure> {
        let prefix = config.prefix
        return pool.with { conn in
            let r = conn.eval(Scripts.deleteBuckets) { a in
                a.add("1")
                Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
                a.bytes.append(contentsOf: Keys.indexSuffix)
                a.end()
                Keys.appendIdBase(prefix: prefix, id: id, to: &a.bytes)
                a.end()
                for s in Keys.stateSuffixes { a.add(s) }
            }
            return Replies.int64(r, what: "delete_buckets")
        }
    }
}

/// Decoding of hiredis replies into results.
enum Replies {
    /// A Redis error reply as a failure, or nil.
    static func error(_ r: UnsafeMutablePointer<redisReply>) -> Failure? {
        guard r.pointee.type == REDIS_REPLY_ERROR else { return nil }
        return RedisErrors.classify(Connection.text(r))
    }

    /// An integer reply, or a bulk string holding an exact int64.
    static func int64(_ res: Result<UnsafeMutablePointer<redisReply>, Failure>, what: String) -> Result<Int64, Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            if let f = error(r) { return .failure(f) }
            if r.pointee.type == REDIS_REPLY_INTEGER { return .success(r.pointee.integer) }
            if r.pointee.type == REDIS_REPLY_STRING, let n = Decimal.parse(Connection.bytes(r)) { return .success(n) }
            return .failure(Failure(.protocol, "\(what): expected an integer reply"))
        }
    }
}
