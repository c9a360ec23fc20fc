// Blocking calls on the engine: a call of one command is put on its pool's lane like an op of hammer_submit, when
// the lane is idle, and the calling thread waits for its result, watching the lane's socket itself (it polls for
// spin_us first, as a call on its own connection does). One blocking call at a time per handle goes this way: threads
// sharing a lane (one reading, handing replies to the others) made 30k decisions/s with 8 threads against 65-73k
// on connections of their own, and a lane each for concurrent calls 28-32k against 43-46k with 2 threads (the
// engine's lock), so the others take a connection of their own (see BENCHMARKS.md). Each call has timeout_ms; one
// that ends with its command sent and unanswered leaves its place on the lane to absorb the late reply.
import CHammer
import CHiredis
import Glibc
import HammerCore
import Synchronization

extension Engine {
    /// The call's result, or nil when no lane takes it now (no open connection idle, the lane busy, the breaker
    /// open) or Redis redirected it: the caller then makes it on a connection of its own.
    func call(_ op: AsyncOp, _ lc: LaneCall) -> LaneResult? {
        lock.lock()
        defer {
            // Ops of hammer_submit that joined the lane behind this call may have had their replies read here (the
            // socket then has nothing left to wake the caller's loop): the eventfd says they wait.
            signal()
            lock.unlock()
        }
        if closing { return nil }
        let lane: Lane
        switch onLane(op, lc, blocking: true) {
        case .declined: return nil
        case let .completed(r): return r
        case let .taken(l): lane = l
        }
        let deadline = lane.fifo.last(where: { $0.blocking })?.deadlineUs ?? op.deadlineUs
        var spun = false
        while lane.result == nil {
            if Clock.monotonicUs() >= deadline {
                expireOwn(lane)
                break
            }
            if lane.driving || lane.ended {
                // Another thread reads the socket (none does today: a blocking call joins an idle lane only).
                Lock.wait(waitCond, lock.mutex, until: deadline)
                continue
            }
            lane.driving = true
            let fd = lane.fd
            let conn: Connection = lane.conn
            let events = Int16(POLLIN) | (conn.unsent ? Int16(POLLOUT) : 0)
            let first = !spun
            spun = true
            lock.unlock()
            if !(first && conn.spin()) {
                _ = Socket.wait(fd, events, until: deadline)
            }
            lock.lock()
            lane.driving = false
            pump(lane, until: { lane.result != nil && lane.waiting == 0 })   // no read that would find nothing
        }
        let r = lane.result
        lane.result = nil
        if lane.ended {   // endLane left it to this call (see there)
            lane.clear()
            spare.append(lane)
        }
        if case .again? = r { return nil }
        return r ?? .count(.failure(Failure(.internal, "the call was not answered")))
    }

    /// The blocking call ran out of time: its entry completes as a timeout (the policies then decide, as for a call
    /// on its own connection) and keeps its place on the lane.
    private func expireOwn(_ lane: Lane) {
        guard let k = (lane.head..<lane.fifo.count).first(where: { lane.fifo[$0].blocking && !lane.fifo[$0].done })
        else { return }
        expire(lane, k, Failure(.timeout, "Redis command timed out (timeout_ms=\(handle.config.timeoutMs))"))
        settle(lane)
    }
}

extension Handle {
    /// count_hit on the lane, or nil (see Engine.call).
    func countHitOnLane(id: UnsafeBufferPointer<UInt8>, bucket: Int64, nowMs: Int64,
                        increment: Int64) -> Result<Int64, Failure>? {
        guard case let .count(r)? = onLane(id, .count(bucket: bucket, nowMs: nowMs, increment: increment)) else {
            return nil
        }
        return r
    }

    /// A decision on the lane, or nil (see Engine.call).
    func limitOnLane(id: UnsafeBufferPointer<UInt8>, _ lim: Limit, mode: Mode, cost: Int64,
                     now: Int64?) -> Result<Decision, Failure>? {
        guard case let .decision(r, note)? = onLane(id, .decision(lim: lim, mode: mode, cost: cost, now: now)) else {
            return nil
        }
        if let note { LastError.set(note) }
        return r
    }

    /// get_bucket on the lane, or nil (see Engine.call).
    func getBucketOnLane(id: UnsafeBufferPointer<UInt8>, bucket: Int64) -> Result<BucketInfo?, Failure>? {
        guard case let .bucket(r)? = onLane(id, .getBucket(bucket: bucket)) else { return nil }
        return r
    }

    /// inspect_bucket on the lane, or nil (see Engine.call).
    func inspectOnLane(id: UnsafeBufferPointer<UInt8>, scaleMs: Int64, limit: Int64) -> Result<Inspection, Failure>? {
        guard case let .inspection(r)? = onLane(id, .inspect(scaleMs: scaleMs, limit: limit)) else { return nil }
        return r
    }

    /// A decision of several limits on the lane, or nil (see Engine.call).
    func limitAllOnLane(_ req: MultiRequest) -> Result<Decision, Failure>? {
        let body = OpBody.multi(set: req.set, mode: req.mode, cost: req.cost, now: req.now)
        guard case let .decision(r, _)? = onLane(req.id, body) else { return nil }
        return r
    }

    private func onLane(_ id: UnsafeBufferPointer<UInt8>, _ body: OpBody) -> LaneResult? {
        if memory != nil { return nil }
        // One blocking call at a time on the lane (see Engine.onLane): the others go straight to connections of
        // their own, without taking the engine's lock.
        if laneCalls.load(ordering: .relaxed) > 0 { return nil }
        laneCalls.add(1, ordering: .relaxed)
        pool.gate.active.add(1, ordering: .relaxed)
        defer {
            laneCalls.subtract(1, ordering: .relaxed)
            pool.gate.active.subtract(1, ordering: .relaxed)
        }
        guard let base = id.baseAddress, case let .success(engine) = completions.get(self) else { return nil }
        // The caller's id, not copied: valid while the call waits, and never read once its entry completed.
        let ids = UnsafeMutableBufferPointer(start: UnsafeMutablePointer(mutating: base), count: id.count)
        let deadline = Clock.monotonicUs() &+ config.timeoutMs &* 1000
        let op = AsyncOp(tag: 0, kind: 0, id: ids, body: body, deadlineUs: deadline, owned: false)
        guard let lc = laneCall(op) else { return nil }
        return engine.call(op, lc)
    }
}

