// A cluster's commands (Topology.cluster): on the node serving the id's slot (Router). Batches are pipelines of
// script calls ("chunks"); on a cluster each chunk holds one slot's requests (a script's keys must share a slot),
// each node gets its own pipeline, and all of them are written before any is read, so the nodes work at the same
// time. A single Redis's (and Sentinel's) go to the handle's one pool.
import CHiredis
import Glibc
import HammerCore

extension Handle {
    /// Runs `body` on a connection that reaches `id`'s keys, and counts the call as `outcome` says.
    @inline(__always)
    func with<T>(_ id: UnsafeBufferPointer<UInt8>, since t0: Int64, outcome: (Result<T, Failure>) -> Outcome?,
                 _ body: (Connection) -> Result<T, Failure>) -> Result<T, Failure> {
        guard hashTags else { return pool.with(since: t0, outcome: outcome, body) }
        var r: Result<T, Failure>
        if let m = Keys.tagProblem(id: id) {
            r = .failure(Failure(.invalid, m))
        } else if case let .cluster(router) = topology {
            r = router.with(slot: ClusterSlot.ofId(id), since: t0, body)
        } else {
            return pool.with(since: t0, outcome: outcome, body)
        }
        if let o = outcome(r) { pool.record(o, latencyUs: Clock.monotonicUs() - t0) }
        return r
    }

    func clusterBatches(_ router: Router, _ todo: [Int], _ p: Pipeline,
                        take: (Int, Result<UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>, Failure>) -> Void,
                        idOf: (Int) -> UnsafeBufferPointer<UInt8>?) {
        /// A chunk's slot, and whether it follows an ASK (then it is sent after ASKING).
        struct Part: Hashable {
            var slot: Int
            var asking: Bool
        }
        let deadlineUs = Clock.monotonicUs() &+ (config.connectTimeoutMs &+ config.timeoutMs) &* 1000
        var pending = todo
        var askTo: [Int: NodeAddress] = [:]
        // Requests sent again after a redirection or a refused node chunk: from then on in chunks of one slot.
        var oneSlot = Set<Int>()
        var slotOf: [Int: Int] = [:]
        var pauseMs: Int64 = 5
        var round = 0
        while !pending.isEmpty {
            router.refreshIfWanted(until: deadlineUs)
            // Requests by node, then by slot, in request order; and by node alone, for nodes that run one script
            // over several of their slots (Redis 7+): those become chunks of up to p.chunk requests of any slots.
            var groups: [NodeAddress: [Part: [Int]]] = [:]
            var partOrder: [NodeAddress: [Part]] = [:]
            var byNode: [NodeAddress: [Int]] = [:]
            var flags: [NodeAddress: Bool] = [:]
            // Requests of slots no master serves as far as we know (a failover under way): tried again after a
            // pause and a map read, within the deadline.
            var unowned: [Int] = []
            for i in pending {
                guard let id = idOf(i) else { take(i, .failure(Failure(.internal, "batch: request without an id"))); continue }
                let slot = ClusterSlot.ofId(id)
                slotOf[i] = slot
                let t: NodeAddress
                let part = Part(slot: slot, asking: askTo[i] != nil)
                if let to = askTo[i] {
                    t = to
                } else if let n = router.owner(slot) {
                    t = n
                } else {
                    router.wantRefresh()
                    unowned.append(i)
                    continue
                }
                if p.nodeScript != nil, !part.asking, !oneSlot.contains(i) {
                    if flags[t] == nil { flags[t] = router.runsScriptFlags(t, until: deadlineUs) }
                    if flags[t] == true {
                        byNode[t, default: []].append(i)
                        continue
                    }
                }
                if groups[t, default: [:]][part] == nil { partOrder[t, default: []].append(part) }
                groups[t, default: [:]][part, default: []].append(i)
            }
            // Connections are taken in one order (by node) so that two batches never wait for each other's.
            let targets = Set(groups.keys).union(byNode.keys).sorted { ($0.host, $0.port) < ($1.host, $1.port) }
            var runs: [PipelineRun] = targets.map { t in
                var chunks: [[Int]] = []
                var asking: [Bool] = []
                var probes: [[Int]?] = []
                let mixed = byNode[t] ?? []
                for c in stride(from: 0, to: mixed.count, by: p.chunk) {
                    let reqs = Array(mixed[c..<min(c + p.chunk, mixed.count)])
                    // One probe per slot of the chunk; a chunk of one slot goes as the plain script.
                    var seen = Set<Int>()
                    let firsts = reqs.filter { seen.insert(slotOf[$0] ?? -1).inserted }
                    chunks.append(reqs)
                    asking.append(false)
                    probes.append(firsts.count > 1 ? firsts : nil)
                }
                for part in partOrder[t] ?? [] {
                    let reqs = groups[t]?[part] ?? []
                    for c in stride(from: 0, to: reqs.count, by: p.chunk) {
                        chunks.append(Array(reqs[c..<min(c + p.chunk, reqs.count)]))
                        asking.append(part.asking)
                        probes.append(nil)
                    }
                }
                var r = PipelineRun(chunks: chunks)
                r.asking = asking
                r.probes = probes
                return r
            }
            var wholes = [Failure?](repeating: nil, count: targets.count)
            func nest(_ k: Int, _ conns: [Connection?]) {
                if k == targets.count {
                    for (j, c) in conns.enumerated() { if let c { p.send(c, &runs[j]) } }
                    // A chunk from each node in turn, so that every node keeps working while its chunks are read.
                    var more = true
                    while more {
                        more = false
                        for (j, c) in conns.enumerated() { if let c, p.receiveOne(c, &runs[j]) { more = true } }
                    }
                    for (j, c) in conns.enumerated() { if let c { wholes[j] = p.receive(c, &runs[j]).failureValue } }
                    return
                }
                var entered = false
                let r: Result<Void, Failure> = router.pool(targets[k]).with(until: deadlineUs) { conn in
                    entered = true
                    nest(k + 1, conns + [conn])
                    return wholes[k].map { .failure($0) } ?? .success(())
                }
                if !entered {
                    wholes[k] = r.failureValue
                    nest(k + 1, conns + [nil])
                }
            }
            nest(0, [])
            var retry: [Int] = []
            var nextAsk: [Int: NodeAddress] = [:]
            var pause = false
            let canRetry = round < Router.maxRedirections && Clock.monotonicUs() < deadlineUs
            for i in unowned {
                if canRetry {
                    retry.append(i)
                    pause = true
                } else {
                    take(i, .failure(Failure(.connect, "Redis Cluster: no master serves slot \(slotOf[i] ?? -1) now",
                                             transient: true)))
                }
            }
            for j in targets.indices {
                // A node chunk that ran nothing (a slot of it not served there, or in migration): its requests go
                // again, each in its slot's chunk, where Redis's redirections say where.
                let refused = p.refusedNodeChunks(&runs[j])
                if !refused.isEmpty { router.wantRefresh() }
                for i in refused {
                    if canRetry {
                        retry.append(i)
                    } else {
                        take(i, .failure(Failure(.redis, "Redis Cluster: a resharding kept the batch from running",
                                                 transient: true)))
                    }
                }
                p.deliver(runs[j], wholes[j]) { i, res in
                    if case let .failure(f) = res {
                        if let red = f.redirect, canRetry {
                            router.count(red)
                            switch red {
                            case let .moved(s, to): router.moved(slot: s, to: to)
                            case let .ask(_, to): nextAsk[i] = to
                            case .tryAgain: pause = true
                            case .clusterDown: pause = true; router.wantRefresh()
                            }
                            retry.append(i)
                            return
                        }
                        if f.status == .connect || f.status == .timeout { router.failed(targets[j]) }
                    }
                    take(i, res)
                }
            }
            if pause {
                let left = (deadlineUs - Clock.monotonicUs()) / 1000
                if left > 0 { usleep(UInt32(min(pauseMs, left)) * 1000) }
                pauseMs = min(pauseMs * 2, 100)
            }
            retry.sort()
            oneSlot.formUnion(retry)
            pending = retry
            askTo = nextAsk
            round += 1
        }
    }
}
