// The engine's lanes (Lane.swift), driven with the engine's lock held and never waiting: an op is written by the
// thread that makes it, as far as the socket takes it now; replies are read by whoever drains (hammer_drain) or by
// the blocking call waiting on the lane's socket (Call.swift), and each goes to the op at the head of the list.
// One active lane per pool (a single Redis's, or each cluster node's). An op whose deadline passed completes as
// timed out but keeps its place to absorb its late reply; a reply that is not the head op's (a stray, a broken
// reply, one of another shape) fails every op in flight on the lane, resends none, and closes the connection.
// Redis saying it did not run an op is the only resend: NOSCRIPT by EVAL on the lane, a cluster's redirection
// the way that follows it.
import CHammer
import CHiredis
import Glibc
import HammerCore

extension Engine {
    enum LaneTake {
        case taken(Lane)
        case completed(LaneResult)
        case declined
    }

    /// Ops in flight on a lane before more go to the I/O thread's batches, which share one script call.
    static let laneDepth = 8

    /// Puts `op` on its pool's active lane (a new one if there is none and an open connection is idle), or answers
    /// it from the deny cache; declined (the op untouched) when the lane is full or no connection is at hand without
    /// waiting. `blocking`: a blocking call's op (its thread then watches the socket; see Call.swift).
    /// `deferWrite`: the caller writes it with the other ops of one submit (writeDeferred).
    func onLane(_ op: AsyncOp, _ call: LaneCall, blocking: Bool = false, deferWrite: Bool = false) -> LaneTake {
        let h = handle
        guard let (pool, node) = h.laneTarget(op.idBuffer) else { return .declined }
        let key = ObjectIdentifier(pool)
        let lane: Lane
        if let a = active[key], !a.retired {
            // A blocking call joins only an idle lane: waiting threads handing the socket and the replies to one
            // another cost more wake-ups than their shared round trips save (measured: 8 threads made 30k decisions/s
            // so against 65-73k on connections of their own), so each takes a connection of its own instead.
            if a.inFlight >= Engine.laneDepth || blocking && a.inFlight > 0 { return .declined }
            lane = a
        } else {
            guard let conn = pool.lendNow() else { return .declined }
            conn.expect(.single)   // every reply on a lane is a single call's
            if let l = spare.popLast() {
                l.start(conn, pool: pool, node: node)
                lane = l
            } else {
                lane = Lane(conn, pool: pool, node: node)
            }
            lanes.append(lane)
            active[key] = lane
        }
        if !blocking && !lane.watched {
            var ev = epoll_event()
            ev.events = EPOLLIN.rawValue | (lane.conn.unsent ? EPOLLOUT.rawValue : 0)
            if epoll_ctl(fd, EPOLL_CTL_ADD, lane.fd, &ev) != 0 {
                if lane.inFlight == 0 { endLane(lane, nil, trips: false) }
                return .declined
            }
            lane.watched = true
            lane.watchingWrite = lane.conn.unsent
        }
        var time: Int64? = nil
        var cached: (since: Int64, resets: UInt64)? = nil
        switch op.body {
        case let .multi(_, _, _, now): time = h.time(now)
        case .inspect: time = h.time(nil)
        default: break
        }
        if case let .decision(lim, mode, cost) = call, case let .decision(_, _, _, now) = op.body {
            time = h.time(now)
            if let cache = h.denyCache, now == nil, mode != .check {
                let cnow = DenyCache.now(h.config, sent: time)
                let (d, resets) = cache.answer(id: op.idBuffer, lim, mode: mode, cost: cost, now: cnow)
                if let d {
                    if lane.inFlight == 0 { endLane(lane, nil, trips: false) }
                    return .completed(.decision(.success(d), note: nil))
                }
                cached = (DenyCache.since(h.config, cnow), resets)
            }
        }
        // On an open connection a command has timeout_ms, within the op's own deadline.
        let t0 = Clock.monotonicUs()
        // The single call's own script, the cheapest, unless its reply is an integer, which could not be told from
        // a stray one (a broken proxy's) arriving late: an op of hammer_submit then goes as the batch script with one
        // request (an array). A blocking call, alone on the lane, reads its reply as a call on its own connection
        // does (and the pool's check before each lend is what catches a late stray there).
        let batch = !call.singleIsArray(time: time) && (!blocking || lane.inFlight > 0)
        var e = LaneEntry(op: op, call: call, time: time, cached: cached, t0: t0,
                          deadlineUs: min(op.deadlineUs, t0 &+ h.config.timeoutMs &* 1000), blocking: blocking,
                          batch: batch)
        if deferWrite { e.chunk = -1 }
        lane.fifo.append(e)
        lane.waiting += 1
        if deferWrite { return .taken(lane) }
        if let f = h.appendLaneCommand(lane.conn, e) {
            failLane(lane, f)
        } else {
            flush(lane)
        }
        return .taken(lane)
    }

    /// Writes the entries one submit put on the lane (at its tail): the count_hits as one call of their batch
    /// script, the decisions as one of theirs (Redis runs one script for all of them), the others one by one; then
    /// sends them.
    func writeDeferred(_ lane: Lane) {
        let h = handle
        guard let start = lane.fifo[lane.head...].firstIndex(where: { $0.chunk == -1 }) else { return }
        // Grouped in the list as they are written, so that the replies keep its order; on a cluster one call's
        // keys must share a slot (the node's lane carries several).
        let slots = h.topology.isCluster
        func rank(_ e: LaneEntry) -> Int {
            let slot = slots ? ClusterSlot.ofId(e.op.idBuffer) : 0
            switch e.call {
            case .decision: return slot
            case .countHit: return ClusterSlot.count + slot
            default: return 2 * ClusterSlot.count
            }
        }
        var tail = Array(lane.fifo[start...]).map { (rank($0), $0) }.sorted { $0.0 < $1.0 }.map { $0.1 }
        var i = 0
        while i < tail.count {
            var j = i + 1
            let r = rank(tail[i])
            if r < 2 * ClusterSlot.count { while j < tail.count && rank(tail[j]) == r { j += 1 } }
            if j - i > 1 {
                tail[i].chunk = j - i
                for k in i + 1..<j { tail[k].chunk = 0 }
                for k in i..<j { tail[k].batch = true }
            } else {
                tail[i].chunk = 1
            }
            i = j
        }
        lane.fifo.replaceSubrange(start..., with: tail)
        i = 0
        while i < tail.count {
            let k = max(1, tail[i].chunk)
            let f = k > 1 ? h.appendLaneChunk(lane.conn, tail[i..<i + k]) : h.appendLaneCommand(lane.conn, tail[i])
            if let f {
                failLane(lane, f)
                return
            }
            i += k
        }
        flush(lane)
    }

    /// An entry's result to its blocking call or, for an op of hammer_submit, to the completions (or, for one
    /// Redis did not run and redirected, back to the queue of the I/O thread, which follows redirections).
    /// Whoever holds the lock then calls signal() before letting go of it, so that the descriptor says so.
    func deliver(_ lane: Lane, _ e: LaneEntry, _ r: LaneResult) {
        if e.blocking {
            lane.result = r
            pthread_cond_broadcast(waitCond)
            return   // the op is the caller's
        }
        if case .again = r {
            requeue(e.op)
            return
        }
        done.append(Handle.completion(e.op, r))
        e.op.release()
    }

    /// Sends what the lane's socket takes now, and watches it for writing while the rest waits.
    func flush(_ lane: Lane) {
        switch lane.conn.sendSome() {
        case let .failure(f): failLane(lane, f)
        case let .success(events):
            let all = events == 0
            if lane.watched && all == lane.watchingWrite {
                var ev = epoll_event()
                ev.events = EPOLLIN.rawValue | (all ? 0 : EPOLLOUT.rawValue)
                _ = epoll_ctl(fd, EPOLL_CTL_MOD, lane.fd, &ev)
                lane.watchingWrite = !all
            }
        }
    }

    /// Sends what waits, takes the replies that have come (each to the op at the head of the list), and ends the
    /// lane once no op waits on it. `enough`: stop reading once it says so.
    func pump(_ lane: Lane, until enough: () -> Bool = { false }) {
        let h = handle
        if lane.ended { return }
        if lane.conn.unsent {
            flush(lane)
            if lane.ended { return }
        }
        var resend = false
        // The replies of this read are handed over once it is known to be in step: a reply too many after them
        // means any of them may be the one too many, shifted onto the next op (a Redis error, then the real reply).
        lane.matched.removeAll(keepingCapacity: true)
        let f = lane.conn.receiveSome(enough: enough) { r in
            if lane.outOfStep { freeReplyObject(r); return }
            guard let e = lane.pop() else { lane.outOfStep = true; freeReplyObject(r); return }
            // The ops that share this reply (one call of a batch script for several of them).
            var members: [LaneEntry] = []
            if e.chunk > 1 {
                for _ in 1..<e.chunk {
                    guard let m = lane.pop() else { break }
                    members.append(m)
                }
            }
            if members.count + 1 < e.chunk || !Handle.isLaneReply(r, e) {
                // Not this request's reply: the stream is out of step, and every op on it fails (failLane).
                lane.outOfStep = true
                freeReplyObject(r)
                for x in [e] + members where !x.done {
                    lane.waiting -= 1
                    deliver(lane, x, h.laneResult(x, .failure(Engine.outOfStep)))
                }
                return
            }
            if !e.byEval && Connection.isNoScript(r) {
                // Redis did not run it (a flushed or restarted server): the one resend, by EVAL, which loads it;
                // not for an op already completed, nor once its deadline has passed (it then times out unsent).
                freeReplyObject(r)
                let now = Clock.monotonicUs()
                var again: [LaneEntry] = []
                for var x in [e] + members where !x.done {
                    lane.waiting -= 1
                    if now >= x.deadlineUs {
                        deliver(lane, x, h.laneResult(x, .failure(Failure(.timeout, "Redis command timed out (timeout_ms=\(h.config.timeoutMs)); not sent again after NOSCRIPT"))))
                        continue
                    }
                    x.byEval = true
                    x.chunk = again.isEmpty ? 1 : 0
                    again.append(x)
                }
                if again.isEmpty { return }
                if again.count > 1 { again[0].chunk = again.count }
                lane.fifo.append(contentsOf: again)
                lane.waiting += again.count
                let failed = again.count > 1 ? h.appendLaneChunk(lane.conn, again[...]) : h.appendLaneCommand(lane.conn, again[0])
                if failed == nil { resend = true; return }
                lane.fifo.removeLast(again.count)
                for x in again {
                    lane.waiting -= 1
                    deliver(lane, x, h.laneResult(x, .failure(Failure(.internal, "EVAL could not be queued"))))
                }
                return
            }
            if e.chunk <= 1 {
                if e.done { freeReplyObject(r); return }
                lane.waiting -= 1
                lane.matched.append((e, r, -1))
                return
            }
            var width = 5
            if case .countHit = e.call { width = 1 }
            var any = false
            for (k, x) in ([e] + members).enumerated() where !x.done {
                lane.waiting -= 1
                lane.matched.append((x, r, k * width))
                any = true
            }
            if any { lane.held.append(r) } else { freeReplyObject(r) }
        }
        let tainted = lane.outOfStep || f?.status == .protocol
        for (e, r, at) in lane.matched {
            if !tainted, Replies.error(r)?.redirect != nil {
                // Made again by the path that follows redirections: it meets the redirection itself, and counts it,
                // updates the map and reads it as it does for any call.
                deliver(lane, e, .again)
            } else {
                deliver(lane, e, h.laneResult(e, tainted ? .failure(f ?? Engine.outOfStep) : .success(r), at: max(0, at)))
            }
            if at < 0 { freeReplyObject(r) }
        }
        for r in lane.held { freeReplyObject(r) }
        lane.held.removeAll(keepingCapacity: true)
        lane.matched.removeAll(keepingCapacity: true)
        if let f {
            failLane(lane, f)
        } else if lane.outOfStep {
            failLane(lane, Engine.outOfStep)
        } else if resend {
            flush(lane)
        }
        if !lane.ended && lane.waiting == 0 {
            if lane.timedOut {
                endLane(lane, Engine.overdue, trips: true)
            } else if lane.inFlight == 0 {
                endLane(lane, nil, trips: false)
            }
        }
    }

    static let outOfStep = Failure(.protocol, "Redis sent a reply that no command asked for, or not the one asked for; the connection is dropped")
    static let overdue = Failure(.timeout, "no reply within the call's deadline; it may have run")

    /// Fails every op waiting on the lane (none is resent: each may have run) and closes its connection.
    func failLane(_ lane: Lane, _ f: Failure) {
        if lane.ended { return }
        lane.ended = true   // no flush or pump of it from the deliveries below
        while let e = lane.pop() {
            if !e.done { deliver(lane, e, handle.laneResult(e, .failure(f))) }
        }
        lane.waiting = 0
        lane.conn.close()
        lane.ended = false
        endLane(lane, f, trips: false)
    }

    /// Takes the lane out of the set and gives its connection back (closed unless it ended in step).
    func endLane(_ lane: Lane, _ f: Failure?, trips: Bool) {
        if lane.ended { return }
        lane.ended = true
        if lane.watched { _ = epoll_ctl(fd, EPOLL_CTL_DEL, lane.fd, nil) }
        if lane.inFlight > 0 || f != nil { lane.conn.close() }
        lanes.removeAll { $0 === lane }
        let key = ObjectIdentifier(lane.pool)
        if active[key] === lane { active[key] = nil }
        lane.pool.giveBack(lane.conn, f, trips: trips)
        // A node that timed out or lost its connection may be gone (a failover): the map is read again soon.
        if let f { handle.topology.failed(lane.node, f) }
        // A blocking call waiting on the lane sees it gone; the lane itself waits for its next connection.
        pthread_cond_broadcast(waitCond)
        if !lane.driving && lane.result == nil {
            lane.clear()
            spare.append(lane)
        }
    }

    /// Completes entry k of the lane as timed out (the policies decide, as for any call that Redis did not answer);
    /// it keeps its place, and the lane takes no new op.
    func expire(_ lane: Lane, _ k: Int, _ f: Failure) {
        lane.fifo[k].done = true
        lane.waiting -= 1
        lane.retired = true
        lane.timedOut = true
        let key = ObjectIdentifier(lane.pool)
        if active[key] === lane { active[key] = nil }
        let e = lane.fifo[k]
        deliver(lane, e, handle.laneResult(e, .failure(f)))
    }

    /// Once a lane's ops have all completed but late replies are still due: nobody waits for them, so the
    /// connection goes with them; and what was not written in time must never go out after its op was told it
    /// timed out.
    func settle(_ lane: Lane) {
        if lane.ended || !lane.timedOut { return }
        if lane.waiting == 0 {
            endLane(lane, Engine.overdue, trips: true)
        } else if lane.conn.unsent {
            failLane(lane, Failure(.timeout, "not sent within the call's deadline; the connection is dropped"))
        }
    }

    /// The deadline thread's part: the ops of hammer_submit on lanes whose deadline passed complete as timed out
    /// (blocking calls see to their own). The earliest deadline still to come, if any.
    func expireLanes(now: Int64) -> Int64? {
        var first: Int64? = nil
        for lane in lanes {
            var any = false
            for k in lane.head..<lane.fifo.count where !lane.fifo[k].done && !lane.fifo[k].blocking {
                let d = lane.fifo[k].deadlineUs
                if d > now {
                    first = min(first ?? d, d)
                    continue
                }
                expire(lane, k, Failure(.timeout, "Redis command timed out (timeout_ms=\(handle.config.timeoutMs)); it may have run"))
                any = true
            }
            if any { settle(lane) }
        }
        signal()
        return first
    }
}
