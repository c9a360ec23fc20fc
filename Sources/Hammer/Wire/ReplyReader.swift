// Replies parsed by hiredis's reader from bytes the connection reads itself; each read is checked by the scanner
// before the reader sees it.
import CHiredis
import HammerCore

final class ReplyReader {
    private let reader: UnsafeMutablePointer<redisReader>
    var scanner = RespScanner()
    /// One socket read's worth; hiredis itself reads 16 KiB at a time.
    static let chunk = 16 * 1024
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: ReplyReader.chunk, alignment: 16)

    init?() {
        guard let r = redisReaderCreate() else { return nil }
        reader = r
    }

    deinit {
        redisReaderFree(reader)
        buffer.deallocate()
    }

    /// The next complete reply, nil when more bytes are needed, or the reader's error.
    @inline(__always)
    func next() -> Result<UnsafeMutablePointer<redisReply>?, Failure> {
        var raw: UnsafeMutableRawPointer? = nil
        guard redisReaderGetReply(reader, &raw) == REDIS_OK else {
            if let raw { freeReplyObject(raw) }
            return .failure(error())
        }
        return .success(raw?.assumingMemoryBound(to: redisReply.self))
    }

    /// Checks and feeds the first `count` bytes of `buffer`.
    func feed(_ count: Int) -> Failure? {
        if let why = scanner.scan(UnsafeRawBufferPointer(start: buffer, count: count)) {
            return Failure(.protocol, "Redis sent \(why); the connection is dropped")
        }
        guard redisReaderFeed(reader, buffer.assumingMemoryBound(to: CChar.self), count) == REDIS_OK else {
            return error()
        }
        return nil
    }

    /// Bytes received beyond the replies taken: after a call, a reply that no command asked for.
    var hasUnread: Bool { reader.pointee.pos < reader.pointee.len }

    private func error() -> Failure {
        if reader.pointee.err == REDIS_ERR_OOM { return Failure(.nomem, "hiredis is out of memory") }
        let text = withUnsafeBytes(of: reader.pointee.errstr) { raw -> String in
            let len = raw.firstIndex(of: 0) ?? raw.count
            return String(decoding: raw[..<len], as: UTF8.self)
        }
        return Failure(.protocol, "Redis protocol error: \(text); the connection is dropped")
    }
}
