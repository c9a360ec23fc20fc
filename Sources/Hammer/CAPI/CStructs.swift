// The C structs' initialisers without their reserved fields (always 0), so Swift code builds them as C code does
// with a brace initializer.
import CHammer

extension hammer_limit {
    public init(algorithm: Int32, limit: Int64, period_ms: Int64, burst: Int64) {
        self.init()
        self.algorithm = algorithm
        self.limit = limit
        self.period_ms = period_ms
        self.burst = burst
    }
}

extension hammer_count_request {
    public init(id: UnsafePointer<CChar>?, bucket: Int64, now_ms: Int64, increment: Int64) {
        self.init()
        self.id = id
        self.bucket = bucket
        self.now_ms = now_ms
        self.increment = increment
    }
}

extension hammer_hit_request {
    public init(id: UnsafePointer<CChar>?, lim: UnsafePointer<hammer_limit>?, cost: Int64, now_ms: Int64) {
        self.init()
        self.id = id
        self.lim = lim
        self.cost = cost
        self.now_ms = now_ms
    }
}

extension hammer_multi_request {
    public init(id: UnsafePointer<CChar>?, lims: UnsafePointer<hammer_limit>?, n_lims: Int, cost: Int64, now_ms: Int64) {
        self.init()
        self.id = id
        self.lims = lims
        self.n_lims = n_lims
        self.cost = cost
        self.now_ms = now_ms
    }
}

extension hammer_check_request {
    public init(id: UnsafePointer<CChar>?, scale_ms: Int64, limit: Int64, increment: Int64) {
        self.init()
        self.id = id
        self.scale_ms = scale_ms
        self.limit = limit
        self.increment = increment
    }
}

extension hammer_stats_t {
    /// With `size` set, as HAMMER_STATS_INIT does.
    public static func sized() -> hammer_stats_t {
        var s = hammer_stats_t()
        s.size = UInt32(MemoryLayout<hammer_stats_t>.size)
        return s
    }
}
