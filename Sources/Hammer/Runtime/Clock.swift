// The clocks: monotonic for deadlines and TTLs, real time for the handle's clock (limits' windows).
import Glibc

enum Clock {
    static func monotonicUs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) &* 1_000_000 &+ Int64(ts.tv_nsec / 1000)
    }
    static func monotonicMs() -> Int64 { monotonicUs() / 1000 }
    static func realtimeMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1000 &+ Int64(ts.tv_nsec / 1_000_000)
    }
}
