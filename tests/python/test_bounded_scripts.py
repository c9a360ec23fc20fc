"""Scripts that cannot block Redis: every script's work is bounded whatever state it finds (issue 18).

Each test puts the largest state the API allows in front of a script (10^6 hits in one id's sliding window, an index
of 10^5 buckets, state of an older version) on a real redis-server of its own, and asserts the bound as a property
that cannot flake: the decision is exact (against a model computed here), a call trims at most 1000 hits and the
meta's total stays exact, later calls finish the trim. Redis's own time per script call (SLOWLOG, every command
logged) is printed, not asserted: `python3 -m pytest -q -s tests/python/test_bounded_scripts.py` gives the table
of BENCHMARKS.md ("Scripts at 10^6 entries")."""
import bisect
import itertools

import pytest

import hammer
from redis_server import RedisServer, encode, read_reply

N = 1_000_000
P = 3_600_000             # one hour
T0 = 1_700_000_000_000    # the first seeded hit
SPAN = 3_000_000          # the seeded hits spread over 50 minutes
BATCH = 1000              # hits a script call trims or reads one by one at most (lua/lib/sliding_window.lua)
REWRITE = 4               # what a hit renumbered counts in that budget
TIMES = {}                # scenario -> Redis usec of each of its script calls (SLOWLOG: wall time)
CPU = {}                  # scenario -> usec of CPU Redis's main thread spent on each call (/proc/PID/schedstat)

# Seeds a sliding window's log and meta inside Redis: hit i (1..n) at t0 + (i-1)*span/n, cost 1 or 1 + i % 3, in
# this version's format (members "<cum, 16 digits>:<cost>") or an older one's ("<seq>:<cost>", meta "<total> <seq>
# <newest>").
SEED = """
local n, t0, span, vary, new = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'
local cum, args = 0, {}
for i = 1, n do
  local c = 1
  if vary then c = 1 + i % 3 end
  cum = cum + c
  args[#args + 1] = string.format('%d', t0 + math.floor((i - 1) * span / n))
  if new then args[#args + 1] = string.format('%016d:%d', cum, c) else args[#args + 1] = string.format('%d:%d', i, c) end
  if #args >= 2000 then redis.call('ZADD', KEYS[1], unpack(args)); args = {} end
end
if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
local newest = t0 + math.floor((n - 1) * span / n)
if new then redis.call('SET', KEYS[2], string.format('%d %016d %d', cum, cum, newest), 'PX', 86400000)
else redis.call('SET', KEYS[2], string.format('%d %d %d', cum, n, newest), 'PX', 86400000) end
redis.call('PEXPIRE', KEYS[1], 86400000)
collectgarbage('collect')   -- no garbage of this script left for a measured one's share of Lua's collector
return cum
"""

# The sum of the costs in a log, and whether its cums rise along it by each hit's cost (this version's format).
CHECK = """
local cum, ok, total, prev = nil, 1, 0, nil
local page, start = nil, 0
repeat
  page = redis.call('ZRANGE', KEYS[1], start, start + 9999)
  for i = 1, #page do
    local a, c = string.match(page[i], '^(%d+):(%d+)$')
    a, c = tonumber(a), tonumber(c)
    total = total + c
    if prev and a ~= prev + c then ok = 0 end
    prev = a
  end
  start = start + 10000
until #page < 10000
collectgarbage('collect')
return {total, ok}
"""


class Server(RedisServer):
    """A redis-server whose raw commands may take long: seeding 10^6 hits on a loaded machine."""

    def cli(self, *args, password=None, user=None):
        with self.connect(timeout=300) as s:
            f = s.makefile("rb")
            s.sendall(encode(args))
            return read_reply(f)


class Log:
    """The seeded hits, for the exact decisions a model gives."""

    def __init__(self, n=N, vary=False):
        self.times = [T0 + (i - 1) * SPAN // n for i in range(1, n + 1)]
        self.costs = [1 + i % 3 if vary else 1 for i in range(1, n + 1)]
        self.sums = list(itertools.accumulate(self.costs))

    def decide(self, L, need, now):
        """(allowed, count, retry_after_ms) of a hit of cost `need` at `now` (no write)."""
        first = bisect.bisect_right(self.times, now - P)        # the first hit in the window
        before = self.sums[first - 1] if first else 0
        live = self.sums[-1] - before
        if live + need <= L:
            return True, live, 0
        want = live + need - L
        k = bisect.bisect_left(self.sums, before + want)
        return False, live, self.times[k] + P - now


@pytest.fixture(scope="module")
def server():
    with Server(extra=["slowlog-log-slower-than 0", "slowlog-max-len 100000"]) as s:
        yield s


@pytest.fixture(scope="module")
def h(server):
    with hammer.Hammer(server.url(timeout_ms=10000)) as handle:
        yield handle


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    print("\nRedis per call, usec: CPU of its main thread (schedstat), median and worst, then the script's time")
    print("(SLOWLOG, wall: the CPU time plus any wait for a core on a loaded machine), median and worst")
    for name, us in TIMES.items():
        us, cpu = sorted(us), sorted(CPU[name])
        print(f"  {name:<72} {cpu[len(cpu) // 2]:>7} {cpu[-1]:>7} {us[len(us) // 2]:>7} {us[-1]:>7}")


def seed(server, id, n=N, vary=False, new=True):
    server.cli("UNLINK", f"Hammer:Redis:{id}:sw", f"Hammer:Redis:{id}:swm")
    return server.cli("EVAL", SEED, 2, f"Hammer:Redis:{id}:sw", f"Hammer:Redis:{id}:swm", n, T0, SPAN,
                      int(vary), int(new))


def cpu_ns(server):
    """CPU time of redis-server's main thread (the one that runs commands and scripts), in ns: unlike SLOWLOG's
    wall time, it does not grow while the thread waits for a core."""
    with open(f"/proc/{server.proc.pid}/schedstat") as f:
        return int(f.read().split()[0])


def timed(server, name, call, repeat=1):
    """Runs call() `repeat` times (calls that write nothing) and records the time of each script command Redis ran
    for it; returns the last call's result."""
    for _ in range(repeat):
        server.cli("SLOWLOG", "RESET")
        before = cpu_ns(server)
        out = call()
        spent = (cpu_ns(server) - before) // 1000
        log = server.cli("SLOWLOG", "GET", "-1")
        us = [e[2] for e in log if e[3][0].upper() in (b"EVALSHA", b"EVAL")]
        assert us, "no script ran"
        CPU.setdefault(name, []).append(spent // len(us))   # a call of several scripts (delete_buckets): each
        TIMES.setdefault(name, []).extend(us)
    return out


def meta(server, id):
    total, cum, newest = server.cli("GET", f"Hammer:Redis:{id}:swm").split()
    return int(total), cum, int(newest)


def check(server, id):
    """The meta's total is the sum of the log's costs, and the cums rise along the log by each hit's cost."""
    total, ok = server.cli("EVAL", CHECK, 1, f"Hammer:Redis:{id}:sw")
    assert ok == 1
    assert meta(server, id)[0] == total
    return total


def card(server, id):
    return server.cli("ZCARD", f"Hammer:Redis:{id}:sw")


def expired(server, id, now):
    return server.cli("ZCOUNT", f"Hammer:Redis:{id}:sw", "-inf", str(now - P))


def test_reference_a_hit_on_a_small_log(server, h):
    """The reference row: the same script on an id whose log holds 10 hits, in the same run."""
    lim = hammer.Limit.sliding_window(1000, P)
    for i in range(10):
        h.hit("small", lim, 1, T0 + i)
    d = timed(server, "reference: sliding_window hit on a log of 10 hits", lambda: h.hit("small", lim, 1, T0 + 10),
              repeat=1)
    assert d.allowed and d.count == 11
    for k in range(20):
        timed(server, "reference: sliding_window hit on a log of 10 hits",
              lambda: h.hit("small", hammer.Limit.sliding_window(10, P), 1, T0 + 11 + k))
    for k in range(5):
        out = timed(server, "reference: decide_many, 128 sliding_window hits on logs of 10 hits",
                    lambda: h.hit_many([(f"small:{i}", lim, 1, T0 + 100 + k) for i in range(128)]))
        assert all(d.allowed for d in out)


@pytest.mark.parametrize("vary", [False, True], ids=["cost 1", "costs 1-3"])
def test_denied_and_lowered_limit_and_peek_on_a_full_log(server, h, vary):
    """10^6 hits in the window: a denied hit of a large cost, a hit after the limit was lowered to 1000 and peeks
    answer exactly (retry_after_ms included) without reading the log, and write nothing."""
    id = f"full{int(vary)}"
    total = seed(server, id, vary=vary)
    model = Log(vary=vary)
    now = T0 + SPAN + 1000
    costs = "cost 1" if not vary else "costs 1-3"
    L = total + 200_000
    before = (server.cli("GET", f"Hammer:Redis:{id}:swm"), card(server, id))
    for name, lim, cost in ((f"sliding_window: denied hit of cost 300k, 10^6 in window ({costs})", L, 300_000),
                            (f"sliding_window: hit after the limit was lowered to 1000 ({costs})", 1000, 1)):
        d = timed(server, name, lambda: h.hit(id, hammer.Limit.sliding_window(lim, P), cost, now), repeat=5)
        allowed, live, retry = model.decide(lim, cost, now)
        assert not allowed and (d.allowed, d.count, d.retry_after_ms) == (False, live, retry)
    for name, lim in ((f"sliding_window: peek, 10^6 in window, allowed ({costs})", L),
                      (f"sliding_window: peek, 10^6 in window, limit 1000 ({costs})", 1000)):
        d = timed(server, name, lambda: h.peek(id, hammer.Limit.sliding_window(lim, P), now), repeat=5)
        allowed, live, retry = model.decide(lim, 1, now)
        assert (d.allowed, d.count, d.retry_after_ms) == (allowed, live, retry)
    assert (server.cli("GET", f"Hammer:Redis:{id}:swm"), card(server, id)) == before
    # The answer holds: a client that waits retry_after_ms passes (its hits leave the window then, not before).
    d = h.hit(id, hammer.Limit.sliding_window(L, P), 300_000, now)
    assert not h.hit(id, hammer.Limit.sliding_window(L, P), 300_000, now + d.retry_after_ms - 1).allowed
    assert h.hit(id, hammer.Limit.sliding_window(L, P), 300_000, now + d.retry_after_ms).allowed
    check(server, id)


@pytest.mark.parametrize("gone", [3 / 4, 1], ids=["3/4 expired", "all expired"])
def test_a_hit_trims_at_most_1000_and_later_hits_finish(server, h, gone):
    """Once most or all of the log has left the window, an allowed hit answers exactly, removes at most 1000 of the
    expired hits with the meta's total exact, and the hits after it finish the trim, 1000 each."""
    id = f"gone{gone}"
    seed(server, id)
    model = Log()
    now = T0 + int(SPAN * gone) + P + (1 if gone < 1 else 10_000)
    lim = hammer.Limit.sliding_window(N, P)
    left = expired(server, id, now)
    assert left == bisect.bisect_right(model.times, now - P) >= 3 * N // 4
    d = timed(server, f"sliding_window: hit, {'3/4' if gone < 1 else 'all'} of 10^6 expired",
              lambda: h.hit(id, lim, 1, now))
    allowed, live, _ = model.decide(N, 1, now)
    assert allowed and (d.allowed, d.count) == (True, live + 1)
    assert card(server, id) == N - BATCH + 1 and expired(server, id, now) == left - BATCH
    assert check(server, id) == N - BATCH + 1
    calls = 0
    while expired(server, id, now) > 0:
        before = card(server, id)
        d = timed(server, f"sliding_window: hit, {'3/4' if gone < 1 else 'all'} of 10^6 expired",
                  lambda: h.hit(id, lim, 1, now))
        calls += 1
        assert d.allowed and d.count == live + 1 + calls
        assert before - card(server, id) == min(BATCH, left - BATCH * calls) - 1
    assert calls == -(-left // BATCH) - 1
    assert check(server, id) == live + 1 + calls


def test_a_hit_stamped_before_the_log_renumbers_at_most_250(server, h):
    """A hit stamped before most of the log (another caller's clock, a replay): at most 250 hits after it are
    renumbered (a rewrite counts 4 in the budget of 1000); the rest is left alone and the hit is logged at the time
    of the oldest it could renumber, so it leaves the window later (stricter, never looser); the sums stay exact."""
    id = "early"
    seed(server, id)
    now = T0 + SPAN // 2
    lim = hammer.Limit.sliding_window(2 * N, P)
    can = BATCH // REWRITE
    d = timed(server, "sliding_window: hit stamped before 500k logged hits", lambda: h.hit(id, lim, 5, now))
    assert d.allowed and d.count == N + 5
    moved = server.cli("ZRANGE", f"Hammer:Redis:{id}:sw", -can - 1, -can - 1, "WITHSCORES")
    assert moved[0].endswith(b":5") and int(moved[1]) == T0 + (N - can) * SPAN // N
    assert check(server, id) == N + 5
    for _ in range(4):   # more samples of the same work
        timed(server, "sliding_window: hit stamped before 500k logged hits", lambda: h.hit(id, lim, 5, now))
    # Within the budget, exact: stamped before the newest 200.
    t = T0 + (N - 200) * SPAN // N - 1
    d = timed(server, "sliding_window: hit stamped before 200 logged hits", lambda: h.hit(id, lim, 7, t))
    assert d.allowed and d.count == N + 32
    assert server.cli("ZRANGE", f"Hammer:Redis:{id}:sw", -201, -201, "WITHSCORES")[1] == str(t).encode()
    assert check(server, id) == N + 32


def test_state_of_an_older_version_is_read_within_the_bound(server, h):
    """10^6 hits in the format of the previous version (members "<seq>:<cost>", meta "<total> <seq> <newest>"):
    too large to read or convert in one call, so the hits in its window are its total less one per expired hit
    (exact here, where every hit cost 1; an upper bound otherwise), allowed hits trim at most 1000 and keep its
    total exact, and the first allowed hit that can read it whole within the budget converts it."""
    id = "old"
    seed(server, id, new=False)
    model = Log()
    now = T0 + SPAN + 1000
    d = timed(server, "sliding_window (older state): hit after the limit was lowered to 1000",
              lambda: h.hit(id, hammer.Limit.sliding_window(1000, P), 1, now))
    _, live, retry = model.decide(1000, 1, now)
    assert (d.allowed, d.count, d.retry_after_ms) == (False, live, retry)
    d = timed(server, "sliding_window (older state): peek, limit 1000",
              lambda: h.peek(id, hammer.Limit.sliding_window(1000, P), now))
    assert (d.allowed, d.count, d.retry_after_ms) == (False, live, retry)
    later = T0 + SPAN * 3 // 4 + P + 1
    lim = hammer.Limit.sliding_window(2 * N, P)
    d = timed(server, "sliding_window (older state): hit, 3/4 of 10^6 expired", lambda: h.hit(id, lim, 1, later))
    assert d.allowed and d.count == model.decide(2 * N, 1, later)[1] + 1
    assert card(server, id) == N - BATCH + 1
    total, seq, _ = server.cli("GET", f"Hammer:Redis:{id}:swm").split()
    assert int(total) == N - BATCH + 1 and len(seq) < 16   # still the older format, its total exact
    for k in range(4):   # more samples of the same work
        timed(server, "sliding_window (older state): hit, 3/4 of 10^6 expired", lambda: h.hit(id, lim, 1, later))
        assert card(server, id) == N - (BATCH - 1) * (k + 2)
    # Hits with a period of 1 ms: the window holds the latest hit only, and each call trims; once the log is small
    # enough, it is converted (its window's hits renumbered).
    one = hammer.Limit.sliding_window(10, 1)
    late = T0 + SPAN + P
    calls = 0
    while len(meta(server, id)[1]) < 16:
        assert calls < N // (BATCH // 2), "never converted"
        # The keys' TTL (a window of 1 ms and a second) runs on Redis's clock, and this loop's redis-cli calls may
        # take longer than that on a loaded machine: keep the state alive, as hits in real time would.
        for key in ("sw", "swm"):
            server.cli("PEXPIRE", f"Hammer:Redis:{id}:{key}", 600_000)
        before = card(server, id)
        d = timed(server, "sliding_window (older state): trimming hits, then the one that converts",
                  lambda: h.hit(id, one, 1, late + calls))
        assert d.allowed and d.count == 1
        assert before - card(server, id) <= BATCH
        calls += 1
    assert card(server, id) == 1 and check(server, id) == 1


def test_a_batch_shares_one_budget(server, h):
    """hit_many of 128 requests on one id whose log has 3/4 of 10^6 expired: the chunk is one script call, and
    all its requests together trim at most 1000 hits."""
    id = "batch"
    seed(server, id)
    now = T0 + SPAN * 3 // 4 + P + 1
    lim = hammer.Limit.sliding_window(N, P)
    out = timed(server, "decide_many: 128 hits on a log with 3/4 of 10^6 expired",
                lambda: h.hit_many([(id, lim, 1, now)] * 128))
    assert all(d.allowed for d in out)
    assert card(server, id) == N - BATCH + 128
    assert check(server, id) == N - BATCH + 128
    for k in range(4):   # more samples of the same work
        timed(server, "decide_many: 128 hits on a log with 3/4 of 10^6 expired",
              lambda: h.hit_many([(id, lim, 1, now)] * 128))
        assert card(server, id) == N - (BATCH - 128) * (k + 2)


def test_delete_buckets_of_an_index_of_any_size(server, h):
    """An id with 10^5 buckets in its index and 10^6 hits in its sliding window: delete_buckets deletes them all,
    a page of 1000 index members per script call (UNLINK frees the log outside the script)."""
    id = "many"
    seed(server, id)
    nb = 100_000
    server.cli("EVAL", """
for b = 1, tonumber(ARGV[1]) do
  redis.call('HSET', KEYS[1] .. b, 'count', 1, 'created', 1, 'updated', 1)
  redis.call('ZADD', KEYS[1] .. 'index', 4102444800000, b)
end
collectgarbage('collect')""", 1, f"Hammer:Redis:{id}:", nb)
    n = timed(server, "delete_buckets: 10^5 buckets, 10^6 hits in the sliding window",
              lambda: h.delete_buckets(id))
    assert n == nb + 2
    assert server.cli("EXISTS", f"Hammer:Redis:{id}:index", f"Hammer:Redis:{id}:sw", f"Hammer:Redis:{id}:1") == 0
    evals = [e for e in server.cli("SLOWLOG", "GET", "-1") if e[3][0].upper() in (b"EVALSHA", b"EVAL")]
    assert len(evals) >= nb // 1000


def test_an_index_of_expired_entries_is_pruned_1000_at_a_time(server, h):
    """An index holding 10^5 entries of buckets that have expired (scores in the past) and a TTL: each new bucket
    drops at most 1000 of them (the lowest scores), so no count_hit's work grows with the index, and new buckets go
    on dropping them until none is left; the new buckets' entries stay."""
    id = "pruned"
    nb = 100_000
    idx = f"Hammer:Redis:{id}:index"
    server.cli("EVAL", """
for b = 1, tonumber(ARGV[1]) do redis.call('ZADD', KEYS[1], b, 'x' .. b) end
redis.call('PEXPIRE', KEYS[1], 3600000)""", 1, idx, nb)
    left = nb
    for k in range(1, 4):
        timed(server, "count_hit: a new bucket, 10^5 expired entries in the id's index",
              lambda: h.count_hit(id, 10**9 + k, 1))
        now_left = server.cli("ZCARD", idx) - k
        assert left - now_left == 1000, (left, now_left)
        left = now_left
    expired_left = server.cli("ZCOUNT", idx, "-inf", "100000")
    assert expired_left == nb - 3000
    assert server.cli("ZSCORE", idx, str(10**9 + 1)) is not None


def model_decide(log, L, period, mode, c, now):
    """The sliding window's model (Sources/HammerCore/Algorithms.swift, LimiterModel), on a list of (time, cost)."""
    edge = now - period
    live = sum(cost for t, cost in log if t > edge)
    need = 1 if mode == "p" else c
    ok = (mode == "h" and c == 0) or (need <= L and live + need <= L)
    total = live
    if ok and mode == "h" and c > 0:
        log[:] = [e for e in log if e[0] > edge] + [(now, c)]
        total += c
    newest = max([t for t, _ in log], default=now)
    rem, retry, reset = 0, 0, (newest + period - now if total > 0 else 0)
    if ok:
        rem = max(0, L - total)
    elif need > L:
        retry = -1
    else:
        want, freed = total + need - L, 0
        for t, cost in sorted((e for e in log if e[0] > edge), key=lambda e: e[0]):
            freed += cost
            if freed >= want:
                retry = t + period - now
                break
    return (int(ok), total, rem, retry, reset)


@pytest.mark.parametrize("seed", range(12))
def test_sliding_window_is_exact_when_callers_clocks_disagree(h, seed):
    """Hits stamped before hits already logged (callers whose clocks differ, replays): within the budget they are
    renumbered, and every decision equals the model's, retry_after_ms and reset_after_ms included, also after the
    id's limit changed (ModelComparisonTests covers times that never go back)."""
    import random
    rng = random.Random(seed)
    period = rng.choice([100, 1000, 60_000])
    limits = [rng.randint(1, 12), rng.randint(1, 40)]
    log, now, id = [], T0, f"clocks:{seed}"
    for i in range(200):
        L = rng.choice(limits)
        now += rng.choice([0, rng.randint(0, period // 10 + 1), rng.randint(0, period), rng.randint(0, 3 * period)])
        t = now - rng.randint(0, period) if rng.random() < 0.3 else now
        mode = "p" if rng.random() < 0.1 else "h"
        c = rng.choice([0, 1, 1, 1, rng.randint(1, L), L + 1])
        want = model_decide(log, L, period, mode, c, t)
        lim = hammer.Limit.sliding_window(L, period)
        d = h.peek(id, lim, t) if mode == "p" else h.hit(id, lim, c, t)
        got = (int(d.allowed), d.count, d.remaining, d.retry_after_ms, d.reset_after_ms)
        assert got == want, (seed, i, mode, L, period, c, t)


def test_running_sum_is_renumbered_from_0_past_2_to_the_50(server, h):
    """cum must stay exact in Lua's doubles (below 2^53): once past 2^50, a hit that can rewrite the whole log within
    the budget renumbers it from 0, and the decisions go on as before."""
    id = "rebase"
    log, meta_key = f"Hammer:Redis:{id}:sw", f"Hammer:Redis:{id}:swm"
    top = 2 ** 50 - 1
    server.cli("ZADD", log, T0, f"{top - 3:016d}:1", T0 + 1, f"{top - 2:016d}:1", T0 + 2, f"{top:016d}:2")
    server.cli("SET", meta_key, f"4 {top:016d} {T0 + 2}", "PX", 600_000)
    lim = hammer.Limit.sliding_window(10, P)
    d = h.hit(id, lim, 5, T0 + 3)
    assert d.allowed and d.count == 9
    assert server.cli("ZRANGE", log, 0, -1) == [b"0000000000000001:1", b"0000000000000002:1", b"0000000000000004:2",
                                               b"0000000000000009:5"]
    assert meta(server, id)[:2] == (9, b"0000000000000009")
    d = h.hit(id, lim, 2, T0 + 4)
    assert not d.allowed and d.retry_after_ms == P - 4   # the first hit (cost 1, at T0) must leave
