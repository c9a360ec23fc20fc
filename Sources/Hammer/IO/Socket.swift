// Non-blocking sockets with deadlines: connect (every address of the name, in order), and waiting for readiness.
// Failures keep their errno, so statuses never depend on the text of strerror() (which follows the host's locale).
import Glibc
import HammerCore

/// A failed system call: its errno (ETIMEDOUT when the deadline passed) and what was being done.
struct SocketError: Error {
    var errno: Int32
    var what: String

    var timedOut: Bool { errno == ETIMEDOUT || errno == EAGAIN || errno == EWOULDBLOCK }
    /// Nothing listens there (a restarting Redis): retrying costs no wait.
    var refused: Bool { errno == ECONNREFUSED || errno == ENOENT }
    var text: String { String(cString: strerror(errno)) }
}

enum Socket {
    /// Waits until `fd` is ready for `events` (POLLIN / POLLOUT), an error or hang-up included (the next read or
    /// write reports it). 0, ETIMEDOUT once `deadlineUs` (monotonic) has passed, or poll's errno.
    static func wait(_ fd: Int32, _ events: Int16, until deadlineUs: Int64) -> Int32 {
        var p = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let left = deadlineUs &- Clock.monotonicUs()
            if left <= 0 { return ETIMEDOUT }
            // Rounded up, so that a wait never ends before the deadline and spins.
            let ms = Int32(clamping: (left &+ 999) / 1000)
            let r = Glibc.poll(&p, 1, ms)
            if r > 0 { return 0 }
            if r < 0 && errno != EINTR { return errno }
        }
    }

    /// A connected non-blocking socket to `endpoint`, or why not, within `deadlineUs`, name resolution included
    /// (see Resolver).
    static func connect(_ endpoint: Endpoint, until deadlineUs: Int64) -> Result<Int32, SocketError> {
        switch endpoint {
        case let .tcp(host, port): return connectTCP(host: host, port: port, until: deadlineUs)
        case let .unix(path): return connectUnix(path: path, until: deadlineUs)
        }
    }

    private static func connectTCP(host: String, port: Int32, until deadlineUs: Int64) -> Result<Int32, SocketError> {
        let list: UnsafeMutablePointer<addrinfo>
        switch Resolver.resolve(host, port, until: deadlineUs) {
        case nil:
            return .failure(SocketError(errno: ETIMEDOUT, what: "resolving \(host) timed out"))
        case let .failed(rc)?:
            let e = rc < 0 ? -rc : EHOSTUNREACH
            return .failure(SocketError(errno: e, what: "cannot resolve \(host): \(String(cString: gai_strerror(rc < 0 ? EAI_SYSTEM : rc)))"))
        case let .found(l)?:
            list = l
        }
        defer { freeaddrinfo(list) }
        var last = SocketError(errno: EHOSTUNREACH, what: "no address for \(host)")
        var ai: UnsafeMutablePointer<addrinfo>? = list
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = socket(a.pointee.ai_family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue),
                            a.pointee.ai_protocol)
            if fd < 0 { last = SocketError(errno: errno, what: "socket"); continue }
            switch finishConnect(fd, Glibc.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen), until: deadlineUs) {
            case 0:
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
                // Keepalive as hiredis sets it: a peer that vanished (host down, no RST) shows within about 30 s
                // even on an idle pooled connection.
                setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, 4)
                var idle: Int32 = 15, interval: Int32 = 5, count: Int32 = 3
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, 4)
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, 4)
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, 4)
                return .success(fd)
            case let e:
                Glibc.close(fd)
                last = SocketError(errno: e, what: "connect")
                if last.timedOut { return .failure(last) }   // no time is left for the next address
            }
        }
        return .failure(last)
    }

    private static func connectUnix(path: String, until deadlineUs: Int64) -> Result<Int32, SocketError> {
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: sa.sun_path)
        guard bytes.count < capacity else { return .failure(SocketError(errno: ENAMETOOLONG, what: "socket path")) }
        withUnsafeMutableBytes(of: &sa.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        while true {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
            if fd < 0 { return .failure(SocketError(errno: errno, what: "socket")) }
            let rc = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            let e = rc == 0 ? 0 : errno
            if e == EAGAIN {
                // A unix socket's backlog is full: the connect does not wait, so try again shortly.
                Glibc.close(fd)
                if Clock.monotonicUs() >= deadlineUs { return .failure(SocketError(errno: ETIMEDOUT, what: "connect")) }
                usleep(1000)
                continue
            }
            switch finishConnect(fd, rc, until: deadlineUs) {
            case 0: return .success(fd)
            case let e:
                Glibc.close(fd)
                return .failure(SocketError(errno: e, what: "connect"))
            }
        }
    }

    /// The outcome of a non-blocking connect() that returned `rc`: 0 when connected, else the errno.
    private static func finishConnect(_ fd: Int32, _ rc: Int32, until deadlineUs: Int64) -> Int32 {
        if rc == 0 { return 0 }
        let e = errno
        guard e == EINPROGRESS || e == EINTR else { return e }
        let w = wait(fd, Int16(POLLOUT), until: deadlineUs)
        if w != 0 { return w }
        var soError: Int32 = 0
        var len = socklen_t(4)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len) != 0 { return errno }
        return soError
    }
}
