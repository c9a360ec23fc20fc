// Where a handle's commands go: the one seam between what a call asks (Limiter, Engine) and the connections that
// reach Redis (Pool). Every topology answers the same question, "which pool serves this id, and which node is it":
// - a single Redis (redis://, rediss://, unix): one pool to one address;
// - Sentinel (redis+sentinel://): one pool whose address SentinelMaster follows (asked at every lend);
// - a cluster (redis+cluster://, rediss+cluster://): Router, a pool per master from the slot map.
// A cluster's redirections are resubmitted within the request's own deadline (Router.with, clusterBatches, and
// the lanes' `.again`), each pool has its own breaker (so one per node, opened only by a connect failure or a
// sent command's timeout), and the router drops the pools of nodes that left the map.
import CHammer
import HammerCore

enum Topology {
    case single(Pool)
    case cluster(Router)

    /// `pool`: the handle's own (a single Redis's connections; on a cluster, the statistics of calls).
    init(_ config: Config, _ pool: Pool, watch: IdleWatch) {
        self = config.isCluster ? .cluster(Router(config: config, tls: pool.tls, watch: watch)) : .single(pool)
    }

    /// Every pool in use (a cluster's: one per node in the map).
    var pools: [Pool] {
        switch self {
        case let .single(pool): return [pool]
        case let .cluster(router): return router.allPools()
        }
    }

    var isCluster: Bool {
        if case .cluster = self { return true }
        return false
    }

    /// Checks at open that Redis is reachable and one the library works with (ServerCheck): on a cluster, reads
    /// the slot map from a seed and checks slot 0's master.
    func open(_ config: Config) -> Failure? {
        switch self {
        case let .single(pool):
            return pool.with({ ServerCheck.run($0, config) }).failureValue
        case let .cluster(router):
            if let f = router.open() { return f }
            guard let (_, p) = router.route(0) else { return nil }
            return p.with({ ServerCheck.run($0, p.config) }).failureValue
        }
    }

    /// The pool whose connections reach `id`'s keys, and its node on a cluster (as far as the map says now; nil
    /// when it names none).
    @inline(__always)
    func target(_ id: UnsafeBufferPointer<UInt8>) -> (Pool, NodeAddress?)? {
        switch self {
        case let .single(pool): return (pool, nil)
        case let .cluster(router):
            guard let (node, p) = router.route(ClusterSlot.ofId(id)) else { return nil }
            return (p, node)
        }
    }

    /// A command on `node` failed by `f`: a node that timed out or lost its connection may be gone (a failover),
    /// so the map is read again soon.
    func failed(_ node: NodeAddress?, _ f: Failure) {
        guard case let .cluster(router) = self, let node, f.status == .connect || f.status == .timeout else { return }
        router.failed(node)
    }

    /// Adds what the topology holds to a handle's statistics: a cluster's nodes' connections and its counters.
    func fill(_ o: inout hammer_stats_t) {
        if case let .cluster(router) = self { router.fill(&o) }
    }
}
