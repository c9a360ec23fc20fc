// The byte stream under a connection: a plain socket, or TLS over one. Non-blocking: a transport never waits, it says
// what it waits for, and the connection polls with the call's deadline.
import Glibc

enum IO {
    case done(Int)
    case eof
    case wantRead
    case wantWrite
    /// errno, and words of the transport's own (TLS) when it has better ones.
    case failed(Int32, String?)
}

protocol Transport: AnyObject {
    var fd: Int32 { get }
    func read(_ into: UnsafeMutableRawPointer, _ count: Int) -> IO
    func write(_ from: UnsafeRawPointer, _ count: Int) -> IO
    /// Bytes already received and decoded that poll() cannot see (TLS records read ahead).
    var hasBuffered: Bool { get }
    /// Closes in an orderly way (TLS sends its close_notify when it can without waiting).
    func close()
    /// Closes the descriptor only, sending nothing: for connections inherited across fork().
    func abandon()
}

final class PlainTransport: Transport {
    private(set) var fd: Int32

    init(fd: Int32) { self.fd = fd }
    deinit { close() }

    func read(_ into: UnsafeMutableRawPointer, _ count: Int) -> IO {
        while true {
            let n = recv(fd, into, count, 0)
            if n > 0 { return .done(n) }
            if n == 0 { return .eof }
            let e = errno
            if e == EINTR { continue }
            return e == EAGAIN || e == EWOULDBLOCK ? .wantRead : .failed(e, nil)
        }
    }

    func write(_ from: UnsafeRawPointer, _ count: Int) -> IO {
        while true {
            // MSG_NOSIGNAL: a peer that closed must not raise SIGPIPE in the host process.
            let n = send(fd, from, count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .done(n) }
            let e = errno
            if e == EINTR { continue }
            return e == EAGAIN || e == EWOULDBLOCK ? .wantWrite : .failed(e, nil)
        }
    }

    var hasBuffered: Bool { false }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func abandon() { close() }
}
