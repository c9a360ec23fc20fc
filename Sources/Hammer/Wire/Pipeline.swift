// A batch as a pipeline of script calls ("chunks") on one connection: how each chunk's call is built (its keys,
// header and requests' fields; a node chunk of several slots declares its keys in ARGV), written, and its reply read
// and handed to the batch's requests. Used by every topology (Routing.swift sends a cluster's per node).
import CHiredis
import Glibc
import HammerCore

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
