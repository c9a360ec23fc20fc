// A cluster handle's routing: the slot map, a pool per master, and the redirections Redis answers with.
// Every key of an id is in the id's slot (the braced layout), so each call goes whole to one node. A command is sent
// again only when the cluster said it did not run it (MOVED, ASK, TRYAGAIN, CLUSTERDOWN); a timeout or a lost
// connection is never resent, it only makes the map be read again.
import CHammer
import CHiredis
import Glibc
import HammerCore
import Synchronization

final class Router {
    let config: Config
    private var lock = Lock()
    private let epoch = ForkEpoch()
    private var map = SlotMap()
    private var pools: [NodeAddress: Pool] = [:]
    /// Each slot's master and its pool, as the map says: one look-up per call.
    private var slotRoutes = [(NodeAddress, Pool)?](repeating: nil, count: ClusterSlot.count)
    /// When the map was last read (monotonic ms), and whether a read is under way or wanted.
    private var refreshedMs: Int64 = -1_000_000
    private var refreshing = false
    private let refreshWanted = Atomic<Bool>(false)
    private(set) var counters = RouterCounters()
    /// Nodes that lately timed out or could not be reached (monotonic ms of the failure): a map read asks them
    /// last, so that a call reading the map does not wait on a hung master while others could answer.
    private var suspects: [NodeAddress: Int64] = [:]
    /// Whether each node runs scripts with flags (Redis 7+: a batch chunk may then span its slots), as its INFO
    /// said; a node not in it is asked once.
    private var scriptFlags: [NodeAddress: Bool] = [:]
    static let suspectMs: Int64 = 10_000

    /// Reads of the map are at most this often, whatever the redirections and failures asking for one.
    static let refreshEveryMs: Int64 = 100
    /// Redirections followed for one request before its last answer is returned.
    static let maxRedirections = 16

    /// The handle's TLS context (rediss+cluster://), shared by every node's pool: made once at open, never under
    /// the lock that every call takes.
    private let tls: Result<TLSContext, Failure>?
    private let watch: IdleWatch
    /// Connections (re)opened by pools since dropped (their nodes left the map): the statistics never go back.
    private var droppedReconnects: UInt64 = 0

    init(config: Config, tls: Result<TLSContext, Failure>?, watch: IdleWatch) {
        self.config = config
        self.tls = tls
        self.watch = watch
    }

    /// Reads the map from a seed at open: a wrong address or password shows here.
    func open() -> Failure? {
        refresh(force: true)
    }

    /// Takes the lock, the fork check first: in a forked child a parent's thread may have held it at the fork, and
    /// every way in (a call's route, a redirection, the statistics) may be the child's first.
    @inline(__always) private func takeLock() {
        epoch.check(afterFork)
        lock.lock()
    }

    private func afterFork() {
        _ = Unmanaged.passRetained(lock)
        lock = Lock()
        refreshing = false
        counters = RouterCounters()
        droppedReconnects = 0
    }

    /// The pool of `node`, made on first use.
    func pool(_ node: NodeAddress) -> Pool {
        takeLock()
        defer { lock.unlock() }
        return poolLocked(node)
    }

    private func poolLocked(_ node: NodeAddress) -> Pool {
        if let p = pools[node] { return p }
        var c = config
        c.endpoint = .tcp(host: node.host, port: node.port)
        let p = Pool(config: c, tls: tls, watch: watch)
        pools[node] = p
        return p
    }

    /// The master serving `slot` and its pool, or nil when the map has none.
    func route(_ slot: Int) -> (NodeAddress, Pool)? {
        guard slot >= 0, slot < ClusterSlot.count else { return nil }
        takeLock()
        defer { lock.unlock() }
        return slotRoutes[slot]
    }

    func owner(_ slot: Int) -> NodeAddress? { route(slot)?.0 }

    /// slotRoutes from the map (lock held).
    private func routeAll() {
        var byIndex: [(NodeAddress, Pool)] = map.nodes.map { ($0, poolLocked($0)) }
        for s in 0..<ClusterSlot.count {
            let i = Int(map.owner[s])
            slotRoutes[s] = i >= 0 && i < byIndex.count ? byIndex[i] : nil
        }
        byIndex.removeAll()
    }

    func count(_ r: Redirect) {
        takeLock()
        switch r {
        case .moved: counters.moved &+= 1
        case .ask: counters.ask &+= 1
        case .tryAgain: counters.tryAgain &+= 1
        case .clusterDown: counters.clusterDown &+= 1
        }
        lock.unlock()
    }

    /// A MOVED: the slot is `to`'s from now on; the rest of the map may have changed too, so it is read again soon.
    func moved(slot: Int, to: NodeAddress) {
        takeLock()
        map.assign(slot: slot, to: to)
        if slot >= 0, slot < ClusterSlot.count { slotRoutes[slot] = (to, poolLocked(to)) }
        lock.unlock()
        refreshWanted.store(true, ordering: .relaxed)
    }

    func wantRefresh() {
        refreshWanted.store(true, ordering: .relaxed)
    }

    /// A node failed a call with a timeout or a lost or refused connection: read the map soon, asking it last.
    func failed(_ node: NodeAddress) {
        takeLock()
        suspects[node] = Clock.monotonicMs()
        lock.unlock()
        wantRefresh()
    }

    /// Whether `node` runs one script over keys of several of its slots (`#!lua flags=allow-cross-slot-keys`, Redis
    /// 7.0 and later; not 6.2), from its `INFO server`, read once per node. A node that cannot say now (unreachable,
    /// or INFO refused by the ACL) is taken as not, and asked again by a later batch (INFO refused: never again).
    func runsScriptFlags(_ node: NodeAddress, until deadlineUs: Int64) -> Bool {
        takeLock()
        let known = scriptFlags[node]
        lock.unlock()
        if let known { return known }
        let r: Result<Bool, Failure> = pool(node).with(until: deadlineUs) { conn in
            conn.args.reset()
            conn.args.add("INFO")
            conn.args.add("server")
            conn.expect(.listing)
            switch conn.run() {
            case let .failure(f): return .failure(f)
            case let .success(r):
                defer { freeReplyObject(r) }
                if r.pointee.type == REDIS_REPLY_ERROR { return .success(false) }
                guard r.pointee.type == REDIS_REPLY_STRING else {
                    return .failure(Failure(.protocol, "INFO server: expected a string"))
                }
                return .success(ServerInfo.runsScriptFlags(Array(Connection.bytes(r))))
            }
        }
        guard case let .success(v) = r else { return false }
        takeLock()
        scriptFlags[node] = v
        lock.unlock()
        return v
    }

    /// Reads the map again if one is wanted and none was read in the last refreshEveryMs (one thread at a time;
    /// the others go on with the map they have), within the calling call's deadline `until` (monotonic us).
    func refreshIfWanted(until: Int64? = nil) {
        guard refreshWanted.load(ordering: .relaxed) else { return }
        takeLock()
        let due = !refreshing && Clock.monotonicMs() - refreshedMs >= Router.refreshEveryMs
        lock.unlock()
        if due { _ = refresh(force: false, until: until) }
    }

    /// A node whose calls go well: not lately failed, its breaker closed. A call to it never reads the map.
    private func healthy(_ node: NodeAddress, _ pool: Pool) -> Bool {
        takeLock()
        let suspect = suspects[node].map { Clock.monotonicMs() - $0 < Router.suspectMs } ?? false
        lock.unlock()
        return !suspect && pool.backoffLeftMs == 0
    }

    /// Asks the known masters, then the seeds, for CLUSTER SHARDS (CLUSTER SLOTS on servers without it) until one
    /// answers with a map.
    /// `until`: the deadline of the call that reads it (monotonic us): no node is asked after it, and each is asked
    /// within it; nil at open (each node then gets connect_timeout_ms + timeout_ms).
    @discardableResult
    func refresh(force: Bool, until: Int64? = nil) -> Failure? {
        takeLock()
        if refreshing && !force { lock.unlock(); return nil }
        refreshing = true
        refreshWanted.store(false, ordering: .relaxed)
        var candidates = map.nodes
        for case let .tcp(h, p) in config.seeds {
            let a = NodeAddress(host: h, port: p)
            if !candidates.contains(a) { candidates.append(a) }
        }
        let now = Clock.monotonicMs()
        suspects = suspects.filter { now - $0.value < Router.suspectMs }
        let healthy = candidates.filter { suspects[$0] == nil && (pools[$0]?.backoffLeftMs ?? 0) == 0 }
        candidates = healthy + candidates.filter { !healthy.contains($0) }
        lock.unlock()
        var last = Failure(.connect, "no cluster node to ask for the slot map")
        var got: SlotMap? = nil
        for node in candidates {
            if let until, Clock.monotonicUs() >= until {
                last = Failure(.timeout, "Redis Cluster: the slot map could not be read within the call's time; " + last.message)
                break
            }
            switch readMap(from: node, until: until) {
            case let .failure(f):
                last = Failure(f.status, "\(node): " + f.message, transient: f.transient)
                if f.status == .connect || f.status == .timeout {
                    // Asked last by the next read.
                    takeLock()
                    suspects[node] = Clock.monotonicMs()
                    lock.unlock()
                }
            case let .success(m):
                if m.coveredSlots == 0 { last = Failure(.redis, "\(node): the cluster serves no slot"); continue }
                got = m
            }
            if got != nil { break }
        }
        takeLock()
        if let got {
            map = got
            routeAll()
            counters.refreshes &+= 1
            // Only the map's masters keep a pool (a seed or a node asked for the map gets one again when asked):
            // nodes removed from the cluster, or replaced by a failover, leave no connections behind. A call still
            // using a dropped pool holds it until it returns.
            for (node, p) in pools where !got.nodes.contains(node) {
                droppedReconnects &+= p.snapshot().0.reconnects
                pools[node] = nil
            }
        }
        refreshedMs = Clock.monotonicMs()
        refreshing = false
        lock.unlock()
        return got == nil ? last : nil
    }

    private func readMap(from node: NodeAddress, until: Int64?) -> Result<SlotMap, Failure> {
        pool(node).with(until: until) { conn in
            conn.args.reset()
            conn.args.add("CLUSTER")
            conn.args.add("SHARDS")
            conn.expect(.listing)   // a map of many nodes is larger than any decision's reply
            let shards = Router.value(conn.run())
            if case let .success(v) = shards, case .error = v {
                // Redis before 7.0 has no CLUSTER SHARDS.
                conn.args.reset()
                conn.args.add("CLUSTER")
                conn.args.add("SLOTS")
                conn.expect(.listing)
                return Router.value(conn.run()).flatMap { v in
                    if case let .error(e) = v { return .failure(RedisErrors.classify(String(decoding: e, as: UTF8.self))) }
                    return SlotMap.parseSlots(v, seedHost: node.host)
                }
            }
            return shards.flatMap { SlotMap.parseShards($0, seedHost: node.host, tls: config.tls != nil) }
        }
    }

    /// A hiredis reply as a RedisValue (freed here); bounded depth, as the map's replies are 4 levels deep.
    static func value(_ res: Reply) -> Result<RedisValue, Failure> {
        switch res {
        case let .failure(f): return .failure(f)
        case let .success(r):
            defer { freeReplyObject(r) }
            guard let v = convert(r, depth: 0) else {
                return .failure(Failure(.protocol, "cluster map: reply nested too deep"))
            }
            return .success(v)
        }
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>, depth: Int) -> RedisValue? {
        if depth > 8 { return nil }
        switch r.pointee.type {
        case REDIS_REPLY_INTEGER: return .integer(r.pointee.integer)
        case REDIS_REPLY_STRING, REDIS_REPLY_STATUS: return .bulk(Array(Connection.bytes(r)))
        case REDIS_REPLY_ERROR: return .error(Array(Connection.bytes(r)))
        case REDIS_REPLY_ARRAY:
            var out: [RedisValue] = []
            out.reserveCapacity(r.pointee.elements)
            for i in 0..<r.pointee.elements {
                guard let e = r.pointee.element?[i], let v = convert(e, depth: depth + 1) else { return nil }
                out.append(v)
            }
            return .array(out)
        default: return .null
        }
    }

    /// Runs `body` on a connection to the node serving `slot`, following the cluster's redirections within the
    /// call's time (connect_timeout_ms + timeout_ms from t0). `body` sends the command and reads its reply.
    /// The map is read on the way only when the slot's master is unknown or failing, within the call's deadline: a
    /// call to a healthy master never waits for a map read.
    func with<T>(slot: Int, since t0: Int64, _ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        let deadlineUs = t0 &+ (config.connectTimeoutMs &+ config.timeoutMs) &* 1000
        if refreshWanted.load(ordering: .relaxed) {
            if let (node, pool) = route(slot), healthy(node, pool) {} else { refreshIfWanted(until: deadlineUs) }
        }
        var ask: NodeAddress? = nil
        var pauseMs: Int64 = 5
        var redirections = 0
        while true {
            guard let (node, pool) = ask.map({ ($0, self.pool($0)) }) ?? route(slot) else {
                // No master serves the slot as far as we know (a failover under way): read the map again, pausing
                // as for TRYAGAIN, until one does or the call's deadline passes.
                wantRefresh()
                refreshIfWanted(until: deadlineUs)
                if owner(slot) != nil, Clock.monotonicUs() < deadlineUs { continue }
                let left = (deadlineUs - Clock.monotonicUs()) / 1000
                if left <= 0 {
                    return .failure(Failure(.connect, "Redis Cluster: no master serves slot \(slot) now", transient: true))
                }
                usleep(UInt32(min(pauseMs, left)) * 1000)
                pauseMs = min(pauseMs * 2, 100)
                continue
            }
            let asking = ask != nil
            ask = nil
            let r = pool.with(until: deadlineUs) { conn -> Result<T, Failure> in
                if asking {
                    // ASK: this one command may run on the importing node, if it comes right after ASKING.
                    conn.args.reset()
                    conn.args.add("ASKING")
                    switch conn.run() {
                    case let .failure(f): return .failure(f)
                    case let .success(rep):
                        defer { freeReplyObject(rep) }
                        if let f = Replies.error(rep) { return .failure(f) }
                    }
                    conn.asking = true
                    defer { conn.asking = false }
                    return body(conn)
                }
                return body(conn)
            }
            guard case let .failure(f) = r else { return r }
            guard let red = f.redirect else {
                // A lost connection or a timeout: the node may be gone (a failover); the next calls read the map.
                if f.status == .connect || f.status == .timeout { failed(node) }
                return r
            }
            count(red)
            redirections += 1
            if redirections > Router.maxRedirections || Clock.monotonicUs() >= deadlineUs { return r }
            switch red {
            case let .moved(s, to):
                moved(slot: s, to: to)
                // The map changed: read it again now, within this redirected call's deadline (the next calls to
                // healthy masters will not).
                refreshIfWanted(until: deadlineUs)
            case let .ask(_, to):
                ask = to
            case .tryAgain, .clusterDown:
                if case .clusterDown = red { wantRefresh() }
                let left = (deadlineUs - Clock.monotonicUs()) / 1000
                if left <= 0 { return r }
                usleep(UInt32(min(pauseMs, left)) * 1000)
                pauseMs = min(pauseMs * 2, 100)
                refreshIfWanted(until: deadlineUs)
            }
        }
    }

    /// Every pool, for statistics.
    func allPools() -> [Pool] {
        takeLock()
        defer { lock.unlock() }
        return Array(pools.values)
    }

    func snapshotCounters() -> RouterCounters {
        takeLock()
        defer { lock.unlock() }
        return counters
    }
}

struct RouterCounters {
    var moved: UInt64 = 0
    var ask: UInt64 = 0
    var tryAgain: UInt64 = 0
    var clusterDown: UInt64 = 0
    var refreshes: UInt64 = 0
}

extension Router {
    /// Adds the nodes' connections and the cluster's counters to a handle's statistics (whose calls, outcomes and
    /// latencies the handle's own pool counts).
    func fill(_ o: inout hammer_stats_t) {
        for p in allPools() {
            let (s, open) = p.snapshot()
            o.reconnects &+= s.reconnects
            o.connections &+= Int64(open)
        }
        takeLock()
        o.reconnects &+= droppedReconnects
        lock.unlock()
        let c = snapshotCounters()
        o.cluster_moved = c.moved
        o.cluster_ask = c.ask
        o.cluster_tryagain = c.tryAgain
        o.cluster_down = c.clusterDown
        o.cluster_map_reads = c.refreshes
        takeLock()
        o.cluster_nodes = UInt64(map.nodes.count)
        lock.unlock()
    }
}
