"""The local deny cache (deny_cache=ENTRIES, issue 19) against a real redis-server: denials served in-process are the
decisions Redis gives at that moment (compared with a peek on Redis through a handle without the cache), count
down, end at the time Redis named, are cleared by a reset through the handle, stay within their bound, and add up
across threads and fork()."""
import os
import threading
import time

import pytest

import hammer

LIMITS = {
    "fixed": hammer.Limit.fixed_window(3, 100_000_000_000),
    "sliding": hammer.Limit.sliding_window(3, 3_600_000),
    "token": hammer.Limit.token_bucket(3, 3_600_000, burst=4),
    "leaky": hammer.Limit.leaky_bucket(3, 3_600_000),
    "gcra": hammer.Limit.gcra(3, 3_600_000, burst=2),
}


def ms():
    return time.time_ns() // 1_000_000


@pytest.fixture
def cached(redis_server, open_hammer):
    return open_hammer(redis_server.url(deny_cache=1000))


@pytest.fixture
def plain(redis_server, open_hammer):
    return open_hammer(redis_server.url())


def fill(h, id, lim):
    """Hits until a unit hit is denied; returns that denial."""
    for _ in range(20):
        d = h.hit(id, lim)
        if not d.allowed:
            return d
    raise AssertionError("never denied")


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_cached_denials_are_what_redis_says(cached, plain, uid, name):
    lim = LIMITS[name]
    id = f"{uid}:{name}"
    first = fill(cached, id, lim)
    hits0 = cached.stats().deny_cache_hits
    served = []
    for i in range(30):
        peek_peek = i % 3 == 0
        before = ms()
        d = cached.peek(id, lim) if peek_peek else cached.hit(id, lim)
        after = ms()
        # What Redis says at `before`: the cached decision was made at a time in [before, after], and its waits
        # count down from the same deadlines.
        r = plain.peek(id, lim, now_ms=before)
        assert not r.allowed and not d.allowed
        assert (d.count, d.limit, d.remaining, d.degraded) == (r.count, r.limit, 0, False)
        assert r.retry_after_ms - (after - before) <= d.retry_after_ms <= r.retry_after_ms, (d, r)
        assert r.reset_after_ms - (after - before) <= d.reset_after_ms <= r.reset_after_ms, (d, r)
        served.append(d)
        if i % 10 == 9:
            time.sleep(0.02)
    s = cached.stats()
    assert s.deny_cache_hits - hits0 == 30, "every one of them was served in-process"
    waits = [d.retry_after_ms for d in served]
    assert waits == sorted(waits, reverse=True), "retry_after_ms counts down"
    assert waits[0] - waits[-1] >= 40, "two 20 ms sleeps passed between the first and the last"
    assert first.retry_after_ms >= waits[0]
    # A cost above the capacity never passes; a cost of 0 goes to Redis and passes.
    big = cached.hit(id, lim, cost=100)
    assert not big.allowed and big.retry_after_ms == -1 and big.count == first.count
    assert cached.hit(id, lim, cost=0).allowed
    assert cached.stats().deny_cache_hits - hits0 == 31


def test_the_deadline_is_redis_and_then_redis_decides(cached, uid):
    lim = hammer.Limit.gcra(1, 300)
    id = f"{uid}:g"
    assert cached.hit(id, lim).allowed
    d = cached.hit(id, lim)
    assert not d.allowed and 0 < d.retry_after_ms <= 300
    n0 = cached.stats().deny_cache_hits
    while True:
        again = cached.hit(id, lim)
        if again.allowed:
            break
        assert again.retry_after_ms > 0
    assert cached.stats().deny_cache_hits > n0, "denials were served from the cache meanwhile"
    # The allowed hit was Redis's: its count is in Redis.
    n1 = cached.stats().deny_cache_hits
    d = cached.hit(id, lim)
    assert not d.allowed and cached.stats().deny_cache_hits == n1, "a fresh denial came from Redis"


def test_reset_through_the_handle_clears_its_denials(cached, plain, uid):
    lim = hammer.Limit.fixed_window(2, 100_000_000_000)
    id = f"{uid}:r"
    fill(cached, id, lim)
    n0 = cached.stats().deny_cache_hits
    assert not cached.hit(id, lim).allowed
    assert cached.stats().deny_cache_hits == n0 + 1
    cached.delete_buckets(id)
    assert cached.hit(id, lim).allowed, "after the reset Redis decides, and allows"
    # A reset made by another process (here: another handle) is the one case the cache denies what Redis would
    # allow, until the deadline Redis gave (README).
    fill(cached, id, lim)
    plain.delete_buckets(id)
    assert plain.peek(id, lim).allowed
    assert not cached.hit(id, lim).allowed


def test_calls_at_the_callers_time_and_check_rate_bypass_it(cached, plain, uid):
    lim = hammer.Limit.fixed_window(1, 100_000_000_000)
    id = f"{uid}:at"
    fill(cached, id, lim)
    n0 = cached.stats().deny_cache_hits
    now = ms()
    assert not cached.hit(id, lim, now_ms=now).allowed
    assert not cached.peek(id, lim, now_ms=now).allowed
    assert cached.stats().deny_cache_hits == n0
    # check_rate counts a denied hit in Redis (Hammer's semantics): every one reaches Redis.
    for i in range(3):
        d = cached.check_rate(f"{uid}:cr", 100_000_000_000, 1)
        assert d.count == i + 1
    assert cached.stats().deny_cache_hits == n0


def test_lru_bound(redis_server, open_hammer, uid):
    h = open_hammer(redis_server.url(deny_cache=1))   # one entry: each new denial pushes out the previous
    lim = hammer.Limit.fixed_window(1, 100_000_000_000)
    for k in range(3):
        fill(h, f"{uid}:{k}", lim)
    n0 = h.stats().deny_cache_hits
    assert not h.hit(f"{uid}:0", lim).allowed
    assert h.stats().deny_cache_hits == n0, "id 0 was pushed out: Redis answered"
    assert not h.hit(f"{uid}:0", lim).allowed
    assert h.stats().deny_cache_hits == n0 + 1, "and is the one entry now"
    assert not h.hit(f"{uid}:2", lim).allowed
    assert h.stats().deny_cache_hits == n0 + 1


def test_threads_count_every_hit_once(cached, plain, uid):
    lim = hammer.Limit.token_bucket(25, 3_600_000)
    id = f"{uid}:t"
    results = []
    lock = threading.Lock()

    def worker():
        mine = [cached.hit(id, lim) for _ in range(150)]
        with lock:
            results.extend(mine)

    s0 = cached.stats()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = cached.stats()
    allowed = sum(d.allowed for d in results)
    assert allowed == 25, "exactly the bucket's capacity passed"
    assert s.calls - s0.calls == 1200 and s.allowed - s0.allowed == 25 and s.denied - s0.denied == 1175
    assert s.deny_cache_hits - s0.deny_cache_hits > 0
    assert plain.peek(id, lim).remaining == 0


def test_a_forked_child_starts_empty(cached, uid):
    lim = hammer.Limit.fixed_window(1, 100_000_000_000)
    id = f"{uid}:f"
    fill(cached, id, lim)
    assert not cached.hit(id, lim).allowed
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            before = cached.stats().deny_cache_hits
            d1 = cached.hit(id, lim)
            mid = cached.stats().deny_cache_hits
            d2 = cached.hit(id, lim)
            after = cached.stats().deny_cache_hits
            os.write(w, f"{before} {mid} {after} {int(d1.allowed)} {int(d2.allowed)}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        got = f.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert got == ["0", "0", "1", "0", "0"], "the child asked Redis first, then served its own entry"
    assert cached.stats().deny_cache_hits >= 1, "the parent's cache is its own"


@pytest.mark.parametrize("name", ["sliding", "gcra"])
def test_with_redis_clock_the_deadline_is_never_later_than_redis(redis_server, open_hammer, uid, name):
    """clock=redis: Redis decides on its TIME and the cache counts from the moment the request was sent, so its
    deadline is at most Redis's (the same machine's clock here)."""
    cached = open_hammer(redis_server.url(deny_cache=100, clock="redis"))
    plain = open_hammer(redis_server.url(clock="redis"))
    lim = LIMITS[name]
    id = f"{uid}:{name}"
    fill(cached, id, lim)
    n0 = cached.stats().deny_cache_hits
    for _ in range(10):
        before = ms()
        d = cached.hit(id, lim)
        r = plain.peek(id, lim)
        after = ms()
        assert not d.allowed and not r.allowed and d.count == r.count and d.remaining == 0
        assert 0 < d.retry_after_ms <= r.retry_after_ms + (after - before), (d, r)
    assert cached.stats().deny_cache_hits == n0 + 10


def test_hit_many_is_served_too(cached, plain, uid):
    """hit_many requests on the handle's clock use the cache as single hits do; those at the caller's time do not."""
    lim = LIMITS["gcra"]
    ids = [f"{uid}:{k}" for k in range(5)]
    for i in ids:
        fill(cached, i, lim)
    n0 = cached.stats()
    before = ms()
    got = cached.hit_many([(i, lim) for i in ids] + [(f"{uid}:fresh", lim)])
    after = ms()
    s = cached.stats()
    assert s.deny_cache_hits - n0.deny_cache_hits == 5, "the 5 denied ids from the cache, the fresh one from Redis"
    assert s.calls - n0.calls == 6 and s.denied - n0.denied == 5 and s.allowed - n0.allowed == 1
    assert got[-1].allowed
    for i, d in zip(ids, got):
        r = plain.peek(i, lim, now_ms=before)
        assert not d.allowed and (d.count, d.limit, d.remaining) == (r.count, r.limit, 0)
        assert r.retry_after_ms - (after - before) <= d.retry_after_ms <= r.retry_after_ms, (d, r)
        assert r.reset_after_ms - (after - before) <= d.reset_after_ms <= r.reset_after_ms, (d, r)
    cached.hit_many([(i, lim, 1, ms()) for i in ids])
    assert cached.stats().deny_cache_hits == s.deny_cache_hits
