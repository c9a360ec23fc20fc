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
        guard tags else { return pool.with(since: t0, outcome: outcome, body) }
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

/// One batch pipeline's chunks and their replies.
struct PipelineRun {
    var chunks: [[Int]]
    var replies: [Reply?]
    /// Chunks queued (written, or to be written by the next read), and chunks whose reply was read.
    var sent = 0
    var read = 0
    /// Why the chunks not queued were not (an earlier chunk's failure).
    var stopped: Failure? = nil
    /// Which chunks follow an ASKING (an ASK redirection).
    var asking: [Bool]
    /// For a chunk of several slots of one node (the node script), the request whose id's key base probes each
    /// slot; nil for a chunk of one slot.
    var probes: [[Int]?]

    init(chunks: [[Int]]) {
        self.chunks = chunks
        replies = [Reply?](repeating: nil, count: chunks.count)
        asking = [Bool](repeating: false, count: chunks.count)
        probes = [[Int]?](repeating: nil, count: chunks.count)
    }
}

/// How a batch's script calls are written and read.
struct Pipeline {
    let script: Script
    /// The script's variant for a chunk of several slots of one node (lua/*_node.lua), if it has one.
    let nodeScript: Script?
    let width: Int
    /// Requests per chunk, at most.
    let chunk: Int
    let keyCount: (Int) -> Int
    let keys: (Int, inout Args) -> Void
    let header: ([Int], inout Args) -> Void
    let fill: (Int, inout Args) -> Void
    /// timeout_ms, in us: each chunk's reply is awaited that long from the previous reply.
    let timeoutUs: Int64
    /// Appends a key of request i's slot that nothing writes (its id's key base), for the node script's probes.
    let probe: (Int, inout Args) -> Void

    func script(_ run: PipelineRun, _ c: Int) -> Script {
        run.probes[c] != nil ? nodeScript ?? script : script
    }

    /// A chunk's call after "EVALSHA sha": numkeys, every request's keys (on a cluster all in one slot), the
    /// chunk's header, every request's fields. A node chunk declares no keys (Redis refuses KEYS of several slots):
    /// 0, then in ARGV the keys' number and the keys, the probes' number and the probes, then the same arguments.
    func build(_ run: PipelineRun, _ c: Int, _ a: inout Args) {
        var n = 0
        for i in run.chunks[c] { n += keyCount(i) }
        if let probes = run.probes[c], nodeScript != nil {
            a.add("0")
            a.add(Int64(n))
            for i in run.chunks[c] { keys(i, &a) }
            a.add(Int64(probes.count))
            for i in probes { probe(i, &a) }
        } else {
            a.add(Int64(n))
            for i in run.chunks[c] { keys(i, &a) }
        }
        header(run.chunks[c], &a)
        for i in run.chunks[c] { fill(i, &a) }
    }

    /// Takes back the requests of the node chunks that ran nothing (HAMMERSLOTS: a slot not served there, or in
    /// migration): their replies are freed and the chunks emptied, so deliver() hands them nothing.
    func refusedNodeChunks(_ run: inout PipelineRun) -> [Int] {
        var out: [Int] = []
        for c in run.chunks.indices where run.probes[c] != nil {
            guard case let .success(r)? = run.replies[c], r.pointee.type == REDIS_REPLY_ERROR,
                  Connection.bytes(r).starts(with: Scripts.nodeChunkRefused) else { continue }
            freeReplyObject(r)
            run.replies[c] = nil
            out += run.chunks[c]
            run.chunks[c] = []
        }
        return out
    }

    /// Chunks in flight on a connection at most: a batch is written as its replies come back, so that each chunk
    /// gets its own timeout_ms and a batch longer than timeout_ms completes while Redis keeps answering.
    static let window = 8

    /// Queues the first chunks' calls (written by the first read; receive() queues the others as replies come).
    func send(_ conn: Connection, _ run: inout PipelineRun) {
        conn.expect(RespLimits(elements: chunk * width + 8, totalBytes: max(4, run.chunks.count) << 20))
        top(conn, &run)
    }

    /// Queues chunks until `window` are in flight.
    private func top(_ conn: Connection, _ run: inout PipelineRun) {
        while run.stopped == nil && run.sent < run.chunks.count && run.sent - run.read < Pipeline.window {
            let c = run.sent
            if run.asking[c] {
                conn.args.reset()
                conn.args.add("ASKING")
                if let f = conn.append() { run.replies[c] = .failure(f); run.stopped = f; return }
            }
            conn.args.reset()
            conn.args.add("EVALSHA")
            conn.args.add(script(run, c).sha)
            build(run, c, &conn.args)
            if let f = conn.append() { run.replies[c] = .failure(f); run.stopped = f; return }
            run.sent += 1
        }
    }

    /// Reads the next chunk's reply (its ASKING's first), within timeout_ms of now (the previous reply), and queues
    /// the next chunk. False once every queued chunk is read, or the connection failed: then the chunks not read
    /// get the failure (their fate unknown: they may have run), and the chunks never sent say so.
    func receiveOne(_ conn: Connection, _ run: inout PipelineRun) -> Bool {
        guard run.read < run.sent else { return false }
        let c = run.read
        conn.extend(until: Clock.monotonicUs() &+ timeoutUs)
        var askError: UnsafeMutablePointer<redisReply>? = nil
        var r: Reply
        if run.asking[c], case let .failure(f) = conn.read(poll: false).map({ a -> Void in
            if a.pointee.type == REDIS_REPLY_ERROR { askError = a } else { freeReplyObject(a) }
        }) {
            r = .failure(f)
        } else {
            r = conn.read(poll: false)
        }
        if let askError {
            if case let .success(x) = r { freeReplyObject(x) }
            r = .success(askError)
        }
        run.replies[c] = r
        run.read += 1
        if case let .failure(f) = r {
            for k in run.read..<run.sent { run.replies[k] = .failure(f) }
            run.read = run.sent
            run.stopped = run.stopped ?? f
            let unsent = Failure(f.status, "not sent: an earlier chunk of the batch failed: " + f.message,
                                 transient: f.transient)
            for k in run.sent..<run.chunks.count where run.replies[k] == nil { run.replies[k] = .failure(unsent) }
            return false
        }
        top(conn, &run)
        return run.read < run.sent
    }

    /// Reads every chunk's reply, writing the rest as they come; NOSCRIPT chunks are sent again by EVAL.
    func receive(_ conn: Connection, _ run: inout PipelineRun) -> Result<Void, Failure> {
        while receiveOne(conn, &run) {}
        let lost = run.stopped
        if lost == nil {
            for c in 0..<run.sent {
                guard case let .success(r)? = run.replies[c], Connection.isNoScript(r) else { continue }
                freeReplyObject(r)
                if conn.isBroken {
                    // An earlier resend failed: the connection is out of step, so nothing more is sent on it.
                    run.replies[c] = .failure(Failure(.timeout, "not sent: an earlier chunk of the batch failed"))
                    continue
                }
                if run.asking[c] {
                    conn.args.reset()
                    conn.args.add("ASKING")
                    if case let .success(a) = conn.run(poll: false) { freeReplyObject(a) }
                }
                // After an ASK, the EVAL that follows a NOSCRIPT needs an ASKING of its own too (else the importing
                // node answers MOVED, and the request bounces between the two nodes).
                conn.extend(until: Clock.monotonicUs() &+ timeoutUs)
                conn.asking = run.asking[c]
                run.replies[c] = conn.eval(script(run, c), poll: false) { a in build(run, c, &a) }
                conn.asking = false
            }
        }
        // A chunk's reply of another shape, or a reply nobody asked for: the stream may be out of step, so no
        // reply of this pipeline is trusted, and the connection goes (the pool drops it on PROTOCOL).
        let unusable = conn.hasUnread || run.replies.indices.contains { c in
            guard case let .success(r)? = run.replies[c] else { return false }
            return !Replies.isUsableBatch(r, elements: run.chunks[c].count * width)
        }
        if unusable {
            let f = Failure(.protocol, "batch: Redis sent a reply of an unexpected shape; the connection is dropped")
            for c in run.replies.indices {
                if case let .success(r)? = run.replies[c] { freeReplyObject(r) }
                run.replies[c] = .failure(f)
            }
            return .failure(f)
        }
        return lost.map { .failure($0) } ?? .success(())
    }

    /// Hands each request its element of its chunk's reply (or the chunk's failure), and frees the replies.
    func deliver(_ run: PipelineRun, _ whole: Failure?,
                 _ take: (Int, Result<UnsafeMutablePointer<UnsafeMutablePointer<redisReply>?>, Failure>) -> Void) {
        for c in run.chunks.indices {
            let chunk = run.chunks[c]
            switch run.replies[c] ?? .failure(whole ?? Failure(.connect, "batch not sent")) {
            case let .failure(f):
                for i in chunk { take(i, .failure(f)) }
            case let .success(r):
                if let f = Replies.error(r) {
                    for i in chunk { take(i, .failure(f)) }
                } else if r.pointee.type == REDIS_REPLY_ARRAY, r.pointee.elements == chunk.count * width,
                          let el = r.pointee.element {
                    for (k, i) in chunk.enumerated() { take(i, .success(el + k * width)) }
                } else {
                    for i in chunk { take(i, .failure(Failure(.protocol, "batch: reply of an unexpected shape"))) }
                }
                freeReplyObject(r)
            }
        }
    }
}
