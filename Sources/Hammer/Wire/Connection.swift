// One connection to Redis: its transport, its reply reader, its reusable command buffers and the current call's
// deadline. Used by one thread at a time (the pool sees to it). Any failure, timeout or reply the library cannot use
// marks it broken: the pool then closes it and never lends it again, so no later call can read a reply that was
// meant for another.
import CHiredis
import Glibc
import HammerCore

final class Connection {
    private var transport: Transport?
    private var reader: ReplyReader?
    var args = Args()
    /// Microseconds to poll for a reply (0: never), and the gate that allows it.
    let spinUs: Int64
    let gate: SpinGate?
    /// Calls left before this connection polls again, after polls that the reply outlasted (a distant or busy
    /// Redis): 0, then 1, 3, 7 ... 63 as misses repeat.
    var spinSkip = 0
    var spinMisses = 0
    /// The last connect() failed because nothing listened (ECONNREFUSED, or no unix socket): retrying costs no wait.
    private(set) var refused = false
    /// The command being sent follows an ASKING (a cluster's ASK redirection; see Router).
    var asking = false
    /// Commands in RESP not yet sent (a pipeline), and how much of them went out.
    private var out: [UInt8] = []
    private var sent = 0
    /// The current call's deadline (monotonic us), and what a timeout is reported as.
    private(set) var deadlineUs: Int64 = 0
    private var timeoutText = "Redis command timed out"
    /// A failure or an unusable reply happened: the pool closes the connection instead of lending it again.
    var broken = false
    /// Since begin(): bytes of a command went out (a timeout then is Redis's, and the command may have run).
    private(set) var wrote = false
    /// The deadline given to begin() is the call's, earlier than a whole timeout_ms from now: a timeout then says
    /// nothing about Redis, so it does not open the breaker (set by the pool after begin()).
    var cutShort = false
    /// The pool's master generation when it connected (Sentinel: a connection to an old master is dropped).
    var generation = 0
    /// Its pool's bookkeeping for the idle watch (IdleWatch): in the epoll set now, and the watch's pass when it
    /// was last given back.
    var watched = false
    var restPass = 0

    init(spinUs: Int64 = 0, gate: SpinGate = .shared) {
        self.spinUs = spinUs
        self.gate = spinUs > 0 ? gate : nil
        out.reserveCapacity(1024)
    }

    deinit { close() }

    var isOpen: Bool { transport != nil }
    /// The socket (-1 when closed).
    var fd: Int32 { transport?.fd ?? -1 }
    var isBroken: Bool { broken || transport == nil }

    func close() {
        transport?.close()
        drop()
    }

    /// Forgets the connection without a byte sent (no TLS close_notify): a fork's child closing its copy of the
    /// parent's socket. A connection that a parent's thread was using at the fork may be half-way through a change
    /// of its buffers: then only the descriptor is closed and the memory is left alone.
    func abandon(inUse: Bool) {
        guard let t = transport else { return }
        if inUse {
            if t.fd >= 0 { Glibc.close(t.fd) }
            return
        }
        t.abandon()
        drop()
    }

    private func drop() {
        transport = nil
        reader = nil
        if out.capacity > Connection.keepBytes { out = [] } else { out.removeAll(keepingCapacity: true) }
        if args.bytes.capacity > Connection.keepBytes { args = Args() }
        sent = 0
        broken = false
        watched = false   // its descriptor left every epoll set as it closed
    }

    /// Starts a call: its deadline, what a timeout is reported as, and the largest reply it can expect.
    @inline(__always)
    func begin(until deadline: Int64, _ limits: RespLimits = .single, timeoutText: String? = nil) {
        deadlineUs = deadline
        wrote = false
        cutShort = false
        if let timeoutText { self.timeoutText = timeoutText }
        reader?.scanner.begin(limits)
    }

    /// A new deadline within the call (a batch's next chunk gets a whole timeout_ms from the previous reply).
    func extend(until deadline: Int64) {
        deadlineUs = deadline
        cutShort = false
    }

    /// A larger reply than a single call's is expected (batches, SCAN), from now until the call ends.
    func expect(_ limits: RespLimits) { reader?.scanner.begin(limits) }

    /// An idle connection with something to read has been closed by the server (idle timeout, CLIENT KILL,
    /// restart) or is out of step (a reply nobody asked for): every command's reply is read before the connection
    /// goes back, so nothing can be pending. Checked before each lend, so such a connection is replaced before a
    /// command is written on it: TLS records already decrypted, bytes read ahead, then the socket itself (one recv
    /// that peeks without waiting; TLS bytes on the socket count as well).
    var isStale: Bool {
        guard let t = transport, let r = reader else { return true }
        if t.hasBuffered || r.hasUnread { return true }
        var byte: UInt8 = 0
        while true {
            let n = recv(t.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n > 0 || n == 0 { return true }   // bytes, or the server's close
            let e = errno
            if e == EINTR { continue }
            return !(e == EAGAIN || e == EWOULDBLOCK)
        }
    }

    /// Bytes received beyond the replies read: the server sent a reply no command asked for.
    var hasUnread: Bool { reader?.hasUnread ?? false }

    /// Connects, authenticates and selects the database, all before `deadline` (monotonic us; by default
    /// connect_timeout_ms from now). Afterwards commands get timeout_ms until the next begin().
    /// `tls`: the handle's TLS context for rediss:// (or why it could not be made).
    func connect(_ config: Config, tls: Result<TLSContext, Failure>? = nil, until deadline: Int64? = nil) -> Failure? {
        close()
        let d = deadline ?? Clock.monotonicUs() &+ config.connectTimeoutMs &* 1000
        refused = false
        if case let .failure(f)? = tls { return f }
        let fd: Int32
        switch Socket.connect(config.endpoint, until: d) {
        case let .failure(e):
            refused = e.refused
            if e.timedOut {
                return Failure(.timeout, "connect to \(config.redacted) timed out (connect_timeout_ms=\(config.connectTimeoutMs))")
            }
            return Failure(.connect, "cannot connect to \(config.redacted): \(e.what == "connect" ? e.text : e.what)")
        case let .success(s): fd = s
        }
        if case let .success(context)? = tls, case let .tcp(host, _) = config.endpoint {
            switch TLSTransport.handshake(fd: fd, context, host: host, where: config.redacted, until: d) {
            case let .failure(f): return f
            case let .success(t): transport = t
            }
        } else {
            transport = PlainTransport(fd: fd)
        }
        guard let r = ReplyReader() else { close(); return Failure(.nomem, "cannot allocate a reply reader") }
        reader = r
        begin(until: d, timeoutText: "connect to \(config.redacted) timed out waiting for Redis's answer (connect_timeout_ms=\(config.connectTimeoutMs))")
        if let f = firstCommand(config) {
            close()
            // A TLS port drops a plaintext client at its first bytes.
            if config.tls == nil && (f.status == .connect || f.status == .protocol) {
                return Failure(.connect, f.message + " at the first command; if this port expects TLS, use rediss://")
            }
            return f
        }
        begin(until: Clock.monotonicUs() &+ config.timeoutMs &* 1000,
              timeoutText: "Redis command timed out (timeout_ms=\(config.timeoutMs))")
        return nil
    }

    /// AUTH, SELECT, or a PING: the first command shows a wrong password, database or peer.
    private func firstCommand(_ config: Config) -> Failure? {
        if let password = config.password {
            args.reset()
            args.add("AUTH")
            if let user = config.user { args.add(Array(user.utf8)) }
            args.add(Array(password.utf8))
            if let f = expectOK(config, what: "AUTH") { return f }
        }
        if config.db != 0 {
            args.reset()
            args.add("SELECT")
            args.add(config.db)
            if let f = expectOK(config, what: "SELECT \(config.db)") { return f }
        } else if config.password == nil {
            // One PING, so that a server wanting a password we lack (NOAUTH), or a peer that is no Redis, shows now
            // (with a password, AUTH has shown it).
            args.reset()
            args.add("PING")
            if let f = expectOK(config, what: "PING") { return f }
        }
        return nil
    }

    private func expectOK(_ config: Config, what: String) -> Failure? {
        switch run() {
        case let .failure(f): return f
        case let .success(r):
            defer { freeReplyObject(r) }
            if r.pointee.type == REDIS_REPLY_ERROR {
                // Never echo the command: AUTH carries the password. A server still loading its dataset (restarted)
                // answers LOADING: transient, as any call would see it.
                let answer = RedisErrors.classify(Connection.text(r))
                return Failure(.redis, "\(what) on \(config.redacted) failed: \(Connection.text(r))",
                               transient: answer.transient)
            }
            if r.pointee.type != REDIS_REPLY_STATUS {
                return Failure(.protocol, "\(what) on \(config.redacted): the answer is not Redis's; is it a Redis server?")
            }
            return nil
        }
    }

    /// Sends `args` and waits for the reply. The caller frees the reply with freeReplyObject.
    func run(poll: Bool = true) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        if let f = append() { return .failure(f) }
        return read(poll: poll)
    }

    /// Queues `args`, written in RESP, to be sent by the next read() (pipelining).
    func append() -> Failure? {
        guard transport != nil else { return Failure(.connect, "not connected") }
        Resp.appendCommand(bytes: args.bytes, ends: args.ends, to: &out)
        return nil
    }

    /// Reads one reply, sending what is queued first. `poll: false` sleeps at once: a batch's reply takes longer
    /// than any poll, and its misses would stop the connection's single calls from polling.
    func read(poll: Bool = true) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        guard let t = transport, let rd = reader else { return .failure(Failure(.connect, "not connected")) }
        // A reply may be read already (pipelines).
        switch rd.next() {
        case let .failure(f): return fail(f)
        case let .success(r?): return .success(r)
        case .success(nil): break
        }
        if let f = flush(t) { return .failure(f) }
        // `ready`: read before waiting (the poll saw data, or TLS holds some); after a read that wants more from
        // the socket, always wait.
        var ready = t.hasBuffered
        if poll, !ready { ready = spin() }
        while true {
            if !ready, let f = wait(t, Int16(POLLIN)) { return .failure(f) }
            ready = false
            switch t.read(rd.buffer, ReplyReader.chunk) {
            case let .done(n):
                if let f = rd.feed(n) { return fail(f) }
                switch rd.next() {
                case let .failure(f): return fail(f)
                case let .success(r?): return .success(r)
                case .success(nil): ready = t.hasBuffered
                }
            case .wantRead: continue
            case .wantWrite:
                if let f = wait(t, Int16(POLLOUT)) { return .failure(f) }
                ready = true
            case .eof: return fail(Failure(.connect, "Redis closed the connection"))
            case let .failed(e, why): return fail(ioFailure(e, why))
            }
        }
    }

    /// Polls the socket for a reply for spin_us without sleeping, when the gate allows (few threads spin, and not
    /// when more calls are active than cores) and recent replies came within a poll (misses skip the next 1, 3, 7
    /// ... 63 calls' polls): true when the socket became readable.
    func spin() -> Bool {
        guard let gate, let t = transport else { return false }
        var ready = false
        if spinSkip > 0 {
            spinSkip -= 1
        } else if gate.active.load(ordering: .relaxed) <= gate.maxActive {
            if gate.spinners.add(1, ordering: .relaxed).newValue <= gate.maxSpinners {
                ready = Connection.poll(fd: t.fd, forUs: spinUs)
                if ready {
                    spinMisses = 0
                } else {
                    spinMisses = min(spinMisses + 1, 6)
                    spinSkip = (1 << spinMisses) - 1
                }
            }
            gate.spinners.subtract(1, ordering: .relaxed)
        }
        return ready
    }

    /// Sends what is queued, within the deadline. Nothing is sent once the deadline has passed: the call has
    /// failed by then, and its command must not run after the caller was told it timed out.
    private func flush(_ t: Transport) -> Failure? {
        if sent == 0 && sent < out.count && Clock.monotonicUs() >= deadlineUs {
            out.removeAll(keepingCapacity: true)
            // Replies of this call's earlier commands may still be on their way: then the connection goes.
            if wrote { broken = true }
            return Failure(.timeout, timeoutText + "; the command was not sent")
        }
        while true {
            switch sendSome() {
            case let .failure(f): return f
            case .success(0): return nil
            case let .success(events): if let f = wait(t, events) { return f }
            }
        }
    }

    // MARK: without waiting (a lane of the completions engine: Engine/Lane.swift)

    /// Sends what is queued as far as the socket takes it now: 0 when all of it went out, else the poll events the
    /// rest waits for (POLLOUT; with TLS, perhaps POLLIN).
    func sendSome() -> Result<Int16, Failure> {
        guard let t = transport else { return .failure(Failure(.connect, "not connected")) }
        while sent < out.count {
            let r = out.withUnsafeBytes { t.write($0.baseAddress! + sent, $0.count - sent) }
            switch r {
            case let .done(n):
                sent += n
                wrote = true
            case .wantWrite: return .success(Int16(POLLOUT))
            case .wantRead: return .success(Int16(POLLIN))
            case .eof: broken = true; return .failure(Failure(.connect, "Redis closed the connection"))
            case let .failed(e, why): broken = true; return .failure(ioFailure(e, why))
            }
        }
        // A large pipeline's buffers are not kept for the connection's life.
        if out.capacity > Connection.keepBytes { out = []; out.reserveCapacity(1024) } else { out.removeAll(keepingCapacity: true) }
        if args.bytes.capacity > Connection.keepBytes { args = Args() }
        sent = 0
        return .success(0)
    }

    /// Bytes queued and not yet sent.
    var unsent: Bool { sent < out.count }

    /// Reads what has arrived, without waiting, and hands each complete reply to `take` (which frees it). Each
    /// reply is held to a single call's limits. A failure (the connection closed, bytes that are not RESP) leaves
    /// the connection broken.
    /// `enough`: stop reading once it says so (a blocking call that has its reply).
    func receiveSome(enough: () -> Bool = { false }, _ take: (UnsafeMutablePointer<redisReply>) -> Void) -> Failure? {
        guard let t = transport, let rd = reader else { return Failure(.connect, "not connected") }
        var first = true
        while true {
            replies: while true {
                switch rd.next() {
                case let .failure(f): broken = true; return f
                case let .success(r?):
                    rd.scanner.begin(.single)
                    take(r)
                case .success(nil): break replies
                }
            }
            if !first && enough() { return nil }
            first = false
            switch t.read(rd.buffer, ReplyReader.chunk) {
            case let .done(n):
                if let f = rd.feed(n) { broken = true; return f }
            case .wantRead, .wantWrite: return nil
            case .eof: broken = true; return Failure(.connect, "Redis closed the connection")
            case let .failed(e, why): broken = true; return ioFailure(e, why)
            }
        }
    }

    /// Buffer capacity kept between calls; beyond it a buffer is given back.
    static let keepBytes = 1 << 20

    /// Waits for the transport until the call's deadline.
    private func wait(_ t: Transport, _ events: Int16) -> Failure? {
        let e = Socket.wait(t.fd, events, until: deadlineUs)
        if e == 0 { return nil }
        broken = true
        if e == ETIMEDOUT { return Failure(.timeout, timeoutText) }
        return Failure(.connect, "waiting for Redis failed: \(String(cString: strerror(e)))")
    }

    private func fail<T>(_ f: Failure) -> Result<T, Failure> {
        broken = true
        return .failure(f)
    }

    /// A read or write that failed: by errno, never by its text.
    private func ioFailure(_ e: Int32, _ why: String?) -> Failure {
        let text = why ?? String(cString: strerror(e))
        if e == ETIMEDOUT { return Failure(.timeout, "connection to Redis timed out: \(text)") }
        return Failure(.connect, "connection to Redis lost: \(text)")
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

    static func text(_ r: UnsafeMutablePointer<redisReply>) -> String {
        guard let s = r.pointee.str else { return "" }
        let n = min(r.pointee.len, 300)
        return String(decoding: UnsafeRawBufferPointer(start: s, count: n), as: UTF8.self)
    }

    static func bytes(_ r: UnsafeMutablePointer<redisReply>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: r.pointee.str, count: r.pointee.str == nil ? 0 : r.pointee.len)
    }
}
