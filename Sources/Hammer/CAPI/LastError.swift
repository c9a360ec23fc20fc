// hammer_last_error(): a per-thread buffer, because one handle is shared by many threads.
import Glibc

enum LastError {
    static let capacity = 512
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { p in free(p) }
        return k
    }()
    private static let empty: StaticString = ""

    /// The calling thread's buffer (NUL-terminated), allocated on first use; nil only if malloc fails.
    static func buffer() -> UnsafeMutablePointer<CChar>? {
        if let p = pthread_getspecific(key) { return p.assumingMemoryBound(to: CChar.self) }
        guard let raw = calloc(capacity, 1) else { return nil }
        pthread_setspecific(key, raw)
        return raw.assumingMemoryBound(to: CChar.self)
    }

    static func set(_ message: String) {
        guard let buf = buffer() else { return }
        var n = 0
        for byte in message.utf8 {
            if n == capacity - 1 { break }
            buf[n] = CChar(bitPattern: byte == 0 ? 63 : byte)
            n += 1
        }
        buf[n] = 0
    }

    static func get() -> UnsafePointer<CChar> {
        if let p = pthread_getspecific(key) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
        return UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
