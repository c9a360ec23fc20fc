"""memory:// through the Python binding: the tests of test_core.py and test_limits.py that need only a handle and
an id run again on a memory:// handle (imported here, with the `h` below); a random mix of calls answers as a Redis
handle does, step by step; fork() keeps a copy; the memory:// quick start of docs/python.md runs with no server."""
import os
import random
import re

import pytest

import hammer
from test_core import (  # noqa: F401  (collected again here, on memory://)
    test_insert, test_insert_with_custom_increment, test_update_keeps_created, test_get_does_not_change_the_bucket,
    test_get_missing_is_none, test_buckets_are_separate, test_delete_one, test_delete_none,
    test_delete_spares_lookalikes, test_count_up_to_int64_max_then_overflow, test_bad_arguments_are_invalid)
from test_limits import (  # noqa: F401
    test_burst_then_deny_then_retry_after, test_burst_is_the_capacity_of_the_buckets,
    test_refill_is_continuous_for_the_buckets, test_peek_has_no_side_effect, test_cost_zero_and_above_capacity,
    test_limit_as_a_tuple, test_bad_limit_is_invalid, test_bad_cost_is_invalid, test_bad_now_is_invalid,
    test_bad_id_is_invalid, test_bad_check_rate_is_invalid, test_check_rate_counts_even_when_denied,
    test_check_rate_and_inspect_bucket_on_the_clock, test_delete_buckets_resets, test_limiter_decorator,
    test_limiter_key_function, test_limiter_guard_and_check, test_limiter_on_a_coroutine, test_limiter_bad_use,
    test_limiter_decorators_keep_the_function, test_several_limits_python_api, test_several_limits_of_one_algorithm,
    algo)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMORY = "memory://?expiry_ms=60000"


@pytest.fixture
def h(open_hammer):
    return open_hammer(MEMORY)


def limits(rng):
    make = [hammer.Limit.fixed_window, hammer.Limit.sliding_window, hammer.Limit.token_bucket,
            hammer.Limit.leaky_bucket, hammer.Limit.gcra, hammer.Limit.sliding_counter][rng.randrange(6)]
    return make(rng.randint(1, 6), rng.choice([100, 1000, 60_000]))


def call(h, op, uid, rng, now):
    """One call's answer (or its error's status) as a comparable value."""
    try:
        if op == 0:
            return h.count_hit(uid, rng.randint(0, 2), now, rng.randint(0, 3))
        if op == 1:
            return h.get_bucket(uid, rng.randint(0, 2))
        if op == 2:
            return h.check_rate_at(uid, rng.choice([1000, 60_000]), rng.randint(1, 6), now, rng.randint(0, 3))
        if op == 3:
            return h.delete_buckets(uid)
        if op == 4:
            reqs = [(uid, limits(rng), rng.randint(0, 2), now) for _ in range(3)]
            return h.hit_many(reqs)
        if op == 5:
            return h.count_hits([(uid, rng.randint(0, 2), now, rng.randint(0, 2)) for _ in range(3)])
        if op == 6:
            return h.peek(uid, limits(rng), now_ms=now)
        if op == 8:   # several limits at once (hammer_hit_all_at); limits of one algorithm: states of their own
            return h.hit(uid, [limits(rng) for _ in range(rng.randint(1, 3))], rng.randint(0, 2), now_ms=now)
        return h.hit(uid, limits(rng), rng.randint(0, 3), now_ms=now)
    except hammer.HammerError as e:
        return ("error", e.status)


def test_every_call_answers_as_redis_does(redis_server, open_hammer, uid):
    redis, memory = open_hammer(redis_server.url()), open_hammer(MEMORY)
    for seed in range(12):
        pick = random.Random(seed)
        now = 1_700_000_000_000 + pick.randrange(10**6)
        for step in range(150):
            now += pick.randint(0, 300)
            op, who = pick.randrange(9), f"{uid}:{seed}:{pick.randrange(3)}"
            state = pick.random()
            want = call(redis, op, who, random.Random(state), now)
            got = call(memory, op, who, random.Random(state), now)
            assert got == want, (seed, step, op, who, now)


def several(rng):
    """Two to five limits, often two or more of one algorithm (each then a state of its own)."""
    pool = [hammer.Limit.sliding_window(3, 1000), hammer.Limit.sliding_window(5, 10_000),
            hammer.Limit.token_bucket(2, 1000, burst=4), hammer.Limit.token_bucket(6, 60_000),
            hammer.Limit.leaky_bucket(2, 1000), hammer.Limit.leaky_bucket(4, 3000), hammer.Limit.gcra(2, 1000),
            hammer.Limit.gcra(3, 5000), hammer.Limit.sliding_counter(3, 1000), hammer.Limit.sliding_counter(5, 1000),
            hammer.Limit.fixed_window(4, 1000), hammer.Limit.fixed_window(9, 60_000),
            hammer.Limit.fixed_window(6, 60_000)]
    return rng.sample(pool, rng.randint(2, 5))


def several_call(h, op, uid, rng, now):
    try:
        if op == 0:
            return h.delete_buckets(uid)
        if op == 1:
            return h.peek(uid, several(rng), now_ms=now)
        if op == 2:
            return h.hit_many([(uid, several(rng), rng.randint(0, 2), now) for _ in range(3)])
        if op == 3:
            return h.hit(uid, rng.choice(several(rng)), rng.randint(0, 2), now_ms=now)
        return h.hit(uid, several(rng), rng.randint(0, 2), now_ms=now)
    except hammer.HammerError as e:
        return ("error", e.status)


def test_several_limits_answer_as_redis_does(redis_server, open_hammer, uid):
    """hit / peek / hit_many of several limits (limits of one algorithm with states of their own among them), lone
    hits, and delete_buckets (the count of keys Redis deleted) on memory:// answer as on Redis, step by step."""
    redis, memory = open_hammer(redis_server.url()), open_hammer(MEMORY)
    seen = {True: 0, False: 0, "deleted": 0}
    for seed in range(8):
        pick = random.Random(seed)
        now = 1_700_000_000_000 + pick.randrange(10**6)
        for step in range(120):
            now += pick.choice([0, pick.randrange(200), pick.randrange(2000)])
            op, who = pick.choice([0] + [1, 2, 3] * 2 + [4] * 8), f"{uid}:{seed}:{pick.randrange(2)}"
            state = pick.random()
            want = several_call(redis, op, who, random.Random(state), now)
            got = several_call(memory, op, who, random.Random(state), now)
            assert got == want, (seed, step, op, who, now)
            if op == 4 and isinstance(got, hammer.Decision):
                seen[got.allowed] += 1
            if op == 0 and got > 0:
                seen["deleted"] += 1
    assert seen[True] > 50 and seen[False] > 50 and seen["deleted"] > 5, seen


def test_statistics_and_no_connection(h, uid):
    lim = hammer.Limit.fixed_window(1, 60_000)
    assert h.hit(uid, lim).allowed and not h.hit(uid, lim).allowed
    s = h.stats()
    assert (s.calls, s.allowed, s.denied, s.connections) == (2, 1, 1, 0)


def test_only_the_options_that_mean_something(open_hammer):
    for bad in ["memory://?expiry_ms=0", "memory://?expiry_ms=1&prefix=x", "memory://?expiry_ms=1&fallback=local",
                "memory://?expiry_ms=1&clock=redis", "memory://host/?expiry_ms=1"]:
        with pytest.raises(hammer.InvalidError):
            hammer.Hammer(bad)
    assert open_hammer("memory://?expiry_ms=1&clock=local").count_hit("x", 1, 1) == 1
    # Without expiry_ms (as for Redis) every call but count_hit works; count_hit names the option.
    bare = open_hammer("memory://")
    assert bare.hit("x", hammer.Limit.gcra(1, 1000)).allowed
    with pytest.raises(hammer.InvalidError, match="expiry_ms"):
        bare.count_hit("x", 1, 1)


def test_handles_share_nothing(open_hammer, uid):
    a, b = open_hammer(MEMORY), open_hammer(MEMORY)
    assert a.count_hit(uid, 1, 1) == 1
    assert b.get_bucket(uid, 1) is None


def test_fork_child_keeps_a_copy_and_counts_its_own(h, uid):
    assert h.count_hit(uid, 1, 1, 5) == 5
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            got = [h.count_hit(uid, 1, 2) for _ in range(3)] + [h.count_hit(f"{uid}:child", 1, 2)]
            os.write(w, " ".join(map(str, got)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = os.read(r, 1000).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert out == "6 7 8 1", "the child sees the parent's 5 and counts on from it"
    assert h.count_hit(uid, 1, 3) == 6, "the parent does not see the child's hits"
    assert h.get_bucket(f"{uid}:child", 1) is None


def test_readme_quick_start_runs_with_no_server():
    text = open(os.path.join(ROOT, "docs", "python.md")).read()
    blocks = [b for b in re.findall(r"```python[^\n]*\n(.*?)```", text, re.S) if "memory://" in b]
    assert blocks, "docs/python.md has no memory:// quick start"
    exec(compile(blocks[0], "docs/python.md", "exec"), {})


def test_fork_while_threads_hold_the_locks(h, uid):
    """Children forked while other threads are inside the store: each child's calls complete (a shard whose lock
    a vanished thread held starts empty, never a deadlock)."""
    import threading
    stop = threading.Event()

    def busy(k):
        i = 0
        while not stop.is_set():
            h.count_hit(f"{uid}:busy:{k}:{i % 500}", 1, 1)
            i += 1

    threads = [threading.Thread(target=busy, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for i in range(2000):   # every shard, many times
                        h.count_hit(f"{uid}:child:{i}", 1, 1)
                    code = 0 if h.count_hit(f"{uid}:child:0", 1, 1) == 2 else 2
                finally:
                    os._exit(code)
            for _ in range(200):   # 10 s
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                stop.wait(0.05)
            else:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("a child forked while threads held the store's locks did not finish")
            assert os.WEXITSTATUS(status) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
