// memory://: the state of every id in the process, in 64 shards by the id's hash, each under its own lock (held
// only while one id's state changes: no I/O). Memory stays bounded by what is live: an expired key is dropped
// when a call meets it, and each call also looks at two ids of its shard in turn (an incremental sweep) and two of
// another shard (each in turn, if its lock is free), dropping what has expired there: a shard's expired ids go at
// least as fast as new ids come, and every shard is swept while calls are made, whichever ids they name.
// fork(): the child keeps a copy of the parent's state, as of any memory a process has; a shard another thread
// of the parent was changing at that instant cannot be trusted, and the child starts that shard empty.
import Glibc
import HammerCore

final class MemoryStore {
    final class Entry {
        let id: [UInt8]
        var state = MemoryState()
        var position: Int
        init(id: [UInt8], position: Int) {
            self.id = id
            self.position = position
        }
    }

    final class States {
        var map: [[UInt8]: Entry] = [:]
        /// Every entry, for the sweep: swap-removed, each entry knowing its position.
        var order: [Entry] = []
        var cursor = 0

        func remove(_ e: Entry) {
            map.removeValue(forKey: e.id)
            let last = order.removeLast()
            if last !== e {
                order[e.position] = last
                last.position = e.position
            }
        }

        /// Looks at up to `n` entries from the cursor and drops those whose state has all expired.
        func sweep(_ n: Int, _ mono: Int64) {
            for _ in 0..<n {
                if order.isEmpty { return }
                if cursor >= order.count { cursor = 0 }
                let e = order[cursor]
                e.state.purge(mono)
                if e.state.isEmpty { remove(e) } else { cursor += 1 }
            }
        }
    }

    final class Shard {
        var lock = Lock()
        var states = States()
        /// The single calls decided in this shard (under its lock: no lock shared by all threads per call).
        var stats = Stats()
        /// Calls made in this shard, which pick the other shard each call sweeps.
        var rotation: UInt64 = 0
    }

    static let shardBits = 6
    private let shards = (0..<(1 << MemoryStore.shardBits)).map { _ in Shard() }
    private let epoch = ForkEpoch()

    init() {}

    private func afterFork() {
        for s in shards {
            // Free now: no thread of the parent was inside (the forking one never forks under these locks).
            if pthread_mutex_trylock(s.lock.mutex) == 0 {
                pthread_mutex_unlock(s.lock.mutex)
                continue
            }
            // Held by a thread that the child does not have: left as they are, never freed.
            _ = Unmanaged.passRetained(s.lock)
            _ = Unmanaged.passRetained(s.states)
            s.lock = Lock()
            s.states = States()
            s.stats = Stats()
        }
    }

    /// Runs `body` on the id's live state under its shard's lock. With `create` false, an id without state gets
    /// an empty one that is not kept (peek, get_bucket, inspect). With `count`, the call (begun at t0, monotonic
    /// us) is counted in the shard's statistics as `count` says from its result.
    func with<T>(_ id: UnsafeBufferPointer<UInt8>, create: Bool, since t0: Int64 = 0,
                 count: ((T) -> Outcome)? = nil, _ body: (inout MemoryState, Int64) -> T) -> T {
        epoch.check(afterFork)
        let i = shardIndex(id, bits: MemoryStore.shardBits)
        var other = i
        let r = locked(shards[i], id, create: create, since: t0, count: count, next: &other, body)
        sweep(other)
        return r
    }

    /// with()'s work under the shard's lock (with() ran the fork check).
    private func locked<T>(_ s: Shard, _ id: UnsafeBufferPointer<UInt8>, create: Bool, since t0: Int64,
                           count: ((T) -> Outcome)?, next: inout Int, _ body: (inout MemoryState, Int64) -> T) -> T {
        s.lock.lock()
        defer { s.lock.unlock() }
        let mono = Clock.monotonicMs()
        let st = s.states
        st.sweep(2, mono)
        // The shard this call also sweeps: each of the others in turn.
        s.rotation &+= 1
        next = (next + 1 + Int(s.rotation % UInt64(shards.count - 1))) & (shards.count - 1)
        let key = Array(id)
        let r: T
        if let e = st.map[key] {
            e.state.purge(mono)
            r = body(&e.state, mono)
            if e.state.isEmpty { st.remove(e) }
        } else if !create {
            var empty = MemoryState()
            r = body(&empty, mono)
        } else {
            let e = Entry(id: key, position: st.order.count)
            st.map[key] = e
            st.order.append(e)
            r = body(&e.state, mono)
            if e.state.isEmpty { st.remove(e) }
        }
        if let count { s.stats.add(count(r), latencyUs: Clock.monotonicUs() - t0) }
        return r
    }

    /// Two ids of another shard, when no other thread holds it: so that every shard is swept while calls are made,
    /// even when they all go to a few ids. Never waits.
    private func sweep(_ i: Int) {
        let s = shards[i]
        guard pthread_mutex_trylock(s.lock.mutex) == 0 else { return }
        s.states.sweep(2, Clock.monotonicMs())
        pthread_mutex_unlock(s.lock.mutex)
    }

    /// Every shard's statistics, summed.
    func stats() -> Stats {
        epoch.check(afterFork)
        var sum = Stats()
        for s in shards {
            s.lock.lock()
            sum.merge(s.stats)
            s.lock.unlock()
        }
        return sum
    }

    /// Drops the id's state; returns how many Redis keys that state would be (delete_buckets' count).
    func delete(_ id: UnsafeBufferPointer<UInt8>) -> Int64 {
        epoch.check(afterFork)
        let s = shards[shardIndex(id, bits: MemoryStore.shardBits)]
        s.lock.lock()
        defer { s.lock.unlock() }
        let st = s.states
        guard let e = st.map[Array(id)] else { return 0 }
        let n = e.state.keyCount(Clock.monotonicMs())
        st.remove(e)
        return n
    }

    /// Ids held (expired ones not yet swept included).
    var count: Int {
        epoch.check(afterFork)
        var n = 0
        for s in shards {
            s.lock.lock()
            n += s.states.map.count
            s.lock.unlock()
        }
        return n
    }
}

extension Stats {
    /// Counts a call's outcome, as Pool counts it.
    mutating func add(_ o: Outcome, latencyUs: Int64?) {
        calls &+= o.calls
        allowed &+= o.allowed
        denied &+= o.denied
        degraded &+= o.degraded
        for i in 1..<min(Status.limit, errors.count) { errors[i] &+= o.errors[i] }
        if let latencyUs { latency.record(UInt64(max(0, latencyUs))) }
    }

    mutating func merge(_ o: Stats) {
        calls &+= o.calls
        allowed &+= o.allowed
        denied &+= o.denied
        degraded &+= o.degraded
        reconnects &+= o.reconnects
        for i in 0..<min(errors.count, o.errors.count) { errors[i] &+= o.errors[i] }
        latency.merge(o.latency)
    }
}
