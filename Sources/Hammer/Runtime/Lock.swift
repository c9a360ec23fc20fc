// A pthread mutex with a condition on the monotonic clock (timed waits immune to wall-clock steps). Never
// held across network I/O.
import Glibc

final class Lock {
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let cond = Lock.makeCond()
    init() {
        pthread_mutex_init(mutex, nil)
    }
    deinit {
        Lock.freeCond(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// A condition on the monotonic clock (to be waited on with some Lock's mutex); freed by freeCond.
    static func makeCond() -> UnsafeMutablePointer<pthread_cond_t> {
        let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
        return cond
    }

    static func freeCond(_ cond: UnsafeMutablePointer<pthread_cond_t>) {
        pthread_cond_destroy(cond)
        cond.deallocate()
    }
    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

    /// Waits on `cond` (the mutex held) until signalled or until `deadlineUs` (monotonic) passes.
    func wait(until deadlineUs: Int64) {
        Lock.wait(cond, mutex, until: deadlineUs)
    }

    /// Waits on any condition made on the monotonic clock, as wait(until:) does.
    static func wait(_ cond: UnsafeMutablePointer<pthread_cond_t>, _ mutex: UnsafeMutablePointer<pthread_mutex_t>,
                     until deadlineUs: Int64) {
        let us = max(0, deadlineUs)
        var ts = timespec(tv_sec: Int(us / 1_000_000), tv_nsec: Int(us % 1_000_000) * 1000)
        pthread_cond_timedwait(cond, mutex, &ts)
    }
}
