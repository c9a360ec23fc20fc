"""The core API (issue 2) through the Python binding, against real redis-server processes: the seed's own cases,
exact delete, the Redis layout an Elixir client reads, TTL, prefix, db, unix socket, AUTH and ACL, IPv6, threads,
processes, restart recovery, timeouts, unreachable servers."""
import socket
import threading
import time
import urllib.parse
import uuid

import pytest

import hammer
from redis_server import free_port
from multiproc import run_in_processes

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
DEFAULT_PREFIX = b"Hammer:Redis:"


def fresh_prefix():
    """A prefix unique to one test, free of glob characters, so KEYS <prefix>* sees that test's keys only."""
    return f"T{uuid.uuid4().hex}:"


def q(text):
    return urllib.parse.quote(text, safe="")


def b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


def hash_of(reply):
    return dict(zip(reply[0::2], reply[1::2]))


def keys(cmd, server, prefix, **kw):
    """The keys starting with `prefix`; cmd is the redis_cmd fixture."""
    return set(cmd(server, "KEYS", glob_escape(b(prefix)) + b"*", **kw))


def glob_escape(raw):
    return b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in raw)


def retry(fn, errors, deadline_s=10.0, pause_s=0.05):
    """Calls fn until it returns; `errors` are the exceptions allowed meanwhile. Returns (result, failures)."""
    failures = []
    end = time.monotonic() + deadline_s
    while True:
        try:
            return fn(), failures
        except errors as e:
            failures.append(e)
            if time.monotonic() > end:
                raise AssertionError(f"no recovery within {deadline_s} s; last failures: {failures[-3:]}") from e
            time.sleep(pause_s)


# ---------------------------------------------------------------------------------------------------------------------
# The seed's own cases
# ---------------------------------------------------------------------------------------------------------------------
def test_insert(h, uid):
    assert h.get_bucket(uid, 7) is None
    assert h.count_hit(uid, 7, 1_000) == 1
    assert h.get_bucket(uid, 7) == hammer.Bucket(bucket=7, count=1, created=1_000, updated=1_000)


def test_insert_with_custom_increment(h, uid):
    assert h.count_hit(uid, 3, 1_000, 5) == 5
    assert h.count_hit(uid, 3, 1_001, increment=3) == 8
    assert h.count_hit(uid, 3, 1_002, 0) == 8
    assert h.get_bucket(uid, 3).count == 8


def test_update_keeps_created(h, uid):
    h.count_hit(uid, 1, 1_000)
    assert h.count_hit(uid, 1, 2_500) == 2
    assert h.count_hit(uid, 1, 3_000) == 3
    assert h.get_bucket(uid, 1) == hammer.Bucket(1, 3, 1_000, 3_000)


def test_get_does_not_change_the_bucket(h, uid):
    h.count_hit(uid, 1, 1_000, 4)
    first = h.get_bucket(uid, 1)
    assert [h.get_bucket(uid, 1) for _ in range(3)] == [first] * 3
    assert first == (1, 4, 1_000, 1_000)


def test_get_missing_is_none(h, uid):
    h.count_hit(uid, 1, 1_000)
    assert h.get_bucket(uid, 2) is None
    assert h.get_bucket(uid + ":other", 1) is None


def test_buckets_are_separate(h, uid):
    assert [h.count_hit(uid, n, 10 * n, n) for n in range(1, 5)] == [1, 2, 3, 4]
    assert [h.get_bucket(uid, n) for n in range(1, 5)] == [hammer.Bucket(n, n, 10 * n, 10 * n) for n in range(1, 5)]


def test_delete_one(h, uid):
    h.count_hit(uid, 1, 1_000)
    assert h.delete_buckets(uid) == 1
    assert h.get_bucket(uid, 1) is None
    assert h.count_hit(uid, 1, 2_000) == 1, "a deleted bucket starts again from 0"
    assert h.get_bucket(uid, 1).created == 2_000


def test_delete_none(h, uid):
    assert h.delete_buckets(uid) == 0
    h.count_hit(uid, 1, 1_000)
    assert h.delete_buckets(uid) == 1
    assert h.delete_buckets(uid) == 0


def test_delete_1000_buckets_of_one_id(redis_server, open_hammer, redis_cmd):
    prefix = fresh_prefix()
    h = open_hammer(redis_server.url(prefix=q(prefix)))
    for n in range(1000):
        h.count_hit("many", n, 1_000 + n)
    assert len([k for k in keys(redis_cmd, redis_server, prefix + "many:") if k != b(prefix) + b"many:index"]) == 1000
    assert h.delete_buckets("many") == 1000
    assert keys(redis_cmd, redis_server, prefix) == set()
    assert h.get_bucket("many", 0) is None and h.get_bucket("many", 999) is None


def test_delete_one_id_among_1000_others(redis_server, open_hammer, redis_cmd):
    prefix = fresh_prefix()
    h = open_hammer(redis_server.url(prefix=q(prefix)))
    for n in range(1000):
        h.count_hit(f"other{n}", 1, 1_000)
    h.count_hit("target", 1, 1_000)
    h.count_hit("target", 2, 2_000)
    before = keys(redis_cmd, redis_server, prefix)
    assert h.delete_buckets("target") == 2
    after = keys(redis_cmd, redis_server, prefix)
    assert {k for k in before - after} == {b(prefix) + s for s in (b"target:1", b"target:2", b"target:index")}
    assert after <= before
    assert all(h.get_bucket(f"other{n}", 1) == (1, 1, 1_000, 1_000) for n in range(0, 1000, 37))
    assert h.get_bucket("other999", 1).count == 1


# ---------------------------------------------------------------------------------------------------------------------
# Exact delete, whatever bytes the id holds
# ---------------------------------------------------------------------------------------------------------------------
TRICKY_IDS = ["id", "id:x", "id:1", "id:index", "i*", "i?", "*", "?", "[id]", "[", "]", "i\\d", "\\", "i[a-z]",
              "", ":", "::", "a:b:c", "id*:", "ü", b"\xff\xfe\x01\x7f", b"id\n\r", " id ", "%41"]


def test_exact_delete_of_tricky_ids(redis_server, open_hammer, redis_cmd):
    prefix = fresh_prefix()
    h = open_hammer(redis_server.url(prefix=q(prefix)))
    for i in TRICKY_IDS:
        assert h.count_hit(i, 1, 1_000) == 1
        assert h.count_hit(i, 2, 2_000, 2) == 2
    own = {b(i): {b(prefix) + b(i) + s for s in (b":1", b":2", b":index")} for i in TRICKY_IDS}
    assert keys(redis_cmd, redis_server, prefix) == set().union(*own.values()), "2 buckets and an index per id"
    remaining = set().union(*own.values())
    for i in TRICKY_IDS:
        assert h.delete_buckets(i) == 2, f"id {i!r}"
        remaining -= own[b(i)]
        assert keys(redis_cmd, redis_server, prefix) == remaining, f"deleting {i!r} touched only its own keys"
        assert h.get_bucket(i, 1) is None
        for other in TRICKY_IDS[TRICKY_IDS.index(i) + 1:]:
            assert h.get_bucket(other, 2) == (2, 2, 2_000, 2_000), f"deleting {i!r} kept {other!r}"
    assert remaining == set()


@pytest.mark.parametrize("victim", ["id", "i*", "i?", "[i]d", "i\\", ""])
def test_delete_spares_lookalikes(h, uid, victim):
    base = uid + "/"
    ids = [base + s for s in ("id", "id:x", "i*", "i?", "[i]d", "i\\", "idd", "i", "")]
    for i in ids:
        h.count_hit(i, 5, 1_000)
    assert h.delete_buckets(base + victim) == 1
    for i in ids:
        assert (h.get_bucket(i, 5) is None) == (i == base + victim), i


def test_str_and_bytes_ids_are_the_same_key(redis_server, h, uid, redis_cmd):
    sid = uid + ":é∑"
    assert h.count_hit(sid, 1, 1_000) == 1
    assert h.count_hit(sid.encode("utf-8"), 1, 1_001) == 2
    assert h.count_hit(bytearray(sid.encode("utf-8")), 1, 1_002) == 3
    assert h.count_hit(memoryview(sid.encode("utf-8")), 1, 1_003) == 4
    key = DEFAULT_PREFIX + sid.encode("utf-8") + b":1"
    assert hash_of(redis_cmd(redis_server, "HGETALL", key))[b"count"] == b"4"
    assert h.delete_buckets(sid.encode("utf-8")) == 1


def test_buckets_written_by_another_client_are_deleted_with_scan_delete(redis_server, open_hammer, redis_cmd):
    """A bucket written without hammer's index (e.g. by the Elixir backend) goes with scan_delete=true, exactly."""
    prefix = fresh_prefix()
    try:
        h = open_hammer(redis_server.url(prefix=q(prefix), scan_delete="true"))
    except hammer.InvalidError as e:
        pytest.skip(f"library without scan_delete: {e}")
    for key in (b"x:5", b"x:-6", b"x:y:7", b"x*:8", b"xx:9", b"x:abc"):
        redis_cmd(redis_server, "HSET", b(prefix) + key, "count", "1", "created", "1", "updated", "1")
    h.count_hit("x", 10, 1_000)
    assert h.delete_buckets("x") == 3, "x:5, x:-6 (foreign) and x:10 (indexed)"
    assert keys(redis_cmd, redis_server, prefix) == {b(prefix) + k for k in (b"x:y:7", b"x*:8", b"xx:9", b"x:abc")}


# ---------------------------------------------------------------------------------------------------------------------
# Redis layout, as Hammer's Elixir backend reads and writes it
# ---------------------------------------------------------------------------------------------------------------------
def test_layout_is_the_elixir_backends(redis_server, h, uid, redis_cmd):
    h.count_hit(uid, 42, 1_700_000_000_000, 3)
    h.count_hit(uid, 42, 1_700_000_000_500)
    key = DEFAULT_PREFIX + uid.encode() + b":42"
    assert redis_cmd(redis_server, "TYPE", key) == "hash"
    assert hash_of(redis_cmd(redis_server, "HGETALL", key)) == {
        b"count": b"4", b"created": b"1700000000000", b"updated": b"1700000000500"}
    # Elixir's get_bucket: HMGET key count created updated, then String.to_integer on each
    assert [int(v) for v in redis_cmd(redis_server, "HMGET", key, "count", "created", "updated")] == \
        [4, 1_700_000_000_000, 1_700_000_000_500]


def test_reads_and_updates_a_bucket_written_by_elixir(redis_server, h, uid, redis_cmd):
    key = DEFAULT_PREFIX + uid.encode() + b":9"
    redis_cmd(redis_server, "HSET", key, "count", "7", "created", "100", "updated", "200")
    redis_cmd(redis_server, "EXPIRE", key, "60")
    assert h.get_bucket(uid, 9) == (9, 7, 100, 200)
    assert h.count_hit(uid, 9, 300, 2) == 9
    assert h.get_bucket(uid, 9) == (9, 9, 100, 300)


@pytest.mark.parametrize("bucket,now", [(INT64_MIN, INT64_MIN), (INT64_MAX, INT64_MAX), (INT64_MIN, INT64_MAX),
                                        (0, 0), (-1, -1), ((1 << 53) + 1, (1 << 53) + 1)])
def test_extreme_numbers_round_trip(redis_server, h, uid, redis_cmd, bucket, now):
    assert h.count_hit(uid, bucket, now) == 1
    assert h.count_hit(uid, bucket, now) == 2
    assert h.get_bucket(uid, bucket) == (bucket, 2, now, now)
    key = DEFAULT_PREFIX + uid.encode() + b":" + str(bucket).encode()
    assert hash_of(redis_cmd(redis_server, "HGETALL", key)) == {b"count": b"2", b"created": str(now).encode(),
                                                                 b"updated": str(now).encode()}
    assert h.delete_buckets(uid) == 1


def test_count_up_to_int64_max_then_overflow(redis_server, h, uid):
    assert h.count_hit(uid, 1, 1_000, INT64_MAX - 5) == INT64_MAX - 5
    with pytest.raises(hammer.InvalidError) as e:
        h.count_hit(uid, 1, 2_000, 10)
    assert e.value.status == 1 and "overflow" in str(e.value)
    assert h.get_bucket(uid, 1) == (1, INT64_MAX - 5, 1_000, 1_000), "a failed hit changes nothing"
    assert h.count_hit(uid, 1, 3_000, 5) == INT64_MAX
    with pytest.raises(hammer.InvalidError):
        h.count_hit(uid, 1, 4_000, 1)
    assert h.get_bucket(uid, 1) == (1, INT64_MAX, 1_000, 3_000)


# ---------------------------------------------------------------------------------------------------------------------
# TTL, prefix, db, unix socket
# ---------------------------------------------------------------------------------------------------------------------
def test_expiry_ms_is_needed_by_count_hit_alone(redis_server, open_hammer, uid):
    """A URL without expiry_ms opens (an app that never calls count_hit need not invent one); count_hit and each
    request of count_hits raise InvalidError naming it, nothing is written, and every other call works."""
    h = open_hammer(f"redis://127.0.0.1:{redis_server.port}/")
    with pytest.raises(hammer.InvalidError, match="expiry_ms") as e:
        h.count_hit(uid, 1, 1000)
    assert e.value.status == hammer.ERR_INVALID
    got = h.count_hits([(uid, 1, 1000), (uid, 2, 1000, 3)])
    assert all(isinstance(r, hammer.InvalidError) for r in got) and "expiry_ms" in got[0].message, got
    assert h.get_bucket(uid, 1) is None and h.get_bucket(uid, 2) is None
    assert h.hit(uid, hammer.Limit.sliding_window(2, 1000)).allowed
    assert h.check_rate(uid, 60_000, 5).allowed
    assert h.delete_buckets(uid) >= 1
    with hammer.Hammer(redis_server.url(expiry_ms=60_000)) as full:   # the same server with it: count_hit works
        assert full.count_hit(uid, 1, 1000) == 1
        full.delete_buckets(uid)


@pytest.mark.parametrize("expiry_ms", [1_500, 60_000, 7_200_000])
def test_ttl_from_expiry_ms(redis_server, open_hammer, uid, redis_cmd, expiry_ms):
    h = open_hammer(redis_server.url(expiry_ms=expiry_ms))
    h.count_hit(uid, 1, 1_000)
    pttl = redis_cmd(redis_server, "PTTL", DEFAULT_PREFIX + uid.encode() + b":1")
    assert expiry_ms < pttl <= expiry_ms + 1000   # expiry_ms to expiry_ms + 1 s after the latest hit
    h.count_hit(uid, 1, 2_000)
    assert expiry_ms <= redis_cmd(redis_server, "PTTL", DEFAULT_PREFIX + uid.encode() + b":1") <= expiry_ms + 1000


def test_bucket_expires(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(redis_server.url(expiry_ms=150))
    h.count_hit(uid, 1, 1_000)
    key = DEFAULT_PREFIX + uid.encode() + b":1"
    assert redis_cmd(redis_server, "EXISTS", key) == 1
    end = time.monotonic() + 10
    while redis_cmd(redis_server, "EXISTS", key) and time.monotonic() < end:
        time.sleep(0.05)
    assert redis_cmd(redis_server, "EXISTS", key) == 0
    assert h.get_bucket(uid, 1) is None
    assert h.count_hit(uid, 1, 5_000) == 1


@pytest.mark.parametrize("prefix", ["app:limits:", "with space/ü%&=?#", "", "*[?]\\"])
def test_custom_prefix(redis_server, open_hammer, uid, redis_cmd, prefix):
    h = open_hammer(redis_server.url(prefix=q(prefix)))
    h.count_hit(uid, 4, 1_000)
    key = prefix.encode() + uid.encode() + b":4"
    assert hash_of(redis_cmd(redis_server, "HGETALL", key))[b"count"] == b"1"
    assert redis_cmd(redis_server, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":4") == 0 or prefix == "Hammer:Redis:"
    assert h.delete_buckets(uid) == 1
    assert redis_cmd(redis_server, "EXISTS", key) == 0


def test_prefixes_are_separate(redis_server, open_hammer, uid):
    a = open_hammer(redis_server.url(prefix="A%3A"))
    c = open_hammer(redis_server.url(prefix="C%3A"))
    a.count_hit(uid, 1, 1_000, 5)
    assert c.get_bucket(uid, 1) is None
    assert c.delete_buckets(uid) == 0
    assert a.get_bucket(uid, 1).count == 5
    assert a.delete_buckets(uid) == 1


def test_db_in_the_path(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(f"redis://127.0.0.1:{redis_server.port}/3?expiry_ms=60000")
    h.count_hit(uid, 1, 1_000)
    key = DEFAULT_PREFIX + uid.encode() + b":1"
    assert redis_cmd(redis_server, "EXISTS", key, db=3) == 1
    assert redis_cmd(redis_server, "EXISTS", key, db=0) == 0
    assert h.delete_buckets(uid) == 1
    assert redis_cmd(redis_server, "EXISTS", key, db=3) == 0


def test_db_as_option(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(redis_server.url(db=5))
    h.count_hit(uid, 1, 1_000)
    key = DEFAULT_PREFIX + uid.encode() + b":1"
    assert redis_cmd(redis_server, "EXISTS", key, db=5) == 1
    assert redis_cmd(redis_server, "EXISTS", key, db=0) == 0


def test_same_db_in_path_and_option(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(f"redis://127.0.0.1:{redis_server.port}/4?expiry_ms=60000&db=4")
    h.count_hit(uid, 1, 1_000)
    assert redis_cmd(redis_server, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1", db=4) == 1


def test_db_out_of_the_servers_range_fails_at_open(redis_server):
    with pytest.raises(hammer.RedisError) as e:
        hammer.Hammer(f"redis://127.0.0.1:{redis_server.port}/99?expiry_ms=1000")
    assert "99" in str(e.value) or "DB" in str(e.value).upper()


def test_unix_socket(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(f"unix://{redis_server.unix_path}?expiry_ms=60000")
    assert h.count_hit(uid, 1, 1_000) == 1
    assert redis_cmd(redis_server, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1", unix=True) == 1
    tcp = open_hammer(redis_server.url())
    assert tcp.count_hit(uid, 1, 1_001) == 2, "TCP and unix socket reach the same data"


def test_unix_socket_with_db(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(f"unix://{redis_server.unix_path}?expiry_ms=60000&db=2&prefix=U%3A")
    h.count_hit(uid, 1, 1_000)
    assert redis_cmd(redis_server, "EXISTS", b"U:" + uid.encode() + b":1", db=2) == 1
    assert redis_cmd(redis_server, "EXISTS", b"U:" + uid.encode() + b":1", db=0) == 0


def test_unix_socket_missing(tmp_path):
    with pytest.raises(hammer.ConnectError) as e:
        hammer.Hammer(f"unix://{tmp_path}/nobody.sock?expiry_ms=1000")
    assert "nobody.sock" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------------
# AUTH and ACL; no error text ever shows the password
# ---------------------------------------------------------------------------------------------------------------------
SECRET = "s3cret-Pa55"


def assert_secret_free(err, *secrets):
    texts = [str(err), repr(err), err.message, hammer.last_error()]
    for s in secrets:
        for t in texts:
            assert s not in t, f"{t!r} shows the password"


def test_auth_with_requirepass(own_redis, open_hammer, uid, redis_cmd):
    s = own_redis(extra=[f"requirepass {SECRET}"])
    h = open_hammer(f"redis://:{SECRET}@127.0.0.1:{s.port}/?expiry_ms=60000")
    assert h.count_hit(uid, 1, 1_000) == 1
    assert redis_cmd(s, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1", password=SECRET) == 1
    lone = open_hammer(f"redis://{SECRET}@127.0.0.1:{s.port}/?expiry_ms=60000")
    assert lone.count_hit(uid, 1, 1_001) == 2, "a lone userinfo is the password"
    opt = open_hammer(f"redis://127.0.0.1:{s.port}/?expiry_ms=60000&password={SECRET}")
    assert opt.count_hit(uid, 1, 1_002) == 3, "password as an option"
    assert SECRET not in repr(h)


@pytest.mark.parametrize("userinfo", [":wrong-pw", "wrong-pw", "default:wrong-pw", "nobody:wrong-pw"])
def test_wrong_password_fails_at_open(own_redis, userinfo):
    s = own_redis(extra=[f"requirepass {SECRET}"])
    with pytest.raises(hammer.RedisError) as e:
        hammer.Hammer(f"redis://{userinfo}@127.0.0.1:{s.port}/?expiry_ms=60000")
    assert e.value.status == hammer.ERR_REDIS == 4
    assert e.value.message
    assert_secret_free(e.value, "wrong-pw", SECRET)


def test_missing_password_fails_at_open(own_redis):
    """The header: hammer_open "connects once to check the server and credentials"."""
    s = own_redis(extra=[f"requirepass {SECRET}"])
    with pytest.raises(hammer.RedisError) as e:
        hammer.Hammer(f"redis://127.0.0.1:{s.port}/?expiry_ms=60000")
    assert "auth" in str(e.value).lower()


def test_password_never_in_later_errors(own_redis, uid, redis_cmd):
    s = own_redis(extra=[f"requirepass {SECRET}"])
    seen = []
    with hammer.Hammer(f"redis://:{SECRET}@127.0.0.1:{s.port}/?expiry_ms=60000&timeout_ms=300&pool_size=1") as h:
        h.count_hit(uid, 1, 1_000)
        # a Redis error: a key of the id holding another type
        redis_cmd(s, "SET", DEFAULT_PREFIX + uid.encode() + b":2", "x", password=SECRET)
        with pytest.raises(hammer.RedisError) as e:
            h.count_hit(uid, 2, 1_000)
        seen.append(e.value)
        # bad arguments
        for call in (lambda: h.count_hit(uid, 1, 1, -1), lambda: h.count_hit(uid + "\0", 1, 1)):
            with pytest.raises(hammer.InvalidError) as e:
                call()
            seen.append(e.value)
        # a timeout
        redis_cmd(s, "CLIENT", "PAUSE", "1000", "ALL", password=SECRET)
        with pytest.raises(hammer.HammerTimeout) as e:
            h.count_hit(uid, 1, 2_000)
        seen.append(e.value)
        retry(lambda: h.count_hit(uid, 1, 3_000), (hammer.HammerTimeout, hammer.ConnectError))
        # a lost connection, then a password that no longer works
        redis_cmd(s, "CONFIG", "SET", "requirepass", "changed-pw", password=SECRET)
        redis_cmd(s, "CLIENT", "KILL", "TYPE", "normal", password="changed-pw")
        for _ in range(4):
            with pytest.raises(hammer.HammerError) as e:
                h.count_hit(uid, 1, 4_000)
            seen.append(e.value)
            time.sleep(0.03)
        assert any(isinstance(x, hammer.RedisError) for x in seen[-3:]), seen
        # the server gone (the breaker may repeat the previous failure while it backs off)
        s.stop()
        with pytest.raises(hammer.HammerError) as e:
            h.count_hit(uid, 1, 5_000)
        seen.append(e.value)
    with pytest.raises(hammer.InvalidError) as e:
        h.count_hit(uid, 1, 6_000)
    seen.append(e.value)
    assert len(seen) >= 9
    for err in seen:
        assert err.message
        assert_secret_free(err, SECRET)


def test_password_not_in_open_errors(own_redis):
    pw = "p@ss:w/rd%"
    enc = q(pw)
    port = free_port()
    for url, kind in [(f"redis://:{enc}@127.0.0.1:{port}/?expiry_ms=1000", hammer.ConnectError),
                      (f"redis://u:{enc}@127.0.0.1:{port}/?expiry_ms=1000&bogus=1", hammer.InvalidError),
                      (f"redis://u:{enc}@127.0.0.1:{port}/?expiry_ms=0", hammer.InvalidError),
                      (f"redis://u:{enc}@127.0.0.1:{port}/?expiry_ms=1000&password={enc}", hammer.ConnectError),
                      (f"redis://u:{enc}%zz@127.0.0.1:{port}/?expiry_ms=1000", hammer.InvalidError),
                      (f"redis://127.0.0.1:{port}/?expiry_ms=1000&password={enc}%", hammer.InvalidError),
                      (f"redis://u:{enc}@127.0.0.1:99999/?expiry_ms=1000", hammer.InvalidError),
                      (f"redis://u:{enc}@bad_host!/?expiry_ms=1000", hammer.InvalidError)]:
        with pytest.raises(kind) as e:
            hammer.Hammer(url)
        assert_secret_free(e.value, pw, enc, "w/rd")


def test_acl_user(own_redis, open_hammer, uid, redis_cmd):
    s = own_redis(extra=["user alice on >pw ~* +@all", "user bob on >p@ss:w/rd% ~* +@all"])
    alice = open_hammer(f"redis://alice:pw@127.0.0.1:{s.port}/?expiry_ms=60000")
    assert alice.count_hit(uid, 1, 1_000) == 1
    assert redis_cmd(s, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1") == 1
    bob = open_hammer(f"redis://bob:{q('p@ss:w/rd%')}@127.0.0.1:{s.port}/?expiry_ms=60000")
    assert bob.count_hit(uid, 1, 1_001) == 2
    by_opt = open_hammer(f"redis://127.0.0.1:{s.port}/?expiry_ms=60000&user=alice&password=pw")
    assert by_opt.count_hit(uid, 1, 1_002) == 3
    for who, pw in [("alice", "nope"), ("bob", "p@ss:w/rd"), ("carol", "pw")]:
        with pytest.raises(hammer.RedisError) as e:
            hammer.Hammer(f"redis://{who}:{q(pw)}@127.0.0.1:{s.port}/?expiry_ms=60000")
        assert e.value.status == 4
        assert_secret_free(e.value, pw, q(pw))


def test_acl_user_without_permission_gets_redis_error(own_redis, uid):
    s = own_redis(extra=["user ro on >pw ~* +@read +auth +select +ping"])
    try:
        h = hammer.Hammer(f"redis://ro:pw@127.0.0.1:{s.port}/?expiry_ms=60000")
    except hammer.RedisError as e:
        assert "NOPERM" in str(e) or "permission" in str(e).lower()
        return
    with h:
        with pytest.raises(hammer.RedisError) as e:
            h.count_hit(uid, 1, 1_000)
        assert "NOPERM" in str(e.value) or "permission" in str(e.value).lower()


# ---------------------------------------------------------------------------------------------------------------------
# IPv6
# ---------------------------------------------------------------------------------------------------------------------
def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this machine")
def test_ipv6_loopback(own_redis, open_hammer, uid, redis_cmd):
    s = own_redis(extra=["bind 127.0.0.1 ::1"])
    h = open_hammer(f"redis://[::1]:{s.port}/?expiry_ms=60000")
    assert h.count_hit(uid, 1, 1_000) == 1
    assert redis_cmd(s, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1") == 1
    h6db = open_hammer(f"redis://[::1]:{s.port}/6?expiry_ms=60000")
    h6db.count_hit(uid, 1, 1_000)
    assert redis_cmd(s, "EXISTS", DEFAULT_PREFIX + uid.encode() + b":1", db=6) == 1


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no ::1 on this machine")
def test_ipv6_nobody_listening():
    with pytest.raises(hammer.ConnectError) as e:
        hammer.Hammer(f"redis://[::1]:{free_port()}/?expiry_ms=1000")
    assert "::1" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------------
# Threads and processes lose nothing
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spin", [{}, {"spin_us": 0}, {"spin_us": 1000}], ids=["spin-default", "spin-0", "spin-1000"])
def test_threads_share_one_handle(redis_server, open_hammer, uid, spin):
    h = open_hammer(redis_server.url(pool_size=4, **spin))
    threads, hits = 8, 500
    results = [[] for _ in range(threads)]
    errors = []
    start = threading.Barrier(threads)

    def work(i):
        try:
            start.wait(10)
            for n in range(hits):
                results[i].append(h.count_hit(uid, 1, n))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts)
    assert errors == []
    assert h.get_bucket(uid, 1).count == threads * hits
    counts = sorted(c for r in results for c in r)
    assert counts == list(range(1, threads * hits + 1)), "every hit saw its own count: one atomic step each"
    assert all(r == sorted(r) for r in results), "a thread's counts increase"


def _process_worker(url, id_, hits, queue):
    import hammer as hm  # a spawned process imports its own copy of the binding and the library
    try:
        with hm.Hammer(url) as h:
            queue.put([h.count_hit(id_, 1, 1_000 + n, 2) for n in range(hits)])
    except Exception as e:  # noqa: BLE001 - the parent asserts on it
        queue.put(repr(e))


def test_processes_lose_nothing(redis_server, h, uid):
    procs, hits = 4, 300
    got = run_in_processes(_process_worker, (redis_server.url(), uid, hits), procs)
    assert all(isinstance(g, list) for g in got), got
    assert sorted(c for g in got for c in g) == list(range(2, 2 * procs * hits + 1, 2))
    assert h.get_bucket(uid, 1).count == 2 * procs * hits


# ---------------------------------------------------------------------------------------------------------------------
# Faults: restart, pause, timeouts, unreachable
# ---------------------------------------------------------------------------------------------------------------------
def test_restart_recovery(own_redis, uid):
    s = own_redis()
    with hammer.Hammer(s.url(pool_size=2)) as h:
        assert h.count_hit(uid, 1, 1_000, 5) == 5
        s.restart()  # same port, empty dataset (no persistence)
        count, failures = retry(lambda: h.count_hit(uid, 1, 2_000), (hammer.ConnectError,))
        assert count == 1, "the restarted server is empty; no failed attempt counted"
        assert len(failures) <= 10
        assert all(isinstance(f, hammer.ConnectError) and f.status == 2 and f.message for f in failures)
        assert h.get_bucket(uid, 1) == (1, 1, 2_000, 2_000)


def test_server_down_then_up(own_redis, uid):
    s = own_redis()
    with hammer.Hammer(s.url(connect_timeout_ms=500)) as h:
        h.count_hit(uid, 1, 1_000)
        s.stop()
        for _ in range(3):
            with pytest.raises(hammer.ConnectError) as e:
                h.count_hit(uid, 1, 2_000)
            assert e.value.message
        s.start()
        count, _ = retry(lambda: h.count_hit(uid, 1, 3_000), (hammer.ConnectError,))
        assert count == 1
        assert h.delete_buckets(uid) == 1


def test_killed_connections_are_replaced(redis_server, open_hammer, uid, redis_cmd):
    h = open_hammer(redis_server.url(pool_size=3, prefix=q(fresh_prefix())))
    h.count_hit(uid, 1, 1_000)
    redis_cmd(redis_server, "CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal")
    count, failures = retry(lambda: h.count_hit(uid, 1, 2_000), (hammer.ConnectError,))
    assert count == 2 and len(failures) <= 3


@pytest.mark.parametrize("mode", ["ALL", "WRITE"])
def test_command_timeout_during_client_pause(own_redis, uid, mode):
    s = own_redis()
    with hammer.Hammer(s.url(timeout_ms=200, pool_size=2)) as h:
        assert h.count_hit(uid, 1, 1_000) == 1
        assert s.cli("CLIENT", "PAUSE", "3000", mode) == "OK"
        t0 = time.monotonic()
        with pytest.raises(hammer.HammerTimeout) as e:
            h.count_hit(uid, 1, 2_000)
        elapsed = time.monotonic() - t0
        assert e.value.status == 3 and e.value.message
        assert elapsed < 2.5, f"gave up after {elapsed:.2f} s, before the 3 s pause ended"
        count, failures = retry(lambda: h.count_hit(uid, 1, 3_000), (hammer.HammerTimeout, hammer.ConnectError),
                                deadline_s=15, pause_s=0.1)
        assert count in (2, 3), "the timed-out hit counted at most once"
        assert h.get_bucket(uid, 1).updated == 3_000


def test_timeout_while_the_server_is_stopped(own_redis, uid):
    s = own_redis()
    with hammer.Hammer(s.url(timeout_ms=200, connect_timeout_ms=200)) as h:
        h.count_hit(uid, 1, 1_000)
        s.pause()
        try:
            t0 = time.monotonic()
            with pytest.raises(hammer.HammerTimeout):
                h.get_bucket(uid, 1)
            assert time.monotonic() - t0 < 5
        finally:
            s.resume()
        bucket, _ = retry(lambda: h.get_bucket(uid, 1), (hammer.HammerTimeout, hammer.ConnectError))
        assert bucket.count == 1


def test_unreachable_server_fails_at_open():
    port = free_port()
    with pytest.raises(hammer.ConnectError) as e:
        hammer.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms=1000")
    assert e.value.status == 2
    assert str(port) in str(e.value)
    assert hammer.last_error() == e.value.message


@pytest.fixture
def silent_listener():
    """A TCP port whose accept queue is full: a new connect() gets no answer (SYN dropped)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.05)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        answered = True
    except OSError:
        answered = False
    finally:
        probe.close()
    if answered:
        for c in fillers:
            c.close()
        srv.close()
        pytest.skip("this kernel answers connects beyond the backlog")
    yield port
    for c in fillers:
        c.close()
    srv.close()


def test_connect_timeout_is_honoured(silent_listener):
    t0 = time.monotonic()
    with pytest.raises(hammer.HammerTimeout) as e:
        hammer.Hammer(f"redis://127.0.0.1:{silent_listener}/?expiry_ms=1000&connect_timeout_ms=300")
    elapsed = time.monotonic() - t0
    assert e.value.status == 3 and "connect" in str(e.value).lower()
    assert elapsed < 3, f"a 300 ms connect timeout took {elapsed:.2f} s"


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: InvalidError (status 1) with a message naming the part
# ---------------------------------------------------------------------------------------------------------------------
BAD_URLS = [
    ("redis://127.0.0.1:{port}/?prefix=x&expiry_ms=0", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=0", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=-1", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=abc", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1.5", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=99999999999999999999999", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&expiry_ms=2000", "expiry_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&bogus=1", "bogus"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&flag", "flag"),
    ("redis://127.0.0.1:0/?expiry_ms=1000", "port"),
    ("redis://127.0.0.1:65536/?expiry_ms=1000", "port"),
    ("redis://127.0.0.1:-1/?expiry_ms=1000", "port"),
    ("redis://127.0.0.1:abc/?expiry_ms=1000", "port"),
    ("redis://127.0.0.1:/?expiry_ms=1000", "port"),
    ("http://127.0.0.1:{port}/?expiry_ms=1000", "scheme"),
    ("rediss+foo://127.0.0.1:{port}/?expiry_ms=1000", "scheme"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&ssl_ca_certs=/ca.pem", "rediss"),
    ("127.0.0.1:{port}?expiry_ms=1000", "redis://"),
    ("", "redis://"),
    ("redis://:%zz@127.0.0.1:{port}/?expiry_ms=1000", "percent"),
    ("redis://:%4@127.0.0.1:{port}/?expiry_ms=1000", "percent"),
    ("redis://u%G1:pw@127.0.0.1:{port}/?expiry_ms=1000", "percent"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&prefix=%", "percent"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&prefix=%ff", "percent"),
    ("unix:///tmp/x%zz.sock?expiry_ms=1000", "unix"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&pool_size=0", "pool_size"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&pool_size=1025", "pool_size"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&pool_size=-3", "pool_size"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&timeout_ms=0", "timeout_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&spin_us=-1", "spin_us"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&spin_us=1001", "spin_us"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&spin_us=fast", "spin_us"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&connect_timeout_ms=0", "connect_timeout_ms"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&connect_timeout_ms=x", "connect_timeout_ms"),
    ("redis://127.0.0.1:{port}/abc?expiry_ms=1000", "database"),
    ("redis://127.0.0.1:{port}/-1?expiry_ms=1000", "database"),
    ("redis://127.0.0.1:{port}/1?expiry_ms=1000&db=2", "db"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000&db=x", "db"),
    ("redis://[::1/?expiry_ms=1000", "IPv6"),
    ("redis://[zz]:1/?expiry_ms=1000", "IPv6"),
    ("redis://bad host/?expiry_ms=1000", "host"),
    ("redis://127.0.0.1:{port}/?expiry_ms=1000#frag", "fragment"),
    ("unix://relative.sock?expiry_ms=1000", "unix"),
    ("unix://?expiry_ms=1000", "unix"),
    ("unix:///" + "x" * 200 + ".sock?expiry_ms=1000", "107"),
]


@pytest.mark.parametrize("template,word", BAD_URLS)
def test_bad_url_is_invalid(template, word):
    url = template.replace("{port}", str(free_port()))
    with pytest.raises(hammer.InvalidError) as e:
        hammer.Hammer(url)
    assert e.value.status == hammer.ERR_INVALID == 1
    assert word.lower() in e.value.message.lower(), f"{url!r}: {e.value.message!r} should name {word!r}"
    assert hammer.last_error() == e.value.message


def test_bad_arguments_are_invalid(h, uid):
    cases = [
        (lambda: h.count_hit(uid, 1, 1_000, -1), "increment"),
        (lambda: h.count_hit(uid, 1, 1_000, INT64_MIN), "increment"),
        (lambda: h.count_hit(uid + "\0x", 1, 1_000), "NUL"),
        (lambda: h.count_hit(b"a\0", 1, 1_000), "NUL"),
        (lambda: h.get_bucket("\0", 1), "NUL"),
        (lambda: h.delete_buckets(uid.encode() + b"\0"), "NUL"),
        (lambda: h.count_hit(None, 1, 1_000), "id"),
        (lambda: h.count_hit(42, 1, 1_000), "id"),
        (lambda: h.count_hit("\ud800", 1, 1_000), "UTF-8"),
        (lambda: h.count_hit(uid, INT64_MAX + 1, 1_000), "bucket"),
        (lambda: h.count_hit(uid, 1, INT64_MIN - 1), "now_ms"),
        (lambda: h.count_hit(uid, 1.5, 1_000), "bucket"),
        (lambda: h.count_hit(uid, 1, "1000"), "now_ms"),
        (lambda: h.count_hit(uid, 1, 1_000, 1 << 64), "increment"),
        (lambda: h.get_bucket(uid, None), "bucket"),
        (lambda: h.count_hit("x" * 70_000, 1, 1_000), "id"),
    ]
    for call, word in cases:
        with pytest.raises(hammer.InvalidError) as e:
            call()
        assert e.value.status == 1
        assert word.lower() in e.value.message.lower(), e.value.message
    assert h.get_bucket(uid, 1) is None, "no bad call wrote anything"
    assert h.count_hit(uid, 1, 1_000) == 1, "the handle still works"


def test_bad_url_types():
    for url in (None, 42, "redis://127.0.0.1:1/?expiry_ms=1000\0x"):
        with pytest.raises(hammer.InvalidError):
            hammer.Hammer(url)
