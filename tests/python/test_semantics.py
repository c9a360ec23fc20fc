"""Semantics of issue 9 item 6, against a real redis-server through the Python binding: count_hit's TTL restarts
at every hit (as Hammer's Elixir Redis backend's EXPIRE in each count_hit), check_rate's is the window's end set once;
the sliding window's reset_after_ms is the wait until it holds no hits; the windows take the whole documented
ranges (no capacity x period bound), the buckets keep theirs; what delete_buckets deletes by default."""
import time

import pytest

import hammer

T = 1_700_000_000_000


@pytest.fixture
def h(redis_server):
    with hammer.Hammer(redis_server.url(expiry_ms=1500, prefix="sem:")) as handle:
        yield handle


def pttl(server, key):
    return int(server.cli("PTTL", key))


def test_count_hit_restarts_the_ttl_at_every_hit(h, redis_server, uid):
    """expiry_ms 1500: a bucket lives 1.5 s to 2.5 s after its latest hit (its TTL is set to expiry_ms + 1 s, and set
    again once it has fallen below expiry_ms: Hammer's Elixir backend sets whole seconds, expiry_ms / 1000 + 1)."""
    assert h.count_hit(uid, 1, T) == 1
    assert 1500 < pttl(redis_server, f"sem:{uid}:1") <= 2500
    time.sleep(1.2)
    left = pttl(redis_server, f"sem:{uid}:1")
    assert 0 < left < 1500, left
    assert h.count_hit(uid, 1, T + 1) == 2
    assert pttl(redis_server, f"sem:{uid}:1") > 2000, "the second hit did not restart the TTL"
    assert pttl(redis_server, f"sem:{uid}:index") > 2000, "the index must outlive its buckets"
    # Hit every 0.5 s for 3 s (longer than expiry_ms): the bucket lives on, counting every hit, and its TTL never
    # falls below expiry_ms at a hit.
    for i in range(6):
        time.sleep(0.5)
        assert h.count_hit(uid, 1, T + 2 + i) == 3 + i
        assert pttl(redis_server, f"sem:{uid}:1") > 1400
    # Left alone, it lives at least expiry_ms after its latest hit, at most a second more, and the index with it.
    time.sleep(1.3)
    assert redis_server.cli("EXISTS", f"sem:{uid}:1") == 1
    time.sleep(1.4)
    assert redis_server.cli("EXISTS", f"sem:{uid}:1", f"sem:{uid}:index") == 0


def test_count_hits_batch_restarts_the_ttl_too(h, redis_server, uid):
    assert h.count_hits([(uid, 4, T)]) == [1]
    time.sleep(1.2)
    assert pttl(redis_server, f"sem:{uid}:4") < 1500
    assert h.count_hits([(uid, 4, T + 1)]) == [2]
    assert pttl(redis_server, f"sem:{uid}:4") > 2000


def test_check_rate_keeps_the_window_end_ttl(h, redis_server, uid):
    scale = 100_000
    d = h.check_rate_at(uid, scale, 10, T + 40_000)
    assert d.allowed and d.count == 1
    key = f"sem:{uid}:{T // scale}"
    first = pttl(redis_server, key)
    assert 60_000 < first <= 61_000, first          # the window's end (60 s away) and a grace second
    time.sleep(0.3)
    h.check_rate_at(uid, scale, 10, T + 40_000)
    assert pttl(redis_server, key) <= first - 250, "a later hit moved the window's TTL"


def test_sliding_window_reset_is_the_wait_until_the_window_is_empty(h, uid):
    lim = hammer.Limit.sliding_window(1, 1000)
    d = h.hit(uid, lim, 1, 5000)
    assert d.allowed and d.reset_after_ms == 1000
    d = h.hit(uid, lim, 1, 5999)
    assert not d.allowed
    assert (d.reset_after_ms, d.retry_after_ms) == (1, 1), "the window holds no hits at 6000"
    assert h.hit(uid, lim, 1, 6000).allowed
    # Several hits: reset counts from the newest one.
    lim = hammer.Limit.sliding_window(3, 1000)
    h.hit(uid + "b", lim, 1, 10_000)
    h.hit(uid + "b", lim, 1, 10_300)
    assert h.peek(uid + "b", lim, 10_500).reset_after_ms == 800
    assert h.peek(uid + "b", lim, 11_200).reset_after_ms == 100
    assert h.peek(uid + "b", lim, 11_300).reset_after_ms == 0


def test_windows_take_the_whole_documented_ranges(h, uid):
    day, ten_years = 86_400_000, 315_360_000_000
    for lim in (hammer.Limit.fixed_window(10**9, day), hammer.Limit.sliding_window(10**9, day),
                hammer.Limit.fixed_window(100_000, ten_years), hammer.Limit.sliding_window(100_000, ten_years),
                hammer.Limit.fixed_window(10**9, ten_years), hammer.Limit.sliding_window(10**9, ten_years)):
        d = h.hit(uid + str(lim), lim, 10**9 if lim.limit == 10**9 else 1, T)
        assert d.allowed and d.count == d.limit - d.remaining, (lim, d)
        assert not h.hit(uid + str(lim), lim, 1, T + 1).allowed or lim.limit == 100_000
    d = h.check_rate_at(uid + "cr", day, 10**9, T, increment=10**9)
    assert d.allowed and d.remaining == 0
    assert not h.check_rate_at(uid + "cr", day, 10**9, T + 1).allowed
    # The buckets and GCRA keep their bound (units of capacity x period must stay exact in Lua's doubles).
    for make in (hammer.Limit.token_bucket, hammer.Limit.leaky_bucket, hammer.Limit.gcra):
        with pytest.raises(hammer.InvalidError, match="2\\^52"):
            h.hit(uid, make(10**9, day), 1, T)
        assert h.hit(uid, make(10**6, day), 1, T).allowed
        assert h.hit(uid, make(10**4, ten_years), 1, T).allowed


def test_delete_buckets_default_takes_what_the_index_names(h, redis_server, uid):
    def elixir(bucket):
        """A bucket as Hammer's Elixir backend writes it: a hash and a TTL, no index entry."""
        key = f"sem:{uid}:{bucket}"
        redis_server.cli("HSET", key, "count", "1", "created", "5", "updated", "5")
        redis_server.cli("PEXPIRE", key, "60000")
        return key

    counted, checked, untouched = elixir(1), elixir(T // 100_000), elixir(3)
    h.count_hit(uid, 1, T)                          # count_hit indexes the bucket it counts on
    h.check_rate_at(uid, 100_000, 10, T)            # check_rate on an existing bucket does not
    h.count_hit(uid, 9, T)                          # a bucket this library creates
    assert h.delete_buckets(uid) == 2
    assert redis_server.cli("EXISTS", counted, f"sem:{uid}:9", f"sem:{uid}:index") == 0
    assert redis_server.cli("EXISTS", checked, untouched) == 2
    with hammer.Hammer(redis_server.url(expiry_ms=1500, prefix="sem:", scan_delete="true")) as scan:
        assert scan.delete_buckets(uid) == 2
    assert redis_server.cli("EXISTS", checked, untouched) == 0


def test_delete_buckets_default_and_buckets_elixir_keeps_hitting(redis_server, uid):
    """What README and hammer.h say delete_buckets deletes by default, with TTLs as Hammer's Elixir backend sets them
    (expiry_ms / 1000 + 1 s at each hit: 61 s for expiry_ms 60000): a count_hit within a second of Elixir's latest
    hit finds the TTL in range and leaves it, so the bucket stays out of the index and out of the default delete;
    one that finds it below expiry_ms (over a second later) sets it again and indexes the bucket."""
    def elixir(bucket, ttl_ms):
        key = f"sem:{uid}:{bucket}"
        redis_server.cli("HSET", key, "count", "1", "created", "5", "updated", "5")
        redis_server.cli("PEXPIRE", key, str(ttl_ms))
        return key

    fresh, older = elixir(1, 61_000), elixir(2, 59_000)    # just hit by Elixir / 2 s later
    with hammer.Hammer(redis_server.url(expiry_ms=60_000, prefix="sem:")) as h60:
        h60.count_hit(uid, 1, T)
        h60.count_hit(uid, 2, T)
        assert h60.delete_buckets(uid) == 1
    assert redis_server.cli("EXISTS", fresh, older) == 1 and redis_server.cli("EXISTS", fresh) == 1
    with hammer.Hammer(redis_server.url(expiry_ms=60_000, prefix="sem:", scan_delete="true")) as scan:
        assert scan.delete_buckets(uid) == 1
    assert redis_server.cli("EXISTS", fresh) == 0


def test_sliding_window_reads_meta_of_either_format(h, redis_server, uid):
    """The meta names the newest hit and the log's running sum of costs ("<total> <cum> <newest>", cum padded to 16
    digits, members "<cum>:<cost>"); state of older versions ("<total> <seq>", then "<total> <seq> <newest>",
    members "<seq>:<cost>") is read too, and converted by the first allowed hit."""
    lim = hammer.Limit.sliding_window(1, 1000)
    redis_server.cli("ZADD", f"sem:{uid}:sw", "5000", "1:1")
    redis_server.cli("SET", f"sem:{uid}:swm", "1 1", "PX", "60000")
    d = h.hit(uid, lim, 1, 5999)
    assert not d.allowed and d.reset_after_ms == 1
    assert h.hit(uid, lim, 1, 6000).allowed
    assert redis_server.cli("GET", f"sem:{uid}:swm") == b"1 0000000000000001 6000"
    assert redis_server.cli("ZRANGE", f"sem:{uid}:sw", "0", "-1") == [b"0000000000000001:1"]
    d = h.hit(uid, lim, 1, 6500)
    assert not d.allowed and (d.reset_after_ms, d.retry_after_ms) == (500, 500)
    # Three fields, a log of two costs: read exactly, converted with its order and sum kept.
    lim = hammer.Limit.sliding_window(5, 1000)
    redis_server.cli("ZADD", f"sem:{uid}:b:sw", "5000", "1:2", "5400", "2:1")
    redis_server.cli("SET", f"sem:{uid}:b:swm", "3 2 5400", "PX", "60000")
    d = h.peek(uid + ":b", lim, 5500)
    assert d.allowed and (d.count, d.remaining, d.reset_after_ms) == (3, 2, 900)
    d = h.hit(uid + ":b", lim, 3, 5500)
    assert not d.allowed and d.retry_after_ms == 500
    assert h.hit(uid + ":b", lim, 2, 5500).allowed
    assert redis_server.cli("GET", f"sem:{uid}:b:swm") == b"5 0000000000000005 5500"
    assert redis_server.cli("ZRANGE", f"sem:{uid}:b:sw", "0", "-1") == \
        [b"0000000000000002:2", b"0000000000000003:1", b"0000000000000005:2"]


def test_delete_buckets_ignores_index_members_that_are_not_bucket_numbers(h, redis_server, uid):
    """Another client may write the index: a member that is not a bucket number could name another id's key
    (member "x:1" of id I is the key of bucket 1 of id I:x). Such members are left alone, and the call succeeds."""
    h.count_hit(uid, 5, T)
    other = f"sem:{uid}:x:1"
    h.count_hit(uid + ":x", 1, T)
    redis_server.cli("ZADD", f"sem:{uid}:index", "99999999999999", "x:1")
    assert h.delete_buckets(uid) == 1
    assert redis_server.cli("EXISTS", other) == 1
    assert redis_server.cli("EXISTS", f"sem:{uid}:5", f"sem:{uid}:index") == 0
