// The completions' C functions (include/hammer.h, "Non-blocking calls"): checks and translation only; the
// engine (Engine.swift) does the rest.
import CHammer
import Glibc
import HammerCore

@_cdecl("hammer_submit")
public func hammer_submit(_ h: OpaquePointer?, _ ops: UnsafePointer<hammer_op>?, _ n: Int) -> Int32 {
    guard let hd = handle(h) else { return invalid("hammer_submit: handle is NULL or not open") }
    if n < 0 || n > maxBatch { return invalid("hammer_submit: n must be from 0 to \(maxBatch)") }
    if n == 0 { return Status.ok.rawValue }
    guard let ops else { return invalid("hammer_submit: ops is NULL") }
    let engine: Engine
    switch hd.completions.get(hd) {
    case let .failure(f): return fail(f.from("hammer_submit"))
    case let .success(e): engine = e
    }
    let deadline = Clock.monotonicUs() &+ engine.span
    var good: [AsyncOp] = []
    good.reserveCapacity(n)
    var refused: [hammer_completion] = []
    for i in 0..<n {
        switch AsyncOp.make(ops[i], deadlineUs: deadline) {
        case let .success(op): good.append(op)
        case let .failure(f):
            _ = hd.refuse(f)
            refused.append(hammer_completion(tag: ops[i].tag, kind: ops[i].kind, failure: f))
        }
    }
    if let f = engine.submit(good, refused: refused) {
        for op in good { op.release() }
        return fail(f)
    }
    return Status.ok.rawValue
}

@_cdecl("hammer_fd")
public func hammer_fd(_ h: OpaquePointer?) -> Int32 {
    guard let hd = handle(h) else { _ = invalid("hammer_fd: handle is NULL or not open"); return -1 }
    switch hd.completions.get(hd) {
    case let .failure(f): _ = fail(f.from("hammer_fd")); return -1
    case let .success(e): return e.fd
    }
}

@_cdecl("hammer_drain")
public func hammer_drain(_ h: OpaquePointer?, _ out: UnsafeMutablePointer<hammer_completion>?, _ max: Int) -> Int {
    guard let hd = handle(h), max > 0, let out, let e = hd.completions.existing() else { return 0 }
    return e.drain(out, max)
}

@_cdecl("hammer_pending")
public func hammer_pending(_ h: OpaquePointer?) -> Int {
    guard let hd = handle(h), let e = hd.completions.existing() else { return 0 }
    return e.pendingCount()
}

@_cdecl("hammer_shutdown")
public func hammer_shutdown(_ h: OpaquePointer?) -> Int32 {
    guard let hd = handle(h) else { return invalid("hammer_shutdown: handle is NULL or not open") }
    hd.completions.endSubmits()
    return Status.ok.rawValue
}
