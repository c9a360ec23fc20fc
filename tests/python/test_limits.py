"""Rate limiting through the Python binding (issue 3, and the failure policy of issue 4), against real redis-server
processes: the five algorithms at explicit times, peek, cost 0 and costs above capacity, bad limits, Hammer's
check_rate / inspect_bucket, reset, on_error / fallback while the server is down, the Limiter decorator and guard,
and processes sharing one limit."""
import asyncio
import time

import pytest

import hammer
from multiproc import run_in_processes
from redis_server import free_port

T = 1_700_000_000_000          # a fixed now_ms, a multiple of every period used here
BIG_SCALE = 100_000_000_000     # ~3 years: a check_rate window the real clock does not leave during a test

ALGORITHMS = {
    "fixed_window": hammer.Limit.fixed_window,
    "sliding_window": hammer.Limit.sliding_window,
    "token_bucket": hammer.Limit.token_bucket,
    "leaky_bucket": hammer.Limit.leaky_bucket,
    "gcra": hammer.Limit.gcra,
    "sliding_counter": hammer.Limit.sliding_counter,
}
BUCKETS = ("token_bucket", "leaky_bucket", "gcra")   # the algorithms that take a burst


@pytest.fixture(params=list(ALGORITHMS))
def algo(request):
    return request.param


def test_constants_and_constructors():
    assert (hammer.FIXED_WINDOW, hammer.SLIDING_WINDOW, hammer.TOKEN_BUCKET, hammer.LEAKY_BUCKET, hammer.GCRA,
            hammer.SLIDING_COUNTER) == (0, 1, 2, 3, 4, 5)
    assert [ALGORITHMS[n](5, 1000).algorithm for n in ALGORITHMS] == [0, 1, 2, 3, 4, 5]
    assert hammer.Limit.token_bucket(10, 1000, burst=20) == hammer.Limit(hammer.TOKEN_BUCKET, 10, 1000, 20)
    assert hammer.Limit.fixed_window(3, 60) == hammer.Limit(0, 3, 60, 0)
    assert len({hammer.Limit.gcra(1, 2), hammer.Limit.gcra(1, 2), hammer.Limit.gcra(1, 3)}) == 2, "hashable by value"
    with pytest.raises(AttributeError):
        hammer.Limit.gcra(1, 2).limit = 5  # frozen
    d = hammer.Decision(False, 5, 5, 0, 1500, 2000)
    assert d.retry_after == 1.5 and isinstance(d.retry_after, float) and d.degraded is False
    assert hammer.Decision(False, 0, 5, 0, -1, 0).retry_after is None, "never: not a number time.sleep refuses"
    with pytest.raises(AttributeError):
        d.allowed = True  # immutable
    assert d == hammer.Decision(allowed=False, count=5, limit=5, remaining=0, retry_after_ms=1500, reset_after_ms=2000)
    assert d._replace(degraded=True).degraded is True and d.degraded is False


# ---------------------------------------------------------------------------------------------------------------------
# Each algorithm at explicit times
# ---------------------------------------------------------------------------------------------------------------------
def test_burst_then_deny_then_retry_after(h, uid, algo):
    lim = ALGORITHMS[algo](5, 1000)
    ds = [h.hit(uid, lim, now_ms=T) for _ in range(5)]
    assert all(d.allowed and not d.degraded and d.limit == 5 and d.retry_after_ms == 0 for d in ds), ds
    assert [d.remaining for d in ds] == [4, 3, 2, 1, 0]
    assert [d.count for d in ds] == [1, 2, 3, 4, 5]
    denied = h.hit(uid, lim, now_ms=T)
    assert not denied.allowed and denied.remaining == 0 and denied.count == 5
    assert denied.retry_after_ms > 0 and denied.retry_after == denied.retry_after_ms / 1000
    assert denied.reset_after_ms >= denied.retry_after_ms
    wait = denied.retry_after_ms
    assert not h.peek(uid, lim, now_ms=T + wait - 1).allowed, "retry_after_ms is the least wait, not a guess"
    again = h.hit(uid, lim, now_ms=T + wait)
    assert again.allowed, f"a client that waits retry_after_ms ({wait}) passes"


@pytest.mark.parametrize("name", BUCKETS)
def test_burst_is_the_capacity_of_the_buckets(h, uid, name):
    lim = ALGORITHMS[name](5, 1000, burst=8)
    allowed = [h.hit(uid, lim, now_ms=T).allowed for _ in range(10)]
    assert allowed == [True] * 8 + [False] * 2
    d = h.hit(uid, lim, now_ms=T + 200)   # 5 per 1000 ms: one unit back every 200 ms
    assert d.allowed and not h.hit(uid, lim, now_ms=T + 200).allowed


def test_refill_is_continuous_for_the_buckets(h, uid):
    lim = hammer.Limit.token_bucket(10, 1000)   # a token every 100 ms
    assert all(h.hit(uid, lim, now_ms=T).allowed for _ in range(10))
    assert [h.hit(uid, lim, now_ms=T + 100 * k).allowed for k in (0, 1, 1, 2, 3)] == [False, True, False, True, True]


def test_peek_has_no_side_effect(h, uid, algo):
    """peek answers whether a unit hit would pass now, and shows the current state (count, remaining) without
    taking anything; when denied it is exactly the decision the hit gets."""
    lim = ALGORITHMS[algo](3, 1000)
    for _ in range(10):
        p = h.peek(uid, lim, now_ms=T)
        assert p.allowed and p.remaining == 3 and p.count == 0 and p.retry_after_ms == 0, p
    assert h.delete_buckets(uid) == 0, "peeks alone leave no key in Redis"
    for i in range(5):
        p = h.peek(uid, lim, now_ms=T)
        d = h.hit(uid, lim, now_ms=T)
        assert p.allowed == d.allowed, f"hit {i}: the peek foretold the hit"
        if d.allowed:
            assert (p.remaining, p.count) == (d.remaining + 1, d.count - 1)
        else:
            assert p == d, "a denied hit decides as the peek before it"
            assert h.peek(uid, lim, now_ms=T) == p, "and changes nothing"
    now = h.peek(uid + ":fresh", lim)   # the handle's clock
    assert now.allowed and now.remaining == 3 and h.delete_buckets(uid + ":fresh") == 0


def test_cost_zero_and_above_capacity(h, uid, algo):
    kw = {"burst": 6} if algo in BUCKETS else {}
    lim = ALGORITHMS[algo](4, 1000, **kw)
    capacity = 6 if algo in BUCKETS else 4
    zero = h.hit(uid, lim, cost=0, now_ms=T)
    assert zero.allowed and zero.retry_after_ms == 0 and zero.remaining == capacity
    over = h.hit(uid, lim, cost=capacity + 1, now_ms=T)
    assert not over.allowed and over.retry_after_ms == -1 and over.retry_after is None and over.remaining == 0
    assert h.delete_buckets(uid) == 0, "cost 0 and a cost that can never pass change nothing"
    whole = h.hit(uid, lim, cost=capacity, now_ms=T)
    assert whole.allowed and whole.remaining == 0 and whole.count == capacity
    assert h.hit(uid, lim, cost=0, now_ms=T).allowed, "cost 0 passes even when the limiter is empty"
    d = h.hit(uid, lim, cost=1, now_ms=T)
    assert not d.allowed and d.retry_after_ms > 0


def test_limit_as_a_tuple(h, uid):
    assert h.hit(uid, (hammer.GCRA, 2, 1000), now_ms=T) == h.hit(uid + "x", hammer.Limit.gcra(2, 1000), now_ms=T)
    assert h.hit(uid, [hammer.GCRA, 2, 1000], now_ms=T).remaining == 0


# ---------------------------------------------------------------------------------------------------------------------
# The sliding-window counter against a model of its own (Swift's LimiterModel has the same arithmetic), decision by
# decision, and its error bound against the exact log
# ---------------------------------------------------------------------------------------------------------------------
class CounterModel:
    """Two fixed windows of P ms; the previous one weighs prev * (P - e) / P, e ms into the current one."""

    def __init__(self):
        self.window = None
        self.cur = self.prev = 0

    @staticmethod
    def pass_offset(L, P, cur, prev, e, need):
        """The first offset from this window's start at which `need` hits pass: in this window as prev's weight
        falls, else in the next (cur becomes prev), else at the one after (the Swift tests check it by brute force)."""
        R = L - cur - need
        if R >= 0:
            if prev == 0:
                return e
            x = P - (R * P) // prev
            if x < P:
                return max(x, e)
        if cur == 0:
            return P
        x = P - ((L - need) * P) // cur
        return P + max(x, 0) if x < P else 2 * P

    def apply(self, L, P, cost, now, peek=False):
        at, cur, prev = now, 0, 0
        if self.window is not None:
            if self.window > now // P:
                at = self.window * P
            w = at // P
            if self.window == w:
                cur, prev = self.cur, self.prev
            elif self.window == w - 1:
                prev = self.cur
        cur, prev = min(cur, L), min(prev, L)
        w = at // P
        e = at - w * P
        W = prev * (P - e) + cur * P
        need = 1 if peek else cost
        retry, Da = 0, W
        if not peek and cost > L:
            ok, retry = False, -1
        elif not peek and cost == 0:
            ok = True
        elif W + need * P <= L * P:
            ok = True
            if not peek:
                Da = W + need * P
                cur += need
                self.window, self.cur, self.prev = w, cur, prev
        else:
            ok = False
            retry = w * P + self.pass_offset(L, P, cur, prev, e, need) - now
        reset = (w + 2) * P - now if cur > 0 else (w + 1) * P - now if prev > 0 else 0
        rem = max(0, (L * P - Da) // P) if ok else 0
        return hammer.Decision(ok, -(-Da // P), L, rem, retry, reset)


@pytest.mark.parametrize("seed", range(6))
def test_sliding_counter_matches_its_model(h, uid, seed):
    import random
    rng = random.Random(seed)
    L, P = rng.choice([1, 3, 10]), rng.choice([50, 1000, 60_000])
    lim, model, now, hits = hammer.Limit.sliding_counter(L, P), CounterModel(), T + rng.randrange(P), []
    for step in range(250):
        r = rng.random()
        now += 0 if r < 0.2 else rng.randrange(P // 5 + 1) if r < 0.7 else rng.randrange(2 * P)
        if rng.random() < 0.03:
            now -= rng.randrange(2 * P)      # the caller's clock steps back: decided at the stored window's start
        peek = rng.random() < 0.15
        cost = rng.choice([0, 1, 1, 1, 2, L, L + 1])
        want = model.apply(L, P, cost, now, peek)
        got = h.peek(uid, lim, now_ms=now) if peek else h.hit(uid, lim, cost, now_ms=now)
        assert got == want, f"seed {seed} step {step}: cost {cost} peek {peek} now {now}"
        if got.allowed and not peek and cost:
            hits.append((now, cost))
        if not got.allowed and got.retry_after_ms > 0:
            probe = copy_model(model)
            assert probe.apply(L, P, cost or 1, now + got.retry_after_ms, peek).allowed, "waiting retry_after passes"
    # The documented bound against the exact log, for the hits allowed in time order (the clock never stepped
    # back past them): at most L + L * e // P in a span ending e ms into its window.
    ordered = all(a[0] <= b[0] for a, b in zip(hits, hits[1:]))
    if ordered:
        for t, _ in hits:
            e = t % P
            assert sum(c for u, c in hits if t - P < u <= t) <= L + L * e // P
            assert sum(c for u, c in hits if u // P == t // P) <= L


def copy_model(m):
    c = CounterModel()
    c.window, c.cur, c.prev = m.window, m.cur, m.prev
    return c


def test_sliding_counter_periods_of_one_id_are_apart(h, uid):
    """One hash per id, a field per period: a per-second and a per-minute counter of one id keep their own counts."""
    sec, minute = hammer.Limit.sliding_counter(2, 1000), hammer.Limit.sliding_counter(5, 60_000)
    assert [h.hit(uid, sec, now_ms=T).allowed for _ in range(3)] == [True, True, False]
    assert [h.hit(uid, minute, now_ms=T).allowed for _ in range(6)] == [True] * 5 + [False]
    assert h.peek(uid, sec, now_ms=T + 2000).remaining == 2
    assert h.delete_buckets(uid) == 1, "one key holds both"
    assert h.peek(uid, minute, now_ms=T).remaining == 5


# ---------------------------------------------------------------------------------------------------------------------
# Bad limits, costs and times: InvalidError, never TypeError, and nothing written
# ---------------------------------------------------------------------------------------------------------------------
BAD_LIMITS = {
    "algorithm 6": ((6, 5, 1000), "algorithm"),
    "algorithm 7": ((7, 5, 1000), "algorithm"),
    "algorithm -1": ((-1, 5, 1000), "algorithm"),
    "algorithm beyond int32": ((1 << 31, 5, 1000), "algorithm"),
    "limit 0": ((2, 0, 1000), "limit"),
    "limit -3": ((0, -3, 1000), "limit"),
    "limit over 10^9": ((1, 10**9 + 1, 1000), "limit"),
    "period 0": ((2, 5, 0), "period_ms"),
    "period -1": ((4, 5, -1), "period_ms"),
    "period over 10 years": ((0, 5, 315_360_000_001), "period_ms"),
    "burst -1": ((3, 5, 1000, -1), "burst"),
    "burst x period overflow": ((2, 5, 315_360_000_000, 10**9), "burst"),
    "float limit": ((2, 5.0, 1000), "limit"),
    "str period": ((2, 5, "1000"), "period_ms"),
    "bool algorithm": ((True, 5, 1000), "algorithm"),
    "None burst": ((2, 5, 1000, None), "burst"),
    "int64 overflow": ((2, 1 << 63, 1000), "limit"),
    "too few fields": ((2, 5), "limit"),
    "too many fields": ((2, 5, 1000, 0, 0), "limit"),
    "not a limit": ("token_bucket", "limit"),
}


@pytest.mark.parametrize("name", list(BAD_LIMITS))
def test_bad_limit_is_invalid(h, uid, name):
    spec, word = BAD_LIMITS[name]
    for call in (lambda: h.hit(uid, spec, now_ms=T), lambda: h.hit(uid, spec), lambda: h.peek(uid, spec),
                 lambda: h.hit_many([(uid, spec, 1, T)])[0]):
        with pytest.raises(hammer.InvalidError) as e:
            r = call()
            if isinstance(r, Exception):
                raise r
        assert e.value.status == hammer.ERR_INVALID and word in e.value.message, e.value.message
    assert h.delete_buckets(uid) == 0


@pytest.mark.parametrize("cost,word", [(-1, "cost"), (10**9 + 1, "cost"), (1.0, "cost"), ("1", "cost"),
                                       (None, "cost"), (True, "cost"), (1 << 64, "cost")])
def test_bad_cost_is_invalid(h, uid, cost, word):
    with pytest.raises(hammer.InvalidError) as e:
        h.hit(uid, hammer.Limit.gcra(5, 1000), cost=cost, now_ms=T)
    assert word in e.value.message


@pytest.mark.parametrize("now", [-1, 2**47 + 1, 1.5, "0", 1 << 63])
def test_bad_now_is_invalid(h, uid, now):
    for call in (lambda: h.hit(uid, hammer.Limit.sliding_window(5, 1000), now_ms=now),
                 lambda: h.peek(uid, hammer.Limit.sliding_window(5, 1000), now_ms=now),
                 lambda: h.check_rate_at(uid, 1000, 5, now)):
        with pytest.raises(hammer.InvalidError) as e:
            call()
        assert "now_ms" in e.value.message
    assert h.delete_buckets(uid) == 0


def test_bad_id_is_invalid(h):
    for bad in (None, 42, "a\0b", b"\0"):
        with pytest.raises(hammer.InvalidError):
            h.hit(bad, hammer.Limit.gcra(5, 1000), now_ms=T)
        with pytest.raises(hammer.InvalidError):
            h.check_rate(bad, 1000, 5)


@pytest.mark.parametrize("args,word", [((0, 5), "scale_ms"), ((-1, 5), "scale_ms"), ((1000, 0), "limit"),
                                       ((1000, -1), "limit"), ((1000.0, 5), "scale_ms"), ((1000, "5"), "limit")])
def test_bad_check_rate_is_invalid(h, uid, args, word):
    for call in (lambda: h.check_rate(uid, *args), lambda: h.check_rate_at(uid, *args, T),
                 lambda: h.inspect_bucket(uid, *args)):
        with pytest.raises(hammer.InvalidError) as e:
            call()
        assert word in e.value.message
    with pytest.raises(hammer.InvalidError):
        h.check_rate(uid, 1000, 5, increment=-1)
    assert h.delete_buckets(uid) == 0


# ---------------------------------------------------------------------------------------------------------------------
# Hammer's check_rate and inspect_bucket
# ---------------------------------------------------------------------------------------------------------------------
def test_check_rate_counts_even_when_denied(h, uid):
    ds = [h.check_rate_at(uid, 1000, 3, T + 10 * i) for i in range(5)]
    assert [d.allowed for d in ds] == [True, True, True, False, False]
    assert [d.count for d in ds] == [1, 2, 3, 4, 5], "Hammer counts the hit even when it denies"
    assert [d.remaining for d in ds] == [2, 1, 0, 0, 0]
    assert ds[3].retry_after_ms == 1000 - 30 and ds[4].retry_after_ms == 1000 - 40, "until the window ends"
    assert h.get_bucket(uid, T // 1000).count == 5, "the seed's bucket layout"
    nxt = h.check_rate_at(uid, 1000, 3, T + 1000)
    assert nxt.allowed and nxt.count == 1, "a new window"
    assert h.check_rate_at(uid, 1000, 3, T + 1001, increment=2).count == 3
    z = h.check_rate_at(uid, 1000, 3, T + 1002, increment=0)
    assert z.count == 3 and z.allowed
    assert not h.check_rate_at(uid, 1000, 3, T + 1003, increment=1).allowed


def test_check_rate_and_inspect_bucket_on_the_clock(h, uid):
    fresh = h.inspect_bucket(uid, BIG_SCALE, 5)
    assert fresh.count == 0 and fresh.remaining == 5 and fresh.created is None and fresh.updated is None
    assert 0 < fresh.ms_to_next_bucket <= BIG_SCALE
    before = int(time.time() * 1000)
    a = h.check_rate(uid, BIG_SCALE, 5, increment=2)
    b = h.check_rate(uid, BIG_SCALE, 5)
    after = int(time.time() * 1000)
    assert a.allowed and a.count == 2 and b.count == 3 and b.remaining == 2
    i = h.inspect_bucket(uid, BIG_SCALE, 5)
    assert (i.count, i.remaining) == (3, 2)
    assert before - 1000 <= i.created <= i.updated <= after + 1000, "stamped with the handle's clock"
    assert 0 < i.ms_to_next_bucket <= fresh.ms_to_next_bucket
    assert h.inspect_bucket(uid, BIG_SCALE, 5).count == 3, "inspect_bucket has no side effect"
    h.check_rate(uid, BIG_SCALE, 5, increment=4)
    full = h.inspect_bucket(uid, BIG_SCALE, 5)
    assert full.count == 7 and full.remaining == 0
    assert isinstance(full, hammer.Inspection)


# ---------------------------------------------------------------------------------------------------------------------
# delete_buckets is the reset of every algorithm
# ---------------------------------------------------------------------------------------------------------------------
def test_delete_buckets_resets(h, uid, algo):
    lim = ALGORITHMS[algo](3, 60_000)
    other = uid + ":other"
    for who in (uid, other):
        assert [h.hit(who, lim, now_ms=T).allowed for _ in range(4)] == [True, True, True, False]
    assert h.delete_buckets(uid) >= 1
    d = h.hit(uid, lim, now_ms=T)
    assert d.allowed and d.remaining == 2, "a full limiter again"
    assert not h.hit(other, lim, now_ms=T).allowed, "another id keeps its state"
    h.check_rate_at(uid, 1000, 1, T)
    assert h.delete_buckets(uid) >= 2, "limiter state and check_rate buckets alike"
    assert h.delete_buckets(uid) == 0


# ---------------------------------------------------------------------------------------------------------------------
# on_error and fallback while the server is down
# ---------------------------------------------------------------------------------------------------------------------
def test_failure_policies_while_down(own_redis, uid):
    s = own_redis()
    lim = hammer.Limit.token_bucket(3, 3_600_000)
    hs = {p: hammer.Hammer(s.url(**q)) for p, q in
          [("error", {}), ("allow", {"on_error": "allow"}), ("deny", {"on_error": "deny"}),
           ("local", {"fallback": "local"})]}
    try:
        for p, h in hs.items():
            d = h.hit(uid + p, lim)
            assert d.allowed and not d.degraded
        s.stop()
        with pytest.raises(hammer.ConnectError):
            hs["error"].hit(uid, lim)
        with pytest.raises(hammer.ConnectError):
            hs["error"].check_rate(uid, 1000, 5)

        allow = [hs["allow"].hit(uid, lim) for _ in range(5)] + [hs["allow"].check_rate(uid, 1000, 1)]
        assert all(d.allowed and d.degraded for d in allow), allow
        assert "on_error=allow" in hammer.last_error()

        deny = [hs["deny"].hit(uid, lim) for _ in range(3)] + [hs["deny"].peek(uid, lim)]
        assert all(not d.allowed and d.degraded and d.retry_after_ms > 0 for d in deny), deny

        local = [hs["local"].hit(uid, lim) for _ in range(5)]
        assert [d.allowed for d in local] == [True, True, True, False, False], "the limit holds in-process"
        assert all(d.degraded for d in local) and local[3].retry_after_ms > 0
        many = hs["local"].hit_many([(uid, lim, 1), (uid + ":b", lim, 1)])
        assert [(d.allowed, d.degraded) for d in many] == [(False, True), (True, True)]

        with pytest.raises(hammer.RateLimited) as e:
            hammer.Limiter(hs["deny"], lim, key=uid).check()
        assert e.value.decision.degraded and e.value.retry_after > 0
        for p, h in hs.items():
            st = h.stats()
            assert st.degraded == (0 if p == "error" else {"allow": 6, "deny": 5, "local": 7}[p])
            assert st.errors["CONNECT"] == (2 if p == "error" else 0)

        s.start()
        for p, h in hs.items():
            for _ in range(250):   # the back-off is capped at 1 s: recovery within a few attempts
                try:
                    d = h.hit(uid + p, lim)
                except hammer.ConnectError:
                    assert p == "error"
                else:
                    if not d.degraded:
                        break
                time.sleep(0.02)
            assert not d.degraded and d.allowed and d.remaining == 2, f"{p}: Redis decides again after the restart"
    finally:
        for h in hs.values():
            h.close()


def test_lazy_connect_starts_while_redis_is_down_and_uses_it_once_it_is_up(own_redis, uid):
    # Issue 18: with lazy_connect=true, open does not connect; while Redis cannot be reached on_error / fallback
    # answer from the first call; once Redis is up the same handles use it.
    port = free_port()
    lim = hammer.Limit.token_bucket(3, 3_600_000)
    url = f"redis://127.0.0.1:{port}/?expiry_ms=60000&connect_timeout_ms=300&lazy_connect=true"
    with pytest.raises(hammer.ConnectError):
        hammer.Hammer(url.replace("&lazy_connect=true", ""))   # the default still checks at open
    hs = {p: hammer.Hammer(url + q) for p, q in
          [("error", ""), ("allow", "&on_error=allow"), ("deny", "&on_error=deny"), ("local", "&fallback=local")]}
    try:
        with pytest.raises(hammer.ConnectError):
            hs["error"].hit(uid, lim)
        assert all(d.allowed and d.degraded for d in (hs["allow"].hit(uid, lim) for _ in range(4)))
        assert all(not d.allowed and d.degraded for d in (hs["deny"].hit(uid, lim) for _ in range(4)))
        local = [hs["local"].hit(uid, lim) for _ in range(4)]
        assert [d.allowed for d in local] == [True, True, True, False] and all(d.degraded for d in local)
        with pytest.raises(hammer.ConnectError):
            hs["allow"].count_hit(uid, 1, 1000)   # not a decision: no policy answers it
        own_redis(port=port)
        for p, h in hs.items():
            # The breaker backs off at most 100 ms after a refused connection.
            for _ in range(100):
                try:
                    d = h.hit(uid + p, lim)
                except hammer.ConnectError:
                    d = None
                if d is not None and not d.degraded:
                    break
                time.sleep(0.02)
            assert d is not None and not d.degraded and d.allowed and d.remaining == 2, (p, d)
            assert h.stats().connections >= 1
    finally:
        for h in hs.values():
            h.close()


@pytest.mark.parametrize("policy", [{"on_error": "allow"}, {"on_error": "deny"}, {"fallback": "local"}],
                         ids=["allow", "deny", "local"])
def test_a_changed_password_is_never_answered_by_a_policy(own_redis, uid, policy):
    # Issue 18: after a password change, the open breaker failed calls as transient, and on_error=allow answered
    # 1,801 of them "allowed, degraded". A configuration error stays HAMMER_ERR_REDIS for every call.
    s = own_redis(extra=["requirepass old-pw"])
    lim = hammer.Limit.token_bucket(3, 3_600_000)
    with hammer.Hammer(f"redis://:old-pw@127.0.0.1:{s.port}/?expiry_ms=60000&pool_size=2&" +
                       "&".join(f"{k}={v}" for k, v in policy.items())) as h:
        assert not h.hit(uid, lim).degraded
        s.cli("CONFIG", "SET", "requirepass", "new-pw", password="old-pw")
        s.cli("CLIENT", "KILL", "TYPE", "normal", password="new-pw")
        outcomes = []
        end = time.monotonic() + 1.0   # long enough for the breaker to open, back off and retry several times
        while time.monotonic() < end:
            try:
                outcomes.append(h.hit(uid, lim))
            except hammer.HammerError as e:
                outcomes.append(e)
        assert len(outcomes) >= 20, len(outcomes)
        assert all(isinstance(o, hammer.RedisError) for o in outcomes), \
            {type(o).__name__ for o in outcomes}
        assert "WRONGPASS" in str(outcomes[-1])
        st = h.stats()
        assert st.degraded == 0 and st.errors["REDIS"] == len(outcomes)


# ---------------------------------------------------------------------------------------------------------------------
# Limiter
# ---------------------------------------------------------------------------------------------------------------------
def wait_and_retry(fn, exc, attempts=3):
    """Sleeps the exception's retry_after and calls fn again, at most `attempts` times; returns fn's result."""
    for _ in range(attempts):
        time.sleep(min(exc.retry_after, 2.0))
        try:
            return fn()
        except hammer.RateLimited as e:
            exc = e
    raise AssertionError(f"still limited after {attempts} waits of retry_after: {exc.decision}")


def test_rate_limited_is_its_own_exception():
    assert issubclass(hammer.RateLimited, Exception) and not issubclass(hammer.RateLimited, hammer.HammerError)


def test_limiter_decorator(h, uid):
    lim = hammer.Limiter(h, hammer.Limit.sliding_window(2, 200), key=uid)
    calls = []

    @lim
    def work(x, y=1):
        """Work."""
        calls.append(x)
        return x + y

    assert work.__name__ == "work" and work.__doc__ == "Work."
    assert work(1) == 2 and work(2, y=3) == 5
    with pytest.raises(hammer.RateLimited) as e:
        work(3)
    assert calls == [1, 2], "a limited call does not run"
    assert 0 < e.value.retry_after <= 0.2 and e.value.decision.allowed is False and e.value.key == uid
    assert "rate limited" in str(e.value)
    assert wait_and_retry(lambda: work(4), e.value) == 5
    assert calls == [1, 2, 4]


def test_limiter_key_function(h, uid):
    lim = hammer.Limiter(h, hammer.Limit.token_bucket(1, 200))

    @lim.limit(key=lambda user, *a, **k: f"{uid}:{user}")
    def fetch(user, item):
        return (user, item)

    assert fetch("ann", 1) == ("ann", 1)
    assert fetch("bob", 1) == ("bob", 1), "each user has a limiter of their own"
    with pytest.raises(hammer.RateLimited) as e:
        fetch("ann", 2)
    assert e.value.key == f"{uid}:ann" and e.value.retry_after > 0
    assert wait_and_retry(lambda: fetch("ann", 3), e.value) == ("ann", 3)

    @lim.limit(key=uid + ":heavy", cost=2)
    def heavy():
        return "done"

    with pytest.raises(hammer.RateLimited) as e:
        heavy()
    assert e.value.retry_after is None and "never" in str(e.value), "cost 2 never fits a bucket of 1"


def test_limiter_guard_and_check(h, uid):
    lim = hammer.Limiter(h, hammer.Limit.gcra(3, 300), key=uid)
    ran = []
    with lim as d:
        ran.append(1)
    assert d.allowed and d.remaining == 2
    assert lim.check(cost=2).allowed
    with pytest.raises(hammer.RateLimited) as e:
        with lim:
            ran.append(2)
    assert ran == [1], "a limited block does not run"
    assert e.value.retry_after > 0 and not lim.peek().allowed
    d = wait_and_retry(lambda: lim.check(), e.value)
    assert d.allowed
    assert lim.reset() >= 1 and lim.peek().remaining == 3
    dynamic = hammer.Limiter(h, hammer.Limit.gcra(1, 60_000), key=lambda: uid + ":now")  # called with no args
    assert dynamic.check().allowed and not dynamic.peek().allowed
    assert dynamic.check(key=uid + ":other").allowed, "a key given to check() wins"
    with pytest.raises(hammer.RateLimited) as e:
        dynamic.check()
    assert e.value.key == uid + ":now"


def test_limiter_on_a_coroutine(h, uid, whole_minute):
    lim = hammer.Limiter(h, hammer.Limit.fixed_window(1, 60_000), key=uid)

    @lim
    async def job():
        return 7

    assert asyncio.run(job()) == 7
    with pytest.raises(hammer.RateLimited):
        asyncio.run(job())


def test_limiter_bad_use(h, uid):
    with pytest.raises(hammer.InvalidError):
        hammer.Limiter("not a handle", hammer.Limit.gcra(1, 1000), key=uid)
    with pytest.raises(hammer.InvalidError):
        hammer.Limiter(h, (9, 1), key=uid)
    keyless = hammer.Limiter(h, hammer.Limit.gcra(1, 1000))
    with pytest.raises(hammer.InvalidError):
        keyless.check()
    with pytest.raises(hammer.InvalidError):
        keyless(lambda: None)
    with pytest.raises(hammer.InvalidError):
        hammer.Limiter(h, (9, 1, 1000), key=uid).check()   # the library refuses algorithm 9


# ---------------------------------------------------------------------------------------------------------------------
# Processes sharing one limit
# ---------------------------------------------------------------------------------------------------------------------
def _limit_worker(url, id_, hits, queue):
    import hammer as hm  # a spawned process loads its own copy of the binding and the library
    try:
        with hm.Hammer(url) as h:
            got = {}
            for name, make in (("fixed_window", hm.Limit.fixed_window), ("sliding_window", hm.Limit.sliding_window),
                               ("token_bucket", hm.Limit.token_bucket), ("leaky_bucket", hm.Limit.leaky_bucket),
                               ("gcra", hm.Limit.gcra), ("sliding_counter", hm.Limit.sliding_counter)):
                lim = make(50, 3_600_000)
                got[name] = sum(h.hit(f"{id_}:{name}", lim, now_ms=T).allowed for _ in range(hits))
            queue.put(got)
    except Exception as e:  # noqa: BLE001 - the parent asserts on it
        queue.put(repr(e))


def test_processes_allow_exactly_the_limit(redis_server, h, uid):
    procs, hits = 4, 30
    got = run_in_processes(_limit_worker, (redis_server.url(), uid, hits), procs)
    assert all(isinstance(g, dict) for g in got), got
    for name in ALGORITHMS:
        assert sum(g[name] for g in got) == 50, f"{name}: {[g[name] for g in got]} of {procs * hits} hits allowed"
        assert not h.peek(f"{uid}:{name}", ALGORITHMS[name](50, 3_600_000), now_ms=T).allowed


def test_limiter_decorators_keep_the_function(h, uid):
    """functools.wraps: name, docstring, signature and __wrapped__ survive, for functions and coroutine functions."""
    import inspect
    lim = hammer.Limiter(h, hammer.Limit.gcra(100, 1000), key=uid)

    @lim
    def plain(a: int, *, b: str = "x") -> str:
        """Plain's doc."""
        return f"{a}{b}"

    @lim.limit(key=lambda user: f"{uid}:{user}")
    async def coro(user: str) -> str:
        """Coro's doc."""
        return user

    assert (plain.__name__, plain.__doc__) == ("plain", "Plain's doc.")
    assert str(inspect.signature(plain)) == "(a: int, *, b: str = 'x') -> str"
    assert (coro.__name__, coro.__doc__) == ("coro", "Coro's doc.") and inspect.iscoroutinefunction(coro)
    assert str(inspect.signature(coro)) == "(user: str) -> str"
    assert plain.__wrapped__.__name__ == "plain"
    assert plain(1) == "1x" and asyncio.run(coro("ann")) == "ann"


# ---------------------------------------------------------------------------------------------------------------------
# Several limits, one atomic decision (hammer_hit_all)
# ---------------------------------------------------------------------------------------------------------------------
PREFIX = b"Hammer:Redis:"


def copy_state(redis_server, src, dst):
    """The Redis state of id src, copied to id dst (what a lone limit of src would decide is then asked of dst)."""
    for key in redis_server.cli("KEYS", PREFIX + src.encode() + b":*"):
        redis_server.cli("COPY", key, PREFIX + dst.encode() + key[len(PREFIX) + len(src.encode()):], "REPLACE")


@pytest.mark.parametrize("seed", range(4))
def test_several_limits_allow_exactly_when_every_limit_alone_would(redis_server, h, uid, seed):
    """At every random step, hit(id, [limits]) allows exactly when each limit alone would (asked of a copy of the
    id's state, through hammer_hit on it), charges every limit or none (each lone peek afterwards agrees with a
    shadow id that takes the hits one limit at a time only when the call allowed), and answers the least remaining,
    the longest wait and the longest reset."""
    import random
    rng = random.Random(seed)
    pool = [hammer.Limit.fixed_window(rng.randint(1, 6), 1000), hammer.Limit.sliding_window(rng.randint(1, 6), 2000),
            hammer.Limit.token_bucket(rng.randint(1, 6), 1000, burst=rng.randint(0, 8)),
            hammer.Limit.leaky_bucket(rng.randint(1, 6), 3000), hammer.Limit.gcra(rng.randint(1, 6), 1000),
            hammer.Limit.sliding_counter(rng.randint(1, 6), 1000), hammer.Limit.sliding_counter(rng.randint(2, 9), 5000)]
    import re
    uid = re.sub(r"[^\w:.-]", "_", uid)   # KEYS patterns below: no glob characters
    now, shadow, probe = T, uid + ":shadow", uid + ":probe"
    seen = {True: 0, False: 0}
    for step in range(60):
        now += rng.choice([0, rng.randrange(300), rng.randrange(3000)])
        lims = rng.sample(pool, rng.randint(1, 4))
        cost = rng.choice([0, 1, 1, 1, 2, 3, 9])
        alone = []
        for lim in lims:
            redis_server.cli("DEL", *redis_server.cli("KEYS", PREFIX + probe.encode() + b":*") or [b"none"])
            copy_state(redis_server, shadow, probe)
            alone.append(h.hit(probe, lim, cost, now_ms=now))
        got = h.hit(uid, lims, cost, now_ms=now)
        what = f"seed {seed} step {step}: {lims} cost {cost} now {now}"
        assert got.allowed == all(d.allowed for d in alone), what
        seen[got.allowed] += 1
        what += f": got {got}, alone {alone}"
        if got.allowed:
            assert got.reset_after_ms == max(d.reset_after_ms for d in alone), what
        if got.allowed:
            assert got.remaining == min(d.remaining for d in alone), what
            assert got == alone[got.decided_by]._replace(reset_after_ms=got.reset_after_ms,
                                                         decided_by=got.decided_by), what
            for lim in lims:
                h.hit(shadow, lim, cost, now_ms=now)
        else:
            denied = [d.retry_after_ms for d in alone if not d.allowed]
            want = -1 if -1 in denied else max(denied)
            assert got.retry_after_ms == want and got.remaining == 0, what
            assert not alone[got.decided_by].allowed and alone[got.decided_by].retry_after_ms == want, what
        for lim in pool:
            assert h.peek(uid, lim, now_ms=now) == h.peek(shadow, lim, now_ms=now), f"{what}: {lim} all or none"
        for suffix in (b":tb", b":lb", b":gcra", b":swm"):
            a = redis_server.cli("GET", PREFIX + uid.encode() + suffix)
            b = redis_server.cli("GET", PREFIX + shadow.encode() + suffix)
            assert a == b, f"{what}: {suffix} {a} {b}"
    assert seen[True] > 5 and seen[False] > 5, seen


def test_several_limits_python_api(h, uid):
    day = hammer.Limit.sliding_counter(1000, 86_400_000)
    second = hammer.Limit.gcra(2, 1000)
    d = h.hit(uid, [day, second], now_ms=T)
    assert d.allowed and d.decided_by == 1 and d.remaining == 1 and d.limit == 2
    assert h.hit(uid, (day, second), now_ms=T).allowed, "a tuple of limits too"
    denied = h.hit(uid, [day, second], now_ms=T)
    assert not denied.allowed and denied.decided_by == 1 and denied.retry_after_ms == 500
    assert h.peek(uid, [day, second], now_ms=T) == denied
    assert h.peek(uid, [day, second], now_ms=T + 500).allowed
    assert h.peek(uid, day, now_ms=T).count == 2, "the denied call charged nothing"
    assert h.hit(uid, [(hammer.GCRA, 2, 1000), (hammer.SLIDING_COUNTER, 1000, 86_400_000)], now_ms=T + 500).allowed
    assert h.hit(uid, [hammer.GCRA, 2, 1000], now_ms=T).decided_by == 0, "a tuple of ints is one limit"
    strings = [h.hit(uid + ":s", hammer.parse("2/second;3/day"), now_ms=T + i) for i in range(4)]   # limits' notation
    assert [d.allowed for d in strings] == [True, True, False, False] and strings[2].decided_by == 0
    assert h.hit(uid + ":s", hammer.parse("2/second;3/day"), now_ms=T + 1000).allowed
    assert h.hit(uid + ":s", hammer.parse("2/second;3/day"), now_ms=T + 2000).decided_by == 1, "the day is full"
    never = h.hit(uid, [day, second], cost=3, now_ms=T)
    assert not never.allowed and never.retry_after is None and never.decided_by == 1
    assert h.hit(uid + ":clock", [day, second]).allowed and h.peek(uid + ":clock", [day, second]).allowed
    ten_years = 315_360_000_000
    with pytest.raises(hammer.InvalidError) as e:
        h.hit(uid, [second, hammer.Limit.fixed_window(1, ten_years), hammer.Limit.fixed_window(2, ten_years - 1000)],
              now_ms=T)
    assert "lims[1]" in e.value.message and "lims[2]" in e.value.message, "two fixed windows in one bucket now"
    with pytest.raises(hammer.InvalidError):
        h.hit(uid, [second] * 17, now_ms=T)
    with pytest.raises(hammer.InvalidError):
        h.hit(uid, [], now_ms=T)
    with pytest.raises(hammer.InvalidError):
        h.hit(uid, [second, (9, 1, 1000)], now_ms=T)
    out = h.hit_many([(uid + ":m", [day, second], 1, T), (uid + ":m", second, 1, T), (uid + ":m", [second, day], 1, T),
                      (uid + ":m", [hammer.Limit.token_bucket(1, 10), hammer.Limit.token_bucket(2, 10)], 1, T)])
    assert [o.allowed for o in out] == [True, True, False, True]
    assert out[2].decided_by == 0 and out[3].decided_by == 0 and out[3].remaining == 0


def test_several_limits_of_one_algorithm(h, uid):
    """Limits of one algorithm in one call ("2/second;3/minute" as sliding windows; a burst bucket and a daily quota)
    each keep a state of their own; delete_buckets deletes them with the rest of the id."""
    lims = hammer.parse("2/second;3/minute", algorithm="sliding_window")
    got = [h.hit(uid, lims, now_ms=T + dt) for dt in (0, 100, 200, 1100, 2500)]
    assert [d.allowed for d in got] == [True, True, False, True, False]
    assert [d.decided_by for d in got] == [0, 0, 0, 1, 1]   # at +1100 the hit at +100 has left the second
    assert got[2].retry_after_ms == 800 and got[4].retry_after_ms == 57_500
    assert h.peek(uid, lims[::-1], now_ms=T + 2500).decided_by == 0, "the same states in another order"
    assert h.peek(uid, lims[0], now_ms=T + 200).remaining == 2, "the lone limit: the id's sliding window, untouched"
    quota = [hammer.Limit.token_bucket(10, 1000, burst=20), hammer.Limit.token_bucket(1000, 86_400_000)]
    assert h.hit(uid, quota, 20, now_ms=T).allowed
    burst = h.hit(uid, quota, now_ms=T)
    assert not burst.allowed and burst.decided_by == 0 and burst.retry_after_ms == 100
    assert h.hit_many([(uid, quota, 1, T + 100), (uid, quota, 1, T + 100)])[1].retry_after_ms == 100
    fixed = hammer.parse("1/second;2/second")
    assert [h.hit(uid, fixed, now_ms=T).allowed for _ in range(2)] == [True, False], "fixed windows of one period"
    assert h.delete_buckets(uid) == 2 * 2 + 2 + 2, "two logs and metas, two buckets, two fixed windows' buckets"
    assert h.hit(uid, lims, now_ms=T).remaining == 1, "afresh"


async def _aio_several(url, uid):
    import hammer.aio
    async with hammer.aio.Hammer(url) as h:
        lims = [hammer.Limit.sliding_counter(5, 60_000), hammer.Limit.token_bucket(1, 1000)]
        return [await h.hit(uid, lims, now_ms=T), await h.hit(uid, lims, now_ms=T), await h.peek(uid, lims, now_ms=T)]


def test_several_limits_aio(redis_server, uid):
    a, b, p = asyncio.run(_aio_several(redis_server.url(), uid))
    assert a.allowed and not b.allowed and b.decided_by == 1 and p == b


def test_several_limits_local_fallback(own_redis, uid):
    server = own_redis()
    with hammer.Hammer(server.url(fallback="local", timeout_ms=200, connect_timeout_ms=200)) as h:
        lims = [hammer.Limit.fixed_window(3, 60_000), hammer.Limit.gcra(2, 60_000)]
        server.stop()
        got = [h.hit(uid, lims, now_ms=T) for _ in range(3)]
        assert [g.allowed for g in got] == [True, True, False] and all(g.degraded for g in got)
        assert got[2].decided_by == 1 and got[2].retry_after_ms == 30_000
        assert h.peek(uid, lims[0], now_ms=T).remaining == 1, "the local fixed window charged twice, not three times"
