"""Batches and statistics through the Python binding (issue 5), against real redis-server processes: hit_many,
count_hits and check_rates decide as the single calls do, report an error per request and leave the others alone;
stats() counts calls, decisions, errors and latencies as hammer_stats_t states."""
import random
import threading
import time

import pytest

import hammer

T = 1_700_000_000_000
BIG_SCALE = 100_000_000_000     # a check_rate window the real clock does not leave during a test

LIMITS = [hammer.Limit.fixed_window(4, 1000), hammer.Limit.sliding_window(4, 1000),
          hammer.Limit.token_bucket(4, 1000, burst=6), hammer.Limit.leaky_bucket(3, 500),
          hammer.Limit.gcra(5, 2000, burst=2)]


def script(seed, n=300):
    """A reproducible sequence of (id suffix, limit, cost, now_ms): several ids and algorithms, rising times."""
    rnd = random.Random(seed)
    now, out = T, []
    for _ in range(n):
        now += rnd.choice((0, 0, 1, 37, 150, 400))
        out.append((f"id{rnd.randrange(3)}", rnd.choice(LIMITS), rnd.choice((0, 1, 1, 1, 2, 3, 7)), now))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# hit_many
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_hit_many_equals_single_calls(h, uid, seed):
    steps = script(seed)
    single = [h.hit(f"{uid}:s:{i}", lim, cost, now) for i, lim, cost, now in steps]
    batch = h.hit_many([(f"{uid}:b:{i}", lim, cost, now) for i, lim, cost, now in steps])
    assert batch == single
    assert any(d.allowed for d in single) and any(not d.allowed for d in single), "both kinds were exercised"
    # In chunks, continuing the same state: still the same decisions.
    more = script(seed + 100, 120)
    single = [h.hit(f"{uid}:s:{i}", lim, cost, now + 10**7) for i, lim, cost, now in more]
    batch = []
    for k in range(0, len(more), 7):
        batch += h.hit_many([(f"{uid}:b:{i}", lim, cost, now + 10**7) for i, lim, cost, now in more[k:k + 7]])
    assert batch == single


@pytest.mark.parametrize("kind", ["hit_many", "check_rates", "count_hits"])
def test_a_request_redis_fails_fails_alone_in_its_batch(h, uid, redis_server, redis_cmd, kind):
    """A key of the wrong type makes Redis fail that request's commands (WRONGTYPE): that request gets the error,
    the ones before and after it in the same script call are decided as usual."""
    fw = hammer.Limit.fixed_window(10, 60_000)
    now = T + 5
    if kind == "count_hits":
        redis_cmd(redis_server, "SET", f"Hammer:Redis:{uid}:bad:1", "a string")
        out = h.count_hits([(f"{uid}:a", 1, now), (f"{uid}:bad", 1, now), (f"{uid}:b", 1, now)] * 2)
        good = [1, 1, 2, 2]
    elif kind == "hit_many":
        redis_cmd(redis_server, "SET", f"Hammer:Redis:{uid}:bad:{now // 60_000}", "a string")
        out = h.hit_many([(f"{uid}:a", fw, 1, now), (f"{uid}:bad", fw, 1, now), (f"{uid}:b", fw, 1, now)] * 2)
        good = [1, 1, 2, 2]
    else:
        scale = BIG_SCALE
        redis_cmd(redis_server, "SET", f"Hammer:Redis:{uid}:bad:{int(time.time() * 1000) // scale}", "a string")
        out = h.check_rates([(f"{uid}:a", scale, 10), (f"{uid}:bad", scale, 10), (f"{uid}:b", scale, 10)] * 2)
        good = [1, 1, 2, 2]
    # Each failed request has its status; the message (hammer_last_error) is the first failed request's.
    assert all(isinstance(e, hammer.RedisError) for e in (out[1], out[4])), out
    assert "WRONGTYPE" in out[1].message and "request 1" in out[1].message
    rest = [out[0], out[2], out[3], out[5]]
    counts = [r if isinstance(r, int) else r.count for r in rest]
    assert counts == good, out


def test_hit_many_one_id_in_one_pipeline_is_sequential(h, uid):
    lim = hammer.Limit.token_bucket(10, 60_000)
    ds = h.hit_many([(uid, lim, 1, T)] * 15)
    assert [d.allowed for d in ds] == [True] * 10 + [False] * 5
    assert [d.remaining for d in ds[:10]] == list(range(9, -1, -1))


def test_hit_many_forms_of_a_request(h, uid):
    lim = hammer.Limit.gcra(3, 60_000)
    ds = h.hit_many([(uid, lim), [uid, lim, 1], (uid, (hammer.GCRA, 3, 60_000), 1, None), (uid, lim, 1, T)])
    assert all(isinstance(d, hammer.Decision) for d in ds), ds
    assert [d.allowed for d in ds[:3]] == [True, True, True], "cost defaults to 1, now_ms None is the clock"
    assert ds[2].remaining == 0
    assert h.hit_many([]) == [] and h.hit_many(iter(())) == []
    assert h.hit_many((r for r in [(uid + ":g", lim, 2, T)]))[0].remaining == 1, "any iterable"


def test_hit_many_errors_per_request(h, uid):
    lim = hammer.Limit.sliding_window(2, 1000)
    reqs = [
        (uid, lim, 1, T),                  # 0 ok
        (uid, (7, 2, 1000), 1, T),         # 1 unknown algorithm (refused in Python, when the Limit is made)
        (uid, lim, -1, T),                 # 2 negative cost (the library)
        (uid, lim, 1, T),                  # 3 ok
        (42, lim, 1, T),                   # 4 bad id (refused in Python)
        (uid, lim, 1, -5),                 # 5 negative time (refused in Python: -1 would mean "the clock")
        (uid, (2, 5, 0), 1, T),            # 6 period 0 (refused in Python, when the Limit is made)
        (uid,),                            # 7 malformed
        "not a tuple",                     # 8 malformed
        (uid + "\0", lim, 1, T),           # 9 NUL in the id
        (uid, lim, 1, T),                  # 10 denied: a decision, not an error
        (uid, lim, 1.5, T),                # 11 float cost
        (uid, lim, 1, 2**47 + 1),          # 12 time out of range (the library)
        (uid, lim, 1, 0),                  # 13 time 0 (refused in Python: 0 would mean "the clock" in a batch)
    ]
    got = h.hit_many(reqs)
    assert len(got) == len(reqs)
    errors = {i for i, r in enumerate(got) if isinstance(r, hammer.HammerError)}
    assert errors == {1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13}
    for i in errors:
        e = got[i]
        assert isinstance(e, hammer.InvalidError) and e.status == hammer.ERR_INVALID
        assert e.message.startswith(f"hit_many: request {i}: "), e.message
    assert "cost" in got[2].message, "the first failure the library saw carries its detail"
    assert "algorithm" in got[1].message and "period_ms" in got[6].message
    assert "id" in got[4].message and "now_ms" in got[5].message and "NUL" in got[9].message
    assert "now_ms" in got[13].message
    assert "cost" in got[11].message
    assert [got[i].allowed for i in (0, 3, 10)] == [True, True, False], "the other requests were decided"
    assert got[10].retry_after_ms > 0
    assert not h.peek(uid, lim, now_ms=T).allowed, "exactly the two good hits were taken"


def test_batches_on_a_closed_handle_raise(redis_server):
    h = hammer.Hammer(redis_server.url())
    h.close()
    for call in (lambda: h.hit_many([("x", hammer.Limit.gcra(1, 1000), 1)]), lambda: h.hit_many([]),
                 lambda: h.count_hits([("x", 1, 1)]), lambda: h.check_rates([("x", 1000, 1)]), h.stats):
        with pytest.raises(hammer.InvalidError) as e:
            call()
        assert "closed" in e.value.message


def test_hit_many_while_down_reports_each_request(own_redis, uid):
    s = own_redis()
    lim = hammer.Limit.fixed_window(5, 1000)
    with hammer.Hammer(s.url()) as h:
        assert h.hit(uid, lim).allowed
        s.stop()
        got = h.hit_many([(uid, lim, 1), (uid, (9, 1, 1), 1), (uid, lim, 1, T)])
        assert isinstance(got[0], hammer.ConnectError) and isinstance(got[2], hammer.ConnectError)
        assert isinstance(got[1], hammer.InvalidError), "a refused request keeps its own status"
        assert all(e.message.startswith(f"hit_many: request {i}: ") for i, e in enumerate(got))
        counts = h.count_hits([(uid, 1, T), (uid, 2, T, 1)])
        assert all(isinstance(c, hammer.ConnectError) for c in counts)
        assert all(c.message.startswith(f"count_hits: request {i}: ") for i, c in enumerate(counts))


def test_count_hits_while_down_keeps_invalid_requests_invalid(own_redis, uid):
    s = own_redis()
    with hammer.Hammer(s.url()) as h:
        assert h.count_hit(uid, 1, T) == 1
        s.stop()
        counts = h.count_hits([(uid, 1, T), (uid, 2, T, -1)])
        assert isinstance(counts[0], hammer.ConnectError)
        assert isinstance(counts[1], hammer.InvalidError), counts[1]


# ---------------------------------------------------------------------------------------------------------------------
# count_hits and check_rates
# ---------------------------------------------------------------------------------------------------------------------
def test_count_hits_equals_single_calls(h, uid):
    rnd = random.Random(7)
    steps = [(f"id{rnd.randrange(3)}", rnd.randrange(4), T + k, rnd.choice((0, 1, 2, 5))) for k in range(200)]
    single = [h.count_hit(f"{uid}:s:{i}", b, now, inc) for i, b, now, inc in steps]
    batch = h.count_hits([(f"{uid}:b:{i}", b, now, inc) for i, b, now, inc in steps])
    assert batch == single
    for i in ("id0", "id1", "id2"):
        for b in range(4):
            s_ = h.get_bucket(f"{uid}:s:{i}", b)
            b_ = h.get_bucket(f"{uid}:b:{i}", b)
            assert (s_ is None) == (b_ is None) and (s_ is None or s_ == b_), (i, b)
    assert h.count_hits([(uid, 9, T)]) == [1], "increment defaults to 1"


def test_count_hits_errors_per_request(h, uid):
    got = h.count_hits([(uid, 1, T, 2), (uid, 1, T, -1), (uid, "1", T), (uid, 1), (uid, 1, T, 3)])
    assert got[0] == 2 and got[4] == 5
    assert all(isinstance(got[i], hammer.InvalidError) for i in (1, 2, 3))
    assert "increment" in got[1].message and "bucket" in got[2].message
    assert h.get_bucket(uid, 1).count == 5


def test_check_rates_equal_single_calls(h, uid):
    reqs = [("a", 3, 1), ("b", 2, 1), ("a", 3, 2), ("a", 3, 1), ("b", 2, 0), ("b", 2, 5)]
    single = [h.check_rate(f"{uid}:s:{i}", BIG_SCALE, lim, inc) for i, lim, inc in reqs]
    batch = h.check_rates([(f"{uid}:b:{i}", BIG_SCALE, lim, inc) for i, lim, inc in reqs])
    key = [(d.allowed, d.count, d.limit, d.remaining) for d in single]
    assert [(d.allowed, d.count, d.limit, d.remaining) for d in batch] == key
    assert [k[0] for k in key] == [True, True, True, False, True, False] and [k[1] for k in key] == [1, 1, 3, 4, 1, 6]
    assert batch[3].retry_after_ms > 0, "until the window ends"
    assert batch[5].retry_after_ms == -1 and single[5].retry_after_ms == -1, "an increment above the limit: never"
    assert h.inspect_bucket(f"{uid}:b:a", BIG_SCALE, 3).count == 4


def test_check_rates_errors_per_request(h, uid):
    got = h.check_rates([(uid, 1000, 5), (uid, 0, 5), (uid, 1000, 0), (uid, 1000, 5, -2), (uid, 60_000, 5, 2)])
    assert got[0].allowed and got[4].allowed and got[4].count == 2
    assert [type(got[i]) for i in (1, 2, 3)] == [hammer.InvalidError] * 3
    assert "scale_ms" in got[1].message and all(got[i].message.startswith(f"check_rates: request {i}: ")
                                                 for i in (1, 2, 3))


# ---------------------------------------------------------------------------------------------------------------------
# stats
# ---------------------------------------------------------------------------------------------------------------------
def test_stats_counts(redis_server, open_hammer, uid):
    h = open_hammer(redis_server.url(pool_size=4))
    s0 = h.stats()
    assert isinstance(s0, hammer.Stats)
    assert (s0.calls, s0.allowed, s0.denied, s0.degraded) == (0, 0, 0, 0)
    assert s0.errors == {name: 0 for name in hammer.STATUS_NAMES.values()}
    assert s0.reconnects >= 1 and 1 <= s0.connections <= 4, "hammer_open connects once"
    lim = hammer.Limit.token_bucket(3, 60_000)
    decisions = [h.hit(uid, lim, now_ms=T) for _ in range(5)]          # 3 allowed, 2 denied
    decisions += [h.peek(uid, lim, now_ms=T)]                          # 1 denied
    decisions += [h.check_rate_at(uid, 1000, 1, T + k) for k in range(3)]   # 1 allowed, 2 denied
    decisions += h.hit_many([(uid + ":m", lim, 1, T)] * 4)             # 3 allowed, 1 denied (4 calls)
    decisions += h.check_rates([(uid + ":c", BIG_SCALE, 2)] * 3)        # 2 allowed, 1 denied (3 calls)
    h.count_hit(uid, 1, T)
    h.count_hits([(uid, 1, T)] * 5)                                     # 5 calls, no decisions
    h.get_bucket(uid, 1)
    h.inspect_bucket(uid, 1000, 5)
    h.delete_buckets(uid + ":none")
    allowed = sum(d.allowed for d in decisions)
    s1 = h.stats()
    assert (s1.allowed, s1.denied) == (allowed, len(decisions) - allowed) == (9, 7)
    assert s1.calls == len(decisions) + 1 + 5 + 3, "each request of a batch counts"
    assert s1.errors == s0.errors and s1.degraded == 0
    assert 0 < s1.p50_us <= s1.p99_us <= s1.p999_us
    assert 1 <= s1.connections <= 4
    assert h.stats().calls == s1.calls, "stats() is not a call"


def test_stats_count_failures(own_redis, uid):
    s = own_redis()
    with hammer.Hammer(s.url()) as h:
        assert h.hit(uid, hammer.Limit.gcra(5, 1000)).allowed
        s.stop()
        failures = 0
        for call in (lambda: h.hit(uid, hammer.Limit.gcra(5, 1000)), lambda: h.check_rate(uid, 1000, 5),
                     lambda: h.count_hit(uid, 1, T), lambda: h.get_bucket(uid, 1)):
            with pytest.raises(hammer.ConnectError):
                call()
            failures += 1
        st = h.stats()
        assert st.errors["CONNECT"] == failures and sum(st.errors.values()) == failures
        assert st.calls == 1 + failures and st.allowed == 1 and st.connections == 0
        s.start()
        for _ in range(250):  # the back-off is capped at 1 s
            try:
                h.count_hit(uid, 1, T)
                break
            except hammer.ConnectError:
                failures += 1
                time.sleep(0.02)
        st = h.stats()
        assert st.errors["CONNECT"] == failures and st.reconnects >= 2 and st.connections >= 1


def test_stats_count_each_failed_request_of_a_batch(h, uid):
    s0 = h.stats()
    # A negative cost: refused by the library (a Limit out of range never gets there: Python refuses it when made).
    got = h.hit_many([(uid, hammer.Limit.gcra(1, 1000), -1, T)] * 4 + [(uid, hammer.Limit.gcra(1, 1000), 1, T)])
    assert sum(isinstance(g, hammer.InvalidError) for g in got) == 4
    s1 = h.stats()
    assert s1.calls - s0.calls == 5 and s1.allowed - s0.allowed == 1
    assert s1.errors["INVALID"] - s0.errors["INVALID"] == 4, "each refused request of a batch counts"
    with pytest.raises(hammer.InvalidError):
        h.hit(uid, hammer.Limit.gcra(1, 1000), cost=-1, now_ms=T)   # refused by the library: a call, an error
    with pytest.raises(hammer.InvalidError):
        h.hit(uid, (2, 1, 1000), cost=1.5)    # refused in Python: never reaches the library
    s2 = h.stats()
    assert (s2.calls - s1.calls, s2.errors["INVALID"] - s1.errors["INVALID"]) == (1, 1)


def test_batches_write_the_layout_single_calls_write(h, uid, redis_server, redis_cmd):
    """A bucket made by a batch has created, updated, its TTL and its index entry, as a single call's: so
    delete_buckets finds it, and Elixir reads it."""
    fw = hammer.Limit.fixed_window(10, 60_000)
    now = T + 123
    w = now // 60_000
    assert h.count_hits([(f"{uid}:c", 5, now, 2), (f"{uid}:c", 6, now, 1)]) == [2, 1]
    assert [d.allowed for d in h.hit_many([(f"{uid}:f", fw, 3, now)])] == [True]
    p = "Hammer:Redis:"
    for key, count, ttl_max in ((f"{p}{uid}:c:5", 2, 61_000), (f"{p}{uid}:c:6", 1, 61_000),
                                (f"{p}{uid}:f:{w}", 3, (w + 1) * 60_000 - now + 1000)):
        got = redis_cmd(redis_server, "HGETALL", key)
        fields = dict(zip(got[::2], got[1::2]))
        assert fields == {b"count": str(count).encode(), b"created": str(now).encode(),
                          b"updated": str(now).encode()}, key
        assert 0 < redis_cmd(redis_server, "PTTL", key) <= ttl_max, key
    assert redis_cmd(redis_server, "ZRANGE", f"{p}{uid}:c:index", 0, -1) == [b"5", b"6"]
    assert redis_cmd(redis_server, "ZRANGE", f"{p}{uid}:f:index", 0, -1) == [str(w).encode()]
    assert h.delete_buckets(f"{uid}:c") == 2
    assert h.delete_buckets(f"{uid}:f") == 1


def test_a_batch_longer_than_timeout_ms_completes_chunk_by_chunk(own_redis):
    # Issue 17: one deadline covered a whole batch, every chunk written before any was read: a hit_many of 200k
    # requests returned TIMEOUT for all although 129,280 of them were applied. Each chunk now gets timeout_ms from
    # the previous reply, and chunks are written as replies come back, so a batch that takes Redis longer than
    # timeout_ms completes as long as Redis keeps answering.
    s = own_redis()
    n = 200_000
    with hammer.Hammer(s.url(timeout_ms=1000, pool_size=1)) as h:
        h.count_hit("big:load", 1, 1000)   # the script loaded (a fresh server answers the first chunks NOSCRIPT)
        t = time.monotonic()
        counts = h.count_hits([(f"big:{i}", 1, 1000, 1) for i in range(n)])
        took = time.monotonic() - t
        failed = [c for c in counts if not isinstance(c, int)]
        assert not failed, f"{len(failed)} of {n} failed, e.g. {failed[:2]} (the batch took {took:.2f} s)"
        assert counts == [1] * n
        assert took > 1.0, "the batch took longer than timeout_ms, as it must to show anything"
        assert s.cli("DBSIZE") == 2 * n + 2   # each id's bucket and index
        assert h.count_hit("big:7", 1, 1000) == 2   # the connection is in step after it


def test_a_batch_cut_by_a_frozen_redis_answers_what_was_answered_and_times_out_the_rest(own_redis):
    # A request whose reply came is its answer; the others are TIMEOUT, and only the chunks in flight when Redis
    # froze (at most Pipeline.window of 128 requests) may have run: the later chunks were never sent.
    s = own_redis()
    n, window = 200_000, 8 * 128
    with hammer.Hammer(s.url(timeout_ms=300, pool_size=1)) as h:
        h.count_hit("cut:load", 1, 1000)
        out, reqs = [], [(f"cut:{i}", 1, 1000, 1) for i in range(n)]
        t = threading.Thread(target=lambda: out.append(h.count_hits(reqs)))
        t.start()
        deadline = time.monotonic() + 60
        while s.cli("DBSIZE") < 2 * 5000 and time.monotonic() < deadline:   # the batch is under way
            time.sleep(0.005)
        s.pause()
        time.sleep(1.0)
        s.resume()
        t.join()
    counts = out[0]
    ok = next((i for i, c in enumerate(counts) if not isinstance(c, int)), n)
    assert 0 < ok < n, f"the freeze cut the batch ({ok} of {n} answered)"
    assert counts[:ok] == [1] * ok
    assert all(isinstance(c, hammer.HammerTimeout) for c in counts[ok:]), \
        {type(c).__name__ for c in counts[ok:]}
    applied = (s.cli("DBSIZE") - 2) // 2   # buckets + indexes of the batch's ids
    assert ok <= applied <= ok + window, (ok, applied)
