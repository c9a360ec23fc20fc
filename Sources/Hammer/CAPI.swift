// The C ABI: a thin translation of pointers and statuses. Every pointer and number is checked here;
// nothing below may trap, because a trap in a shared library kills the caller's process.
import CHammer
import Glibc
import HammerCore

let maxIdBytes = 65_536

@inline(__always)
func fail(_ f: Failure) -> Int32 {
    LastError.set(f.message)
    return f.status.rawValue
}

@inline(__always)
func invalid(_ message: String) -> Int32 { fail(Failure(.invalid, message)) }

@inline(__always)
func handle(_ h: OpaquePointer?) -> Handle? {
    guard let h else { return nil }
    return Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(h)).takeUnretainedValue()
}

/// The id's bytes, or a failure: NULL and over-long ids are refused.
@inline(__always)
func idBytes(_ id: UnsafePointer<CChar>?, _ fn: StaticString) -> Result<UnsafeBufferPointer<UInt8>, Failure> {
    guard let id else { return .failure(Failure(.invalid, "\(fn): id is NULL")) }
    let n = strnlen(id, maxIdBytes + 1)
    if n > maxIdBytes { return .failure(Failure(.invalid, "\(fn): id is longer than \(maxIdBytes) bytes")) }
    return .success(UnsafeBufferPointer(start: UnsafeRawPointer(id).assumingMemoryBound(to: UInt8.self), count: n))
}

@_cdecl("hammer_open")
public func hammer_open(_ config: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let out else { return invalid("hammer_open: out is NULL") }
    out.pointee = nil
    guard let config else { return invalid("hammer_open: config is NULL") }
    let n = strnlen(config, 65_537)
    if n > 65_536 { return invalid("config: the URL is longer than 65536 bytes") }
    let bytes = Array(UnsafeBufferPointer(start: UnsafeRawPointer(config).assumingMemoryBound(to: UInt8.self), count: n))
    let parsed: Config
    switch Config.parse(bytes) {
    case let .failure(f): return fail(f)
    case let .success(c): parsed = c
    }
    let h = Handle(config: parsed)
    if let f = h.check() { return fail(f) }
    out.pointee = OpaquePointer(Unmanaged.passRetained(h).toOpaque())
    return Status.ok.rawValue
}

@_cdecl("hammer_close")
public func hammer_close(_ h: OpaquePointer?) {
    guard let h else { return }
    Unmanaged<Handle>.fromOpaque(UnsafeRawPointer(h)).release()
}

@_cdecl("hammer_count_hit")
public func hammer_count_hit(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ bucket: Int64, _ nowMs: Int64,
                             _ increment: Int64, _ countOut: UnsafeMutablePointer<Int64>?) -> Int32 {
    countOut?.pointee = 0
    guard let hd = handle(h) else { return invalid("hammer_count_hit: handle is NULL") }
    if increment < 0 { return invalid("hammer_count_hit: increment must be >= 0") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_count_hit") {
    case let .failure(f): return fail(f)
    case let .success(b): idb = b
    }
    switch hd.countHit(id: idb, bucket: bucket, nowMs: nowMs, increment: increment, ttlMs: hd.config.expiryMs) {
    case let .failure(f): return fail(f)
    case let .success(c):
        countOut?.pointee = c
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_get_bucket")
public func hammer_get_bucket(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?, _ bucket: Int64,
                              _ out: UnsafeMutablePointer<hammer_bucket>?) -> Int32 {
    guard let out else { return invalid("hammer_get_bucket: out is NULL") }
    out.pointee = hammer_bucket(bucket: bucket, count: 0, created: 0, updated: 0, found: 0)
    guard let hd = handle(h) else { return invalid("hammer_get_bucket: handle is NULL") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_get_bucket") {
    case let .failure(f): return fail(f)
    case let .success(b): idb = b
    }
    switch hd.getBucket(id: idb, bucket: bucket) {
    case let .failure(f): return fail(f)
    case let .success(info):
        if let info {
            out.pointee = hammer_bucket(bucket: bucket, count: info.count, created: info.created,
                                        updated: info.updated, found: 1)
        }
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_delete_buckets")
public func hammer_delete_buckets(_ h: OpaquePointer?, _ id: UnsafePointer<CChar>?,
                                  _ deletedOut: UnsafeMutablePointer<Int64>?) -> Int32 {
    deletedOut?.pointee = 0
    guard let hd = handle(h) else { return invalid("hammer_delete_buckets: handle is NULL") }
    let idb: UnsafeBufferPointer<UInt8>
    switch idBytes(id, "hammer_delete_buckets") {
    case let .failure(f): return fail(f)
    case let .success(b): idb = b
    }
    switch hd.deleteBuckets(id: idb) {
    case let .failure(f): return fail(f)
    case let .success(n):
        deletedOut?.pointee = n
        return Status.ok.rawValue
    }
}

@_cdecl("hammer_strerror")
public func hammer_strerror(_ status: Int32) -> UnsafePointer<CChar> {
    let s = Status.text(status)
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@_cdecl("hammer_last_error")
public func hammer_last_error() -> UnsafePointer<CChar> {
    LastError.get()
}

private let versionText: StaticString = "0.1.0"

@_cdecl("hammer_version")
public func hammer_version() -> UnsafePointer<CChar> {
    UnsafeRawPointer(versionText.utf8Start).assumingMemoryBound(to: CChar.self)
}
