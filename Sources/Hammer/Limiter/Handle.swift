// A hammer_t: the configuration, the connection pool, the local fallback, and the operations in Swift terms.
// Each operation is "fill the arguments" + "decode the reply", so single calls and pipelined batches share them.
// On memory:// each operation hands over to the in-process store at its start (Memory/MemoryBackend.swift).
import CHiredis
import HammerCore
import Synchronization

struct BucketInfo {
    var count: Int64
    var created: Int64
    var updated: Int64
}

struct Inspection {
    var count: Int64
    var created: Int64
    var updated: Int64
    var msToNext: Int64
}

typealias Reply = Result<UnsafeMutablePointer<redisReply>, Failure>

final class Handle {
    let config: Config
    /// A single Redis's connections (Sentinel's too); on a cluster only the statistics (the nodes' pools are the
    /// router's).
    let pool: Pool
    /// Where commands go (Topology.swift).
    let topology: Topology
    /// The pools' idle connections, watched once the engine runs (Pool/IdleWatch.swift).
    let idleWatch: IdleWatch
    let local: LocalLimiter?
    let denyCache: DenyCache?
    /// memory://: the state in the process, no Redis (the pool then only keeps the statistics).
    let memory: MemoryStore?
    let hashTags: Bool
    /// The non-blocking calls' engine (Engine/), made at the first hammer_submit or hammer_fd.
    let completions = EngineSlot()
    /// Blocking calls on the engine's lane now (Engine/Call.swift).
    let laneCalls = Atomic<Int>(0)

    init(config: Config) {
        self.config = config
        let watch = IdleWatch()
        self.idleWatch = watch
        self.pool = Pool(config: config, watch: watch)
        self.topology = Topology(config, pool, watch: watch)
        self.local = config.localFallback ? LocalLimiter() : nil
        self.denyCache = config.denyCacheEntries > 0 ? DenyCache(capacity: config.denyCacheEntries) : nil
        self.memory = config.memory ? MemoryStore() : nil
        self.hashTags = config.hashTags
    }

    /// Opens the first connection (on a cluster: reads the slot map), so that a wrong address or password shows
    /// at open, and checks the server is one the library works with (ServerCheck; on a cluster, slot 0's master);
    /// with lazy_connect, only what needs no Redis (the TLS files): the pools check the server at their first
    /// connection instead.
    func check() -> Failure? {
        if memory != nil { return nil }
        if config.lazyConnect {
            if case let .failure(f)? = pool.tls { return f }
            return nil
        }
        return topology.open(config)
    }

    /// The time a script should use: the caller's, the library's clock, or nil for Redis's TIME.
    func time(_ given: Int64?) -> Int64? {
        if let given { return given }
        return config.clock == .redis ? nil : Clock.realtimeMs()
    }

    // MARK: arguments (after "EVALSHA sha" or "EVAL source")

    func fillCountHit(_ a: inout Args, id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64, increment: Int64,
                      ttlMs: Int64? = nil) {
        let prefix = config.prefix
        a.add("2")
        Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
        Decimal.append(bucket, to: &a.bytes)
        a.end()
        Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
        a.bytes.append(contentsOf: Keys.indexSuffix)
        a.end()
        a.add(increment)
        a.add(nowMs)
        a.add(ttlMs ?? config.expiryMs)
        a.add(bucket)
    }

    /// A decision's keys (lua/*.lua take them so), each one argument: the fixed window its window's bucket (the id's
    /// key base alone when the time is Redis's: the script adds the window) and the index; the others their state.
    /// With `own` (hammer_hit_all, MultiLimit.ownStates): the limit's state keys of its own, then the index, where
    /// the script lists them (a fixed window: its own bucket and the index, as ever).
    func appendDecisionKeys(_ a: inout Args, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, now: Int64?,
                            own: Bool = false) {
        let prefix = config.prefix
        var suffixes: [[UInt8]]
        switch lim.algorithm {
        case .fixedWindow:
            // Its own buckets: fw.<limit>.<period_ms>.<capacity>.<window>.
            Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
            if own {
                a.bytes.append(contentsOf: Keys.ownSuffix(Keys.ownBucketWord, lim))
                a.bytes.append(46)
            }
            if let now { Decimal.append(idiv(now, lim.periodMs), to: &a.bytes) }
            a.end()
            suffixes = [Keys.indexSuffix]
        default:
            suffixes = Keys.stateKeys(lim.algorithm)
            if own { suffixes = suffixes.map { Keys.ownSuffix($0, lim) } + [Keys.indexSuffix] }
        }
        for s in suffixes {
            Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
            a.bytes.append(contentsOf: s)
            a.end()
        }
    }

    func fillLimiter(_ a: inout Args, id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: StaticString, cost: Int64,
                     now: Int64?) {
        a.add(Int64(Keys.decisionKeyCount(lim.algorithm)))
        appendDecisionKeys(&a, id: id, lim, now: now)
        a.add(Int64(lim.algorithm.rawValue))
        a.add(mode)
        a.add(lim.limit)
        a.add(lim.periodMs)
        a.add(lim.capacity)
        a.add(cost)
        if let now { a.add(now) } else { a.add("") }
    }

    /// The script's {allowed, count, remaining, retry_after, reset_after}, read in place (no allocation).
    static func decision(_ res: Reply, _ lim: Limit) -> Result<Decision, Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            return decisionValue(r, lim)
        }
    }

    /// A decision from one reply, which the caller frees.
    static func decisionValue(_ r: UnsafeMutablePointer<redisReply>, _ lim: Limit) -> Result<Decision, Failure> {
        if let f = Replies.error(r) { return .failure(f) }
        guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == 5, let el = r.pointee.element else {
            return .failure(Failure(.protocol, "rate limit: expected an array of 5 integers"))
        }
        return decisionValues(el, lim)
    }

    /// A decision from 5 consecutive elements (of a single reply, or of a batch's flat reply, where the first may
    /// be the request's error).
    static func decisionValues(_ el: UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>,
                               _ lim: Limit) -> Result<Decision, Failure> {
        if let e0 = el[0], let f = Replies.error(e0) { return .failure(f) }
        guard let e0 = el[0], let e1 = el[1], let e2 = el[2], let e3 = el[3], let e4 = el[4],
              let allowed = Replies.integer(e0), let count = Replies.integer(e1),
              let remaining = Replies.integer(e2), let retry = Replies.integer(e3),
              let reset = Replies.integer(e4) else {
            return .failure(Failure(.protocol, "rate limit: expected an array of 5 integers"))
        }
        return .success(Decision(allowed: allowed == 1, count: count, limit: lim.limit, remaining: remaining,
                                 retryAfterMs: retry, resetAfterMs: reset))
    }

    // MARK: single calls

    func countHit(id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64, increment: Int64) -> Result<Int64, Failure> {
        if let memory { return memoryCountHit(memory, id: id, bucket: bucket, nowMs: nowMs, increment: increment) }
        let t0 = Clock.monotonicUs()
        if let r = countHitOnLane(id: id, bucket: bucket, nowMs: nowMs, increment: increment) { return r }
        return measured(id, Outcome(calls: 1), since: t0) { conn in
            Replies.int64(conn.eval(Scripts.countHit) { a in
                fillCountHit(&a, id: id, bucket: bucket, nowMs: nowMs, increment: increment)
            }, what: "count_hit")
        }
    }

    func getBucket(id: UnsafeBufferPointer<UInt8>, bucket: Int64) -> Result<BucketInfo?, Failure> {
        if let memory { return memoryGetBucket(memory, id: id, bucket: bucket) }
        let t0 = Clock.monotonicUs()
        if let r = getBucketOnLane(id: id, bucket: bucket) { return r }
        let prefix = config.prefix
        return measured(id, Outcome(calls: 1), since: t0) { conn in
            conn.args.reset()
            conn.args.add("HMGET")
            Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &conn.args.bytes)
            Decimal.append(bucket, to: &conn.args.bytes)
            conn.args.end()
            conn.args.add("count")
            conn.args.add("created")
            conn.args.add("updated")
            switch Replies.optionalIntegers(conn.run(), count: 3, what: "get_bucket") {
            case let .failure(f): return .failure(f)
            case let .success(v):
                guard let count = v[0] else { return .success(nil) }
                return .success(BucketInfo(count: count, created: v[1] ?? 0, updated: v[2] ?? 0))
            }
        }
    }

    func deleteBuckets(id: UnsafeBufferPointer<UInt8>) -> Result<Int64, Failure> {
        if let memory { return memoryDelete(memory, id: id) }
        // The id's cached denials go once the reset may have run (whatever it answered), and an answer Redis gave
        // before it is not kept after it (DenyShard.resets).
        defer { denyCache?.reset(id: id) }
        return measured(id, Outcome(calls: 1)) { conn in
            let indexed = deleteIndexed(conn, id: id)
            guard config.scanDelete, case let .success(n) = indexed else { return indexed }
            return scanDelete(conn, id: Array(id)).map { n.addingClamped($0) }
        }
    }

    /// Deletes the buckets and own states (hammer_hit_all's) the id's index names and the id's state, a page of the
    /// index at a time (so that no script's work grows with the index): a page is read, then the script gets every
    /// key it deletes in KEYS and deletes them only if the page has not named another key meanwhile (a concurrent
    /// first hit); if it has, the page is read again. Once the index is empty the script deletes the state keys
    /// too. Each page after the first gets its own timeout_ms, as SCAN steps do: the number of pages grows with the
    /// id's buckets.
    private func deleteIndexed(_ conn: Connection, id: UnsafeBufferPointer<UInt8>) -> Result<Int64, Failure> {
        let prefix = config.prefix
        var deleted: Int64 = 0, changed = 0, pages = 0
        while changed < 16 {
            if pages > 0 { conn.begin(until: Clock.monotonicUs() &+ config.timeoutMs &* 1000, .listing) }
            pages += 1
            conn.args.reset()
            conn.args.add("ZRANGE")
            Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &conn.args.bytes)
            conn.args.bytes.append(contentsOf: Keys.indexSuffix)
            conn.args.end()
            conn.args.add("0")
            conn.args.add(Handle.deletePage &- 1)
            var members: [[UInt8]] = []
            conn.expect(.listing)
            switch conn.run() {
            case let .failure(f): return .failure(f)
            case let .success(r):
                defer { freeReplyObject(r) }
                if let f = Replies.error(r) { return .failure(f) }
                guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements <= Int(Handle.deletePage) else {
                    return .failure(Failure(.protocol, "delete_buckets: unexpected ZRANGE reply"))
                }
                for i in 0..<r.pointee.elements {
                    guard let e = r.pointee.element?[i], e.pointee.type == REDIS_REPLY_STRING else {
                        return .failure(Failure(.protocol, "delete_buckets: unexpected ZRANGE reply"))
                    }
                    // Only a bucket number or an own state (Keys.isOwnSuffix) names a key of this id (another
                    // client may have written the index); the script's test too: digits, maybe after '-', or the
                    // own state's form.
                    let m = Array(Connection.bytes(e))
                    let digits = m.first == UInt8(ascii: "-") ? m.dropFirst() : m[...]
                    if (!digits.isEmpty && digits.allSatisfy({ (48...57).contains($0) })) || Keys.isOwnSuffix(m) {
                        members.append(m)
                    }
                }
            }
            let res = Replies.integers(conn.eval(Scripts.deleteBuckets) { a in
                a.add(Int64(1 + Keys.stateSuffixes.count + members.count))
                for s in [Keys.indexSuffix] + Keys.stateSuffixes + members {
                    Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
                    a.bytes.append(contentsOf: s)
                    a.end()
                }
                Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
                a.end()
                a.add(Int64(2 + Keys.stateSuffixes.count))
                a.add(Handle.deletePage)
            }, count: 2, what: "delete_buckets")
            switch res {
            case let .failure(f): return .failure(f)
            case let .success(v):
                if v[0] == -1 { changed += 1; continue }
                guard v[0] >= 0, v[1] >= 0 else {
                    return .failure(Failure(.protocol, "delete_buckets: unexpected reply"))
                }
                deleted = deleted.addingClamped(v[0])
                if v[1] == 0 { return .success(deleted) }
            }
        }
        return .failure(Failure(.redis, "delete_buckets: the id's index kept changing (16 reads)"))
    }

    /// Index members a delete_buckets script call takes at most (its work is bounded by this, not by the index).
    static let deletePage: Int64 = 1000

    /// Deletes buckets of exactly `id` that are not in its index (written by other clients): SCAN with the id
    /// escaped for the glob, then only keys that are prefix + id + ":" + an integer.
    private func scanDelete(_ conn: Connection, id: [UInt8]) -> Result<Int64, Failure> {
        var base: [UInt8] = []
        id.withUnsafeBufferPointer { Keys.appendIdBase(prefix: config.prefix, id: $0, tags: hashTags, to: &base) }
        var pattern = Keys.globEscape(base)
        pattern.append(UInt8(ascii: "*"))
        var cursor: [UInt8] = [UInt8(ascii: "0")]
        var deleted: Int64 = 0
        repeat {
            // SCAN's replies hold up to COUNT keys (a hint Redis may exceed); each round trip gets its own timeout_ms,
            // since the number of rounds grows with the keyspace.
            conn.begin(until: Clock.monotonicUs() &+ config.timeoutMs &* 1000,
                       RespLimits(elements: 1 << 16, totalBytes: 64 << 20))
            conn.args.reset()
            conn.args.add("SCAN")
            conn.args.add(cursor)
            conn.args.add("MATCH")
            conn.args.add(pattern)
            conn.args.add("COUNT")
            conn.args.add("1000")
            var keys: [[UInt8]] = []
            conn.expect(.listing)
            switch conn.run() {
            case let .failure(f): return .failure(f)
            case let .success(r):
                defer { freeReplyObject(r) }
                if let f = Replies.error(r) { return .failure(f) }
                guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == 2, let el = r.pointee.element,
                      let c = el[0], let list = el[1], list.pointee.type == REDIS_REPLY_ARRAY else {
                    return .failure(Failure(.protocol, "delete_buckets: unexpected SCAN reply"))
                }
                cursor = Array(Connection.bytes(c))
                for i in 0..<list.pointee.elements {
                    guard let k = list.pointee.element?[i] else { continue }
                    let key = Array(Connection.bytes(k))
                    if Keys.isBucketKey(key, prefix: config.prefix, id: id, tags: hashTags) { keys.append(key) }
                }
            }
            if !keys.isEmpty {
                conn.args.reset()
                conn.args.add("DEL")
                for k in keys { conn.args.add(k) }
                switch Replies.int64(conn.run(), what: "delete_buckets") {
                case let .failure(f): return .failure(f)
                case let .success(n): deleted = deleted.addingClamped(n)
                }
            }
        } while cursor != [UInt8(ascii: "0")]
        return .success(deleted)
    }

    /// A rate-limit decision; while Redis cannot answer, the on_error / fallback policy may decide instead.
    func limit(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
               now: Int64?) -> Result<Decision, Failure> {
        if let memory { return memoryLimit(memory, id: id, lim, mode: mode, cost: cost, now: now) }
        // From before the lane: a call Redis redirected there keeps one deadline on the way that follows it.
        let t0 = Clock.monotonicUs()
        if let r = limitOnLane(id: id, lim, mode: mode, cost: cost, now: now) { return r }
        let t = time(now)
        // The deny cache serves the handle's clock only (the *_at calls pass their own time) and not check_rate,
        // which counts even a denied hit in a bucket others read.
        var cached: (since: Int64, resets: UInt64)? = nil
        if let denyCache, now == nil, mode != .check {
            let cnow = DenyCache.now(config, sent: t)
            let (d, resets) = denyCache.answer(id: id, lim, mode: mode, cost: cost, now: cnow)
            if let d { return .success(d) }
            cached = (DenyCache.since(config, cnow), resets)
        }
        // Counted as the connection goes back, unless Redis could not answer: then after the policy decided.
        let r = with(id, since: t0, outcome: { r in
            if case let .failure(f) = r, f.transient { return nil }
            var o = Outcome(calls: 1)
            o.add(r)
            return o
        }) { conn -> Result<Decision, Failure> in
            if mode == .check, let t {
                // Hammer's check_rate at a known time is count_hit on the window's bucket (its TTL set at the first
                // hit, to the window's end and a grace second), decided here: the smallest script there is.
                let w = idiv(t, lim.periodMs)
                let left = (w + 1) * lim.periodMs - t
                return Replies.int64(conn.eval(Scripts.checkRate) { a in
                    fillCountHit(&a, id: id, bucket: w, nowMs: t, increment: cost, ttlMs: left + 1000)
                }, what: "check_rate").map {
                    Decision.checkRate(count: $0, limit: lim.limit, increment: cost, leftMs: left)
                }
            }
            return Handle.decision(conn.eval(Scripts.limiter(lim.algorithm)) { a in
                fillLimiter(&a, id: id, lim, mode: mode.letter, cost: cost, now: t)
            }, lim)
        }
        if let denyCache, let cached, case let .success(d) = r {
            denyCache.offer(id: id, lim, d, mode: mode, cost: cost, now: cached.since, resetsBefore: cached.resets)
        }
        guard case let .failure(f) = r, f.transient else { return r }
        let d = degrade(f, id: id, lim, mode: mode, cost: cost, now: now)
        var o = Outcome(calls: 1)
        o.add(d)
        pool.record(o, latencyUs: Clock.monotonicUs() - t0)
        return d
    }

    func inspect(id: UnsafeBufferPointer<UInt8>, scaleMs: Int64, limit: Int64) -> Result<Inspection, Failure> {
        if let memory { return memoryInspect(memory, id: id, scaleMs: scaleMs) }
        let t0 = Clock.monotonicUs()
        if let r = inspectOnLane(id: id, scaleMs: scaleMs, limit: limit) { return r }
        let t = time(nil)
        let lim = Limit(algorithm: .fixedWindow, limit: limit, periodMs: scaleMs)
        return measured(id, Outcome(calls: 1), since: t0) { conn in
            let r = conn.eval(Scripts.fixedWindow) { a in fillLimiter(&a, id: id, lim, mode: "i", cost: 0, now: t) }
            switch Replies.integers(r, count: 4, what: "inspect_bucket") {
            case let .failure(f): return .failure(f)
            case let .success(v):
                return .success(Inspection(count: v[0], created: v[1], updated: v[2], msToNext: v[3]))
            }
        }
    }

    /// Counts a request refused for its arguments (after the handle was found); the C layer reports it.
    func refuse(_ f: Failure) -> Failure {
        var o = Outcome(calls: 1)
        o.fail(f.status)
        pool.record(o, latencyUs: nil)
        return f
    }

    /// Runs `body` on a pooled connection and counts it (and its failure) in the statistics.
    @inline(__always)
    /// `t0`: when the call began (a cluster call Redis redirected from the lane keeps its one deadline).
    func measured<T>(_ id: UnsafeBufferPointer<UInt8>, _ outcome: Outcome, since t0: Int64 = Clock.monotonicUs(),
                     _ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        with(id, since: t0, outcome: { r in
            var o = outcome
            if let f = r.failureValue { o.fail(f.status) }
            return o
        }, body)
    }

    // MARK: batches

    /// Sends the requests `todo` (indices) in chunks, each chunk one call of `script` (which answers with one
    /// element per request), all chunks as one pipeline on one connection (on a cluster: a chunk per slot, a
    /// pipeline per node, all in flight at once; see Routing). `keys` appends a request's keys (KEYS, as many as
    /// `keyCount` says), `header` a chunk's first arguments, `fill` a request's fields; `take` gets each request's
    /// reply element (freed after it returns) or failure; `idOf` gives a request's id (its slot, the hash-tag check).
    /// A NOSCRIPT answer (a flushed or restarted server) is met by sending that chunk again with EVAL, after the
    /// pipeline is read. `nodeScript`: the script's variant for a cluster chunk of several slots of one node.
    func batches(_ todo: [Int], chunk: Int, _ script: Script, nodeScript: Script? = nil, width: Int = 1,
                 keyCount: (Int) -> Int, keys: (Int, inout Args) -> Void,
                 header: ([Int], inout Args) -> Void = { _, _ in },
                 fill: (Int, inout Args) -> Void,
                 take: (Int, Result<UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>, Failure>) -> Void,
                 idOf: (Int) -> UnsafeBufferPointer<UInt8>?) {
        var todo = todo
        if hashTags {
            todo = todo.filter { i in
                guard let id = idOf(i), let m = Keys.tagProblem(id: id) else { return true }
                take(i, .failure(Failure(.invalid, m)))
                return false
            }
        }
        withoutActuallyEscaping(keyCount) { keyCount in
            withoutActuallyEscaping(keys) { keys in
                withoutActuallyEscaping(header) { header in
                    withoutActuallyEscaping(fill) { fill in
                        withoutActuallyEscaping(idOf) { idOf in
                            let prefix = config.prefix, hashTags = hashTags
                            let p = Pipeline(script: script, nodeScript: topology.isCluster ? nodeScript : nil, width: width,
                                             chunk: chunk, keyCount: keyCount, keys: keys, header: header, fill: fill,
                                             timeoutUs: config.timeoutMs &* 1000,
                                             probe: { i, a in
                                guard let id = idOf(i) else { return }
                                Keys.appendIdBase(prefix: prefix, id: id, tags: hashTags, to: &a.bytes)
                                a.end()
                            })
                            if case let .cluster(router) = topology {
                                clusterBatches(router, todo, p, take: take, idOf: idOf)
                                return
                            }
                            var run = PipelineRun(chunks: stride(from: 0, to: todo.count, by: chunk).map {
                                Array(todo[$0..<min($0 + chunk, todo.count)])
                            })
                            let whole: Result<Void, Failure> = pool.with { conn in
                                p.send(conn, &run)
                                return p.receive(conn, &run)
                            }
                            p.deliver(run, whole.failureValue, take)
                        }
                    }
                }
            }
        }
    }

    /// Requests per script call in a batch: enough to spread the script's fixed cost, small enough that one call
    /// does not hold Redis long.
    static let batchChunk = 128
}

/// Decoding of hiredis replies into results. The forms that take a `Reply` free it; the `...Value` forms leave it
/// to their caller.
enum Replies {
    /// A Redis error reply as a failure, or nil.
    static func error(_ r: UnsafeMutablePointer<redisReply>) -> Failure? {
        guard r.pointee.type == REDIS_REPLY_ERROR else { return nil }
        return RedisErrors.classify(Connection.text(r))
    }

    /// A batch chunk's reply the decoders can use: an error for the whole chunk, or an array of `elements`, each
    /// an integer (or a bulk string holding one) or a request's own error.
    static func isUsableBatch(_ r: UnsafeMutablePointer<redisReply>, elements: Int) -> Bool {
        if r.pointee.type == REDIS_REPLY_ERROR { return true }
        guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == elements, let el = r.pointee.element else {
            return false
        }
        for i in 0..<elements {
            guard let e = el[i] else { return false }
            if e.pointee.type != REDIS_REPLY_ERROR && integer(e) == nil { return false }
        }
        return true
    }

    static func integer(_ e: UnsafeMutablePointer<redisReply>) -> Int64? {
        if e.pointee.type == REDIS_REPLY_INTEGER { return e.pointee.integer }
        if e.pointee.type == REDIS_REPLY_STRING { return Decimal.parse(Connection.bytes(e)) }
        return nil
    }

    /// An integer reply, or a bulk string holding an exact int64.
    static func int64(_ res: Reply, what: String) -> Result<Int64, Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            return int64Value(r, what: what)
        }
    }

    /// An integer from one reply (or one element of a batch's reply), which the caller frees.
    static func int64Value(_ r: UnsafeMutablePointer<redisReply>, what: String) -> Result<Int64, Failure> {
        if let f = error(r) { return .failure(f) }
        if let n = integer(r) { return .success(n) }
        return .failure(Failure(.protocol, "\(what): expected an integer reply"))
    }

    /// An array of `count` integers (integer replies, or bulk strings holding exact int64s).
    static func integers(_ res: Reply, count: Int, what: String) -> Result<[Int64], Failure> {
        switch optionalIntegers(res, count: count, what: what) {
        case let .failure(f): return .failure(f)
        case let .success(v):
            var out: [Int64] = []
            out.reserveCapacity(count)
            for (i, x) in v.enumerated() {
                guard let x else { return .failure(Failure(.protocol, "\(what): element \(i) is nil")) }
                out.append(x)
            }
            return .success(out)
        }
    }

    /// An array of `count` integers or nils.
    static func optionalIntegers(_ res: Reply, count: Int, what: String) -> Result<[Int64?], Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            return optionalIntegersValue(r, count: count, what: what)
        }
    }

    /// optionalIntegers() of a reply the caller frees.
    static func optionalIntegersValue(_ r: UnsafeMutablePointer<redisReply>, count: Int, what: String) -> Result<[Int64?], Failure> {
        if let f = error(r) { return .failure(f) }
        guard r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == count, let el = r.pointee.element else {
            return .failure(Failure(.protocol, "\(what): expected an array of \(count) integers"))
        }
        var out: [Int64?] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            guard let e = el[i] else { return .failure(Failure(.protocol, "\(what): missing element")) }
            if e.pointee.type == REDIS_REPLY_NIL { out.append(nil); continue }
            guard let n = integer(e) else {
                return .failure(Failure(.protocol, "\(what): element \(i) is not an integer"))
            }
            out.append(n)
        }
        return .success(out)
    }
}
