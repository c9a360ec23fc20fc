// One hiredis connection and its reusable argument buffers. Used by one thread at a time (the pool sees to it).
import CHiredis
import Glibc
import Synchronization
import HammerCore

/// Arguments of one command, packed in one byte buffer; reused call after call so the hot path does not allocate.
struct Args {
    var bytes: [UInt8] = []
    var ends: [Int] = []

    init() {
        bytes.reserveCapacity(1024)
        ends.reserveCapacity(16)
    }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }
    mutating func add(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        ends.append(bytes.count)
    }
    mutating func add(_ b: [UInt8]) { bytes.append(contentsOf: b); ends.append(bytes.count) }
    mutating func add(_ v: Int64) { Decimal.append(v, to: &bytes); ends.append(bytes.count) }
    /// Opens an argument built in pieces: append to `bytes`, then call `end()`.
    mutating func end() { ends.append(bytes.count) }
    var count: Int { ends.count }

    /// The argument `i`'s bytes.
    func arg(_ i: Int) -> ArraySlice<UInt8> { bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]] }
}

final class Connection {
    var ctx: UnsafeMutablePointer<redisContext>?
    var args = Args()
    /// Microseconds to poll for a reply (0: never), and the gate that allows it.
    let spinUs: Int64
    let gate: SpinGate?
    /// Calls left before this connection polls again, after polls that the reply outlasted (a distant or busy
    /// Redis): 0, then 1, 3, 7 ... 63 as misses repeat.
    var spinSkip = 0
    var spinMisses = 0
    /// The last connect() failed because nothing listened on the port (ECONNREFUSED): retrying costs no wait.
    private(set) var refused = false
    /// When the pool last took it back (monotonic us).
    var releasedUs: Int64 = 0
    /// The command in RESP, rebuilt per command from `args` (kept apart from it: no overlapping access).
    private var wire: [UInt8] = []

    init(spinUs: Int64 = 0, gate: SpinGate = .shared) {
        self.spinUs = spinUs
        self.gate = spinUs > 0 ? gate : nil
        wire.reserveCapacity(1024)
    }

    deinit { close() }

    func close() {
        if let c = ctx { redisFree(c) }
        ctx = nil
    }

    /// Forgets the connection without a byte sent: a fork's child closing its copy of the parent's socket. A
    /// connection that a parent's thread was using at the fork may be half-way through a change of its buffers:
    /// then only the descriptor is closed and the memory is left alone.
    func abandon(inUse: Bool) {
        guard let c = ctx else { return }
        if inUse { Glibc.close(c.pointee.fd) } else { redisFree(c) }
        ctx = nil
    }

    var isBroken: Bool { ctx.map { $0.pointee.err != 0 } ?? true }

    /// An idle connection with something to read has been closed by the server (idle timeout, CLIENT KILL,
    /// restart): a reply cannot be pending, since every command's reply is read before the connection goes back.
    /// One poll() with no wait, so such a connection is replaced before a hit is sent on it.
    var isStale: Bool {
        guard let c = ctx else { return true }
        var p = pollfd(fd: c.pointee.fd, events: Int16(POLLIN), revents: 0)
        return Glibc.poll(&p, 1, 0) != 0
    }

    static func timeval(ms: Int64) -> Glibc.timeval {
        Glibc.timeval(tv_sec: Int(ms / 1000), tv_usec: Int((ms % 1000) * 1000))
    }

    /// Connects, authenticates and selects the database. On failure the context is freed.
    func connect(_ config: Config) -> Failure? {
        close()
        let ctv = Connection.timeval(ms: config.connectTimeoutMs)
        let c: UnsafeMutablePointer<redisContext>?
        switch config.endpoint {
        case let .tcp(host, port): c = redisConnectWithTimeout(host, port, ctv)
        case let .unix(path): c = redisConnectUnixWithTimeout(path, ctv)
        }
        guard let c else { return Failure(.nomem, "cannot allocate a Redis connection") }
        ctx = c
        refused = false
        if c.pointee.err != 0 {
            refused = Connection.errstr(c) == String(cString: strerror(ECONNREFUSED))
            let f = contextFailure(connecting: true, config)
            close()
            return f
        }
        if case .tcp = config.endpoint { _ = redisEnableKeepAlive(c) }
        _ = redisSetTimeout(c, Connection.timeval(ms: config.timeoutMs))
        if let password = config.password {
            args.reset()
            args.add("AUTH")
            if let user = config.user { args.add(Array(user.utf8)) }
            args.add(Array(password.utf8))
            if let f = expectOK(config, what: "AUTH") { close(); return f }
        }
        if config.db != 0 {
            args.reset()
            args.add("SELECT")
            args.add(config.db)
            if let f = expectOK(config, what: "SELECT \(config.db)") { close(); return f }
        } else if config.password == nil {
            // One PING, so that a server wanting a password we lack (NOAUTH), or a peer that is no Redis, shows now
            // (with a password, AUTH has shown it).
            args.reset()
            args.add("PING")
            if let f = expectOK(config, what: "PING") { close(); return f }
        }
        return nil
    }

    private func expectOK(_ config: Config, what: String) -> Failure? {
        switch run() {
        case let .failure(f): return f
        case let .success(r):
            defer { freeReplyObject(r) }
            if r.pointee.type == REDIS_REPLY_ERROR {
                // Never echo the command: AUTH carries the password.
                return Failure(.redis, "\(what) on \(config.redacted) failed: \(Connection.text(r))")
            }
            return nil
        }
    }

    /// Sends `args` and waits for the reply. The caller frees the reply with freeReplyObject.
    func run(poll: Bool = true) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        if let f = append() { return .failure(f) }
        return read(poll: poll)
    }

    /// Queues `args` in the output buffer (pipelining); read() sends the buffer and reads one reply. The command is
    /// written in RESP into a buffer kept from call to call, then copied once into hiredis's output buffer.
    func append() -> Failure? {
        guard let c = ctx else { return Failure(.connect, "not connected") }
        wire.removeAll(keepingCapacity: true)
        Resp.appendCommand(bytes: args.bytes, ends: args.ends, to: &wire)
        let rc = wire.withUnsafeBufferPointer { b in
            UnsafeRawPointer(b.baseAddress!).withMemoryRebound(to: CChar.self, capacity: b.count) {
                redisAppendFormattedCommand(c, $0, b.count)
            }
        }
        return rc == REDIS_OK ? nil : contextFailure(connecting: false, nil)
    }

    /// Reads one reply (sending what is queued first). `poll: false` sleeps at once: a batch's reply takes longer
    /// than any poll, and its misses would stop the connection's single calls from polling.
    func read(poll: Bool = true) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        guard let c = ctx else { return .failure(Failure(.connect, "not connected")) }
        var raw: UnsafeMutableRawPointer? = nil
        if poll, let gate {
            // A reply may be read already (pipelines); else send what is queued, then poll before sleeping.
            if redisGetReplyFromReader(c, &raw) != REDIS_OK { return .failure(contextFailure(connecting: false, nil)) }
            if let r = raw { return .success(r.assumingMemoryBound(to: redisReply.self)) }
            var done: Int32 = 0
            while done == 0 {
                if redisBufferWrite(c, &done) != REDIS_OK { return .failure(contextFailure(connecting: false, nil)) }
            }
            if spinSkip > 0 {
                spinSkip -= 1
            } else if gate.active.load(ordering: .relaxed) <= gate.maxActive {
                if gate.spinners.add(1, ordering: .relaxed).newValue <= gate.maxSpinners {
                    if Connection.poll(fd: c.pointee.fd, forUs: spinUs) {
                        spinMisses = 0
                    } else {
                        spinMisses = min(spinMisses + 1, 6)
                        spinSkip = (1 << spinMisses) - 1
                    }
                }
                gate.spinners.subtract(1, ordering: .relaxed)
            }
        }
        let rc = redisGetReply(c, &raw)
        guard rc == REDIS_OK, let reply = raw else {
            if let raw { freeReplyObject(raw) }
            return .failure(contextFailure(connecting: false, nil))
        }
        return .success(reply.assumingMemoryBound(to: redisReply.self))
    }

    /// Polls `fd` without sleeping until it is readable (true) or `us` microseconds have passed (false).
    static func poll(fd: Int32, forUs us: Int64) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Clock.monotonicUs() + us
        repeat {
            if Glibc.poll(&p, 1, 0) != 0 { return true }
        } while Clock.monotonicUs() < deadline
        return false
    }

    static func isNoScript(_ r: UnsafeMutablePointer<redisReply>) -> Bool {
        r.pointee.type == REDIS_REPLY_ERROR && text(r).hasPrefix("NOSCRIPT")
    }

    /// Runs a script by EVALSHA; on NOSCRIPT (a flushed or restarted server) sends it once by EVAL, which loads it.
    /// `fill` appends numkeys, keys and arguments after the first two arguments.
    func eval(_ script: Script, poll: Bool = true,
              _ fill: (inout Args) -> Void) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        args.reset()
        args.add("EVALSHA")
        args.add(script.sha)
        fill(&args)
        let first = run(poll: poll)
        guard case let .success(r) = first, Connection.isNoScript(r) else { return first }
        freeReplyObject(r)
        args.reset()
        args.add("EVAL")
        args.add(script.source)
        fill(&args)
        return run(poll: poll)
    }

    static func text(_ r: UnsafeMutablePointer<redisReply>) -> String {
        guard let s = r.pointee.str else { return "" }
        let n = min(r.pointee.len, 300)
        return String(decoding: UnsafeRawBufferPointer(start: s, count: n), as: UTF8.self)
    }

    static func bytes(_ r: UnsafeMutablePointer<redisReply>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: r.pointee.str, count: r.pointee.str == nil ? 0 : r.pointee.len)
    }

    /// hiredis's text for the context's error (strerror's, for a system call that failed).
    static func errstr(_ c: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: c.pointee.errstr) { raw -> String in
            let len = raw.firstIndex(of: 0) ?? raw.count
            return String(decoding: raw[..<len], as: UTF8.self)
        }
    }

    /// Turns the context's error into a status: timeouts apart from other transport failures.
    func contextFailure(connecting: Bool, _ config: Config?) -> Failure {
        guard let c = ctx else { return Failure(.connect, "not connected") }
        let err = c.pointee.err
        let text = Connection.errstr(c)
        let where_ = config.map { " to \($0.redacted)" } ?? ""
        let lower = text.lowercased()
        if err == REDIS_ERR_OOM { return Failure(.nomem, "hiredis is out of memory") }
        if err == REDIS_ERR_PROTOCOL { return Failure(.protocol, "Redis protocol error: \(text)") }
        if lower.contains("timed out") || lower.contains("temporarily unavailable") || lower.contains("timeout") {
            return Failure(.timeout, connecting ? "connect\(where_) timed out" : "Redis command timed out (\(text))")
        }
        if connecting { return Failure(.connect, "cannot connect\(where_): \(text)") }
        if err == REDIS_ERR_EOF { return Failure(.connect, "Redis closed the connection") }
        return Failure(.connect, "connection to Redis lost: \(text)")
    }
}
