// What one call did, counted into the pool's statistics when it is answered.
import HammerCore

/// What one call did, for the statistics.
struct Outcome {
    var calls: UInt64 = 0
    var allowed: UInt64 = 0
    var denied: UInt64 = 0
    var degraded: UInt64 = 0
    var errors = SIMD16<UInt64>()   // failed requests by status (Status.limit of them)

    mutating func fail(_ s: Status) { errors[Int(s.rawValue) & (Status.limit - 1)] &+= 1 }
}

extension Outcome {
    mutating func add(_ r: Result<Decision, Failure>) {
        switch r {
        case let .success(d):
            if d.allowed { allowed &+= 1 } else { denied &+= 1 }
            if d.degraded { degraded &+= 1 }
        case let .failure(f):
            fail(f.status)
        }
    }
}
