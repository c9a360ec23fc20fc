// Name resolution within a deadline. getaddrinfo cannot be interrupted, so a host name is resolved on a helper
// thread that the caller waits for until its deadline; a caller that gives up leaves the thread to finish and free
// the answer. Numeric addresses are parsed on the caller's thread and never wait.
import Glibc

/// A look-up's answer: a list for freeaddrinfo, or getaddrinfo's error code (-errno for EAI_SYSTEM).
enum Lookup {
    case found(UnsafeMutablePointer<addrinfo>)
    case failed(Int32)
}

enum Resolver {
    /// The addresses of host:port (a list for freeaddrinfo), or getaddrinfo's error code, or nil when the deadline
    /// passed first.
    static func resolve(_ host: String, _ port: Int32, until deadlineUs: Int64) -> Lookup? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if isNumeric(host) {
            hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
            return lookup(host, port, hints)
        }
        let q = Query(host: host, port: port, hints: hints)
        let retained = Unmanaged.passRetained(q)   // the helper's reference, released when it ends
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { raw in
            let q = Unmanaged<Query>.fromOpaque(raw!).takeRetainedValue()
            q.run()
            return nil
        }, retained.toOpaque())
        pthread_attr_destroy(&attr)
        if rc != 0 {
            // No thread to spare: resolve here, as without a deadline.
            retained.release()
            return lookup(host, port, hints)
        }
        return q.wait(until: deadlineUs)
    }

    static func isNumeric(_ host: String) -> Bool {
        var buf = in6_addr()
        return inet_pton(AF_INET, host, &buf) == 1 || inet_pton(AF_INET6, host, &buf) == 1
    }

    fileprivate static func lookup(_ host: String, _ port: Int32, _ hints: addrinfo) -> Lookup {
        var hints = hints
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &list)
        if rc != 0 { return .failed(rc == EAI_SYSTEM && errno != 0 ? -errno : rc) }
        guard let list else { return .failed(EAI_NONAME) }
        return .found(list)
    }

    /// One look-up shared by the caller and the helper thread; whoever comes last owns the answer.
    private final class Query {
        let host: String
        let port: Int32
        let hints: addrinfo
        let lock = Lock()
        var answer: Lookup? = nil
        var abandoned = false

        init(host: String, port: Int32, hints: addrinfo) {
            self.host = host
            self.port = port
            self.hints = hints
        }

        func run() {
            let a = Resolver.lookup(host, port, hints)
            lock.lock()
            if abandoned {
                lock.unlock()
                if case let .found(list) = a { freeaddrinfo(list) }
                return
            }
            answer = a
            pthread_cond_signal(lock.cond)
            lock.unlock()
        }

        func wait(until deadlineUs: Int64) -> Lookup? {
            lock.lock()
            defer { lock.unlock() }
            while answer == nil {
                let left = deadlineUs &- Clock.monotonicUs()
                if left <= 0 {
                    abandoned = true
                    return nil
                }
                lock.wait(until: deadlineUs)
            }
            return answer
        }
    }
}
