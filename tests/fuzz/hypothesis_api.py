#!/usr/bin/env python3
"""Property-based fuzzing of libhammer's C ABI through ctypes (hypothesis), against the real release library and real
redis-server processes it starts on loopback. Run as its own process (tests/test_fuzz.py does), so that a crash of
the library is seen as a dead process, not as a failed assertion:

    python3 tests/fuzz/hypothesis_api.py [--examples N] [--library build/lib/libhammer.so]

Inputs: URLs (random bytes, and URL-shaped text with random options, user info, ports and paths; hosts are always
loopback or malformed, never a name to resolve), ids of any bytes and length up to megabytes (over 65536 bytes must
give HAMMER_ERR_INVALID), extreme integers (INT64_MIN/MAX, sums that overflow), random hammer_limit structs, and batch
arrays. Every call on a healthy server must return HAMMER_OK or HAMMER_ERR_INVALID; every call on a handle whose server
is gone (fallback=local, or on_error=allow|deny) a defined status; decisions are well-formed.
Exit status 0 when every property held; hypothesis prints the falsifying example otherwise.
"""
import argparse
import ctypes
import faulthandler
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from redis_server import RedisServer, encode, read_reply  # noqa: E402

I64_MIN, I64_MAX = -2**63, 2**63 - 1
MAX_ID = 65536
OK, INVALID, CONNECT, TIMEOUT, REDIS, PROTOCOL = 0, 1, 2, 3, 4, 5


R2, R3, R4 = ctypes.c_int64 * 2, ctypes.c_int64 * 3, ctypes.c_int64 * 4   # the 1.0 ABI's reserved space


class Limit(ctypes.Structure):
    _fields_ = [("algorithm", ctypes.c_int32), ("limit", ctypes.c_int64), ("period_ms", ctypes.c_int64),
                ("burst", ctypes.c_int64), ("reserved", R2)]


class Decision(ctypes.Structure):
    _fields_ = [("allowed", ctypes.c_int32), ("count", ctypes.c_int64), ("limit", ctypes.c_int64),
                ("remaining", ctypes.c_int64), ("retry_after_ms", ctypes.c_int64), ("reset_after_ms", ctypes.c_int64),
                ("degraded", ctypes.c_int32), ("reserved32", ctypes.c_int32), ("reserved", R4)]


class Bucket(ctypes.Structure):
    _fields_ = [("bucket", ctypes.c_int64), ("count", ctypes.c_int64), ("created", ctypes.c_int64),
                ("updated", ctypes.c_int64), ("found", ctypes.c_int32), ("reserved32", ctypes.c_int32),
                ("reserved", R2)]


class Inspection(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("count", "remaining", "ms_to_next_bucket", "created", "updated")] + [
        ("reserved", R3)]


class Stats(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("spin_cpus", ctypes.c_uint32),
                ("calls", ctypes.c_uint64), ("allowed", ctypes.c_uint64), ("denied", ctypes.c_uint64),
                ("errors", ctypes.c_uint64 * 16), ("reconnects", ctypes.c_uint64), ("degraded", ctypes.c_uint64),
                ("p50_us", ctypes.c_int64), ("p99_us", ctypes.c_int64), ("p999_us", ctypes.c_int64),
                ("connections", ctypes.c_int64)]


class CountReq(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("bucket", ctypes.c_int64), ("now_ms", ctypes.c_int64),
                ("increment", ctypes.c_int64), ("reserved", R2)]


class HitReq(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("lim", ctypes.POINTER(Limit)), ("cost", ctypes.c_int64),
                ("now_ms", ctypes.c_int64), ("reserved", R2)]


class CheckReq(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("scale_ms", ctypes.c_int64), ("limit", ctypes.c_int64),
                ("increment", ctypes.c_int64), ("reserved", R2)]


def load(path):
    lib = ctypes.CDLL(path)
    H, S, I, P = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.POINTER
    sigs = {
        "hammer_open": [S, P(ctypes.c_void_p)],
        "hammer_count_hit": [H, S, I, I, I, P(ctypes.c_int64)],
        "hammer_get_bucket": [H, S, I, P(Bucket)],
        "hammer_delete_buckets": [H, S, P(ctypes.c_int64)],
        "hammer_check_rate": [H, S, I, I, I, P(Decision)],
        "hammer_check_rate_at": [H, S, I, I, I, I, P(Decision)],
        "hammer_inspect_bucket": [H, S, I, I, P(Inspection)],
        "hammer_hit": [H, S, P(Limit), I, P(Decision)],
        "hammer_hit_at": [H, S, P(Limit), I, I, P(Decision)],
        "hammer_peek": [H, S, P(Limit), P(Decision)],
        "hammer_peek_at": [H, S, P(Limit), I, P(Decision)],
        "hammer_count_hits": [H, P(CountReq), ctypes.c_size_t, P(ctypes.c_int64), P(ctypes.c_int)],
        "hammer_hit_many": [H, P(HitReq), ctypes.c_size_t, P(Decision), P(ctypes.c_int)],
        "hammer_check_rates": [H, P(CheckReq), ctypes.c_size_t, P(Decision), P(ctypes.c_int)],
        "hammer_stats": [H, P(Stats)],
    }
    for name, args in sigs.items():
        f = getattr(lib, name)
        f.argtypes = args
        f.restype = ctypes.c_int
    lib.hammer_close.argtypes = [H]
    lib.hammer_close.restype = None
    for name in ("hammer_last_error", "hammer_version"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = []
    lib.hammer_strerror.restype = ctypes.c_char_p
    lib.hammer_strerror.argtypes = [ctypes.c_int]
    return lib


# ---------------------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------------------
EXTREMES = [0, 1, -1, 2, I64_MAX, I64_MIN, I64_MAX - 1, I64_MIN + 1, 2**47, 2**47 + 1, 2**52, 2**53 + 1, 10**9,
            10**9 + 1, 315360000000, 315360000001, 2**31 - 1, -2**31, 2**32]
ints = st.one_of(st.sampled_from(EXTREMES), st.integers(-1000, 100000), st.integers(0, 10**9), st.integers(I64_MIN, I64_MAX))
LONG_LENGTHS = [65535, 65536, 65537, 100000, 2**20, 3 * 2**20]


@st.composite
def ids(draw):
    """Any bytes; sometimes a pattern repeated to a length around the limit or megabytes beyond it."""
    pattern = draw(st.binary(min_size=0, max_size=40))
    if pattern and draw(st.integers(0, 5)) == 0:
        n = draw(st.sampled_from(LONG_LENGTHS))
        return (pattern * (n // len(pattern) + 1))[:n]
    return pattern


def c_length(b):
    """The id a C caller passes: its bytes up to the first NUL."""
    i = b.find(b"\0")
    return len(b) if i < 0 else i


limits = st.builds(Limit, algorithm=st.one_of(st.integers(0, 5), st.sampled_from([-1, 6, 2**31 - 1, -2**31])),
                   limit=ints, period_ms=ints, burst=ints)


@st.composite
def valid_limits(draw):
    """Any limit the library accepts, boundaries included: capacity * period_ms <= 2^52."""
    period = draw(st.one_of(st.sampled_from([1, 1000, 10**9, 315360000000]), st.integers(1, 315360000000)))
    top = min(10**9, 2**52 // period)
    algorithm = draw(st.integers(0, 5))
    limit = draw(st.one_of(st.sampled_from([1, top]), st.integers(1, top)))
    burst = draw(st.one_of(st.just(0), st.sampled_from([1, top]), st.integers(0, top)))
    return Limit(algorithm, limit, period, burst)


any_limit = st.one_of(st.none(), limits, valid_limits())
sane_limits = st.builds(Limit, algorithm=st.integers(0, 5), limit=st.integers(1, 100),
                        period_ms=st.sampled_from([1, 10, 1000, 60000]), burst=st.integers(0, 200))


def valid_limit(lim):
    if not (0 <= lim.algorithm <= 4 and 1 <= lim.limit <= 10**9 and 1 <= lim.period_ms <= 315360000000
            and 0 <= lim.burst <= 10**9):
        return False
    cap = lim.limit if lim.algorithm < 2 or lim.burst == 0 else lim.burst
    return cap * lim.period_ms <= 2**52


def capacity(lim):
    return lim.limit if lim.algorithm < 2 or lim.burst == 0 else lim.burst


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------
class Checker:
    def __init__(self, lib, allowed_statuses):
        self.lib = lib
        self.allowed = allowed_statuses

    def status(self, rc, what):
        assert 0 <= rc <= 7, f"{what}: status {rc} is not a defined status"
        assert rc in self.allowed, f"{what}: status {rc} ({self.lib.hammer_last_error()!r}), want one of {self.allowed}"
        if rc != OK:
            assert self.lib.hammer_last_error(), f"{what}: status {rc} with an empty hammer_last_error()"
            assert self.lib.hammer_strerror(rc)

    @staticmethod
    def decision(d, what):
        assert d.allowed in (0, 1), f"{what}: allowed = {d.allowed}"
        assert d.degraded in (0, 1), f"{what}: degraded = {d.degraded}"
        assert d.retry_after_ms >= -1, f"{what}: retry_after_ms = {d.retry_after_ms}"
        assert d.remaining >= 0, f"{what}: remaining = {d.remaining}"
        if d.allowed:
            assert d.retry_after_ms == 0, f"{what}: allowed with retry_after_ms = {d.retry_after_ms}"

    @staticmethod
    def cleared_decision(d, what):
        assert (d.allowed, d.count, d.limit, d.remaining, d.retry_after_ms, d.reset_after_ms) == (0,) * 6, \
            f"{what}: the decision was not cleared on failure"


def call_one(lib, chk, h, fn, idb, a, b, c, d, lim, null_id, null_out):
    """One exported call with the given raw arguments; checks its status and outputs."""
    idp = None if null_id else ctypes.create_string_buffer(idb, len(idb) + 1)
    ref = ctypes.byref
    limp = None if lim is None else ref(lim)
    dec = Decision(allowed=7, count=7, remaining=7)
    decp = None if null_out else ref(dec)
    what = f"{fn}(id of {len(idb)} bytes, {a}, {b}, {c}, {d})"
    if fn == "count_hit":
        n = ctypes.c_int64(7)
        rc = lib.hammer_count_hit(h, idp, a, b, c, None if null_out else ref(n))
        if rc != OK:
            assert n.value == 0 or null_out, f"{what}: count not cleared"
    elif fn == "get_bucket":
        bk = Bucket(found=7, count=7)
        rc = lib.hammer_get_bucket(h, idp, a, None if null_out else ref(bk))
        if not null_out:
            assert bk.found in (0, 1), what
            if bk.found == 0:
                assert (bk.count, bk.created, bk.updated) == (0, 0, 0), what
    elif fn == "delete_buckets":
        n = ctypes.c_int64(-7)
        rc = lib.hammer_delete_buckets(h, idp, None if null_out else ref(n))
        assert null_out or n.value >= 0, f"{what}: deleted {n.value}"
    elif fn == "check_rate":
        rc = lib.hammer_check_rate(h, idp, a, b, c, decp)
    elif fn == "check_rate_at":
        rc = lib.hammer_check_rate_at(h, idp, a, b, c, d, decp)
    elif fn == "inspect_bucket":
        ins = Inspection(count=7)
        rc = lib.hammer_inspect_bucket(h, idp, a, b, None if null_out else ref(ins))
        if rc == OK and not null_out:
            assert ins.count >= 0 and ins.remaining >= 0 and ins.ms_to_next_bucket >= 0, what
    elif fn == "hit":
        rc = lib.hammer_hit(h, idp, limp, a, decp)
    elif fn == "hit_at":
        rc = lib.hammer_hit_at(h, idp, limp, a, b, decp)
    elif fn == "peek":
        rc = lib.hammer_peek(h, idp, limp, decp)
    elif fn == "peek_at":
        rc = lib.hammer_peek_at(h, idp, limp, a, decp)
    else:
        raise AssertionError(fn)
    chk.status(rc, what)
    if c_length(idb) > MAX_ID and not null_id and h:
        assert rc == INVALID, f"{what}: an id of {c_length(idb)} bytes gave {rc}, want HAMMER_ERR_INVALID"
    if null_id or not h or (null_out and fn not in ("count_hit", "delete_buckets")):  # those two take a NULL out
        assert rc == INVALID, f"{what} with a NULL argument gave {rc}"
    if fn in ("check_rate", "check_rate_at", "hit", "hit_at", "peek", "peek_at") and not null_out:
        if rc == OK:
            chk.decision(dec, what)
        else:
            chk.cleared_decision(dec, what)
    return rc


FUNCTIONS = ["count_hit", "get_bucket", "delete_buckets", "check_rate", "check_rate_at", "inspect_bucket", "hit",
             "hit_at", "peek", "peek_at"]


def batch(lib, chk, h, which, reqs, n_override, down=False):
    """One batch call with `reqs` (tuples of raw fields); checks statuses and that the call returns the first failure."""
    n = len(reqs)
    keep = []
    if which == "count_hits":
        arr = (CountReq * max(n, 1))()
        for i, (idb, x, y, z, _lim, null_id) in enumerate(reqs):
            buf = None if null_id else ctypes.create_string_buffer(idb, len(idb) + 1)
            keep.append(buf)
            arr[i] = CountReq(ctypes.cast(buf, ctypes.c_char_p) if buf is not None else None, x, y, z)
        out = (ctypes.c_int64 * max(n, 1))()
        fn = lib.hammer_count_hits
    elif which == "hit_many":
        arr = (HitReq * max(n, 1))()
        for i, (idb, x, y, _z, lim, null_id) in enumerate(reqs):
            buf = None if null_id else ctypes.create_string_buffer(idb, len(idb) + 1)
            keep += [buf, lim]
            arr[i] = HitReq(ctypes.cast(buf, ctypes.c_char_p) if buf is not None else None,
                            ctypes.pointer(lim) if lim is not None else None, x, y)
        out = (Decision * max(n, 1))()
        fn = lib.hammer_hit_many
    else:
        arr = (CheckReq * max(n, 1))()
        for i, (idb, x, y, z, _lim, null_id) in enumerate(reqs):
            buf = None if null_id else ctypes.create_string_buffer(idb, len(idb) + 1)
            keep.append(buf)
            arr[i] = CheckReq(ctypes.cast(buf, ctypes.c_char_p) if buf is not None else None, x, y, z)
        out = (Decision * max(n, 1))()
        fn = lib.hammer_check_rates
    statuses = (ctypes.c_int * max(n, 1))(*([-99] * max(n, 1)))
    what = f"{which}({n} requests)"
    if n_override is not None:
        # n < 0 (as size_t) or over 1,000,000: refused before anything is read.
        rc = fn(h, arr, n_override % 2**64, out, statuses)
        chk.status(rc, what)
        assert rc == INVALID, f"{what} with n = {n_override} gave {rc}"
        return
    rc = fn(h, arr, n, out, statuses)
    chk.status(rc, what)
    if n == 0:
        assert rc == OK, f"{what}: {rc}"
        return
    got = list(statuses[:n])
    for i, s in enumerate(got):
        chk.status(s, f"{what} request {i}")
        idb, _x, _y, _z, lim, null_id = reqs[i]
        if null_id or c_length(idb) > MAX_ID:
            assert s == INVALID, f"{what} request {i} (NULL or over-long id) has status {s}"
        if which != "count_hits" and s == OK:
            Checker.decision(out[i], f"{what} request {i}")
    first = next((s for s in got if s != OK), OK)
    assert rc == first, f"{what} returned {rc}, its first failing request has {first} ({got})"


# ---------------------------------------------------------------------------------------------------------------
# What Redis holds: random state under the id's keys before each call
# ---------------------------------------------------------------------------------------------------------------
STATE_PREFIX = b"hst:"
STATE_NOW = 10**12
STATE_PERIODS = [1000, 60000]
NUMBERS = [b"0", b"1", b"-1", b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808",
           b"99999999999999999999999", b"4503599627370496", b"9007199254740993", b"1e308", b"-1e308", b"1.5",
           b"nan", b"inf", b"-inf", b"", b" 1", b"0x10", b"abc", b"\xff\x00\xfe", b"1:2", b"3:1:9", b"-5:-7"]
texts = st.one_of(st.sampled_from(NUMBERS), st.binary(max_size=24),
                  st.integers(-2**70, 2**70).map(lambda n: str(n).encode()))
scores = st.one_of(st.sampled_from([b"0", b"-1", b"1e300", b"-1e300", b"inf", b"-inf", b"9223372036854775807",
                                    b"1000000000000"]), st.integers(-2**60, 2**60).map(lambda n: str(n).encode()))
FIELDS = [b"count", b"created", b"updated", b"tat", b"f", b"level", b"t", b"1000", b"60000"]
values = st.one_of(
    st.none(),
    st.tuples(st.just("string"), texts),
    st.tuples(st.just("hash"), st.lists(st.tuples(st.one_of(st.sampled_from(FIELDS), st.binary(max_size=8)), texts),
                                        min_size=1, max_size=5)),
    st.tuples(st.just("list"), st.lists(texts, min_size=1, max_size=4)),
    st.tuples(st.just("set"), st.lists(texts, min_size=1, max_size=4)),
    st.tuples(st.just("zset"), st.lists(st.tuples(scores, texts), min_size=1, max_size=6)),
)


def state_keys(idb):
    """Every key the library may read for id `idb`: buckets of count_hit and of the windows at STATE_NOW, the index,
    and the algorithms' state."""
    base = STATE_PREFIX + idb + b":"
    buckets = {0, 1, 2} | {STATE_NOW // p for p in STATE_PERIODS}
    return [base + str(b).encode() for b in sorted(buckets)] + [
        base + s for s in (b"index", b"sw", b"swm", b"tb", b"lb", b"gcra", b"swc")]


def seed_state(conn, f, idb, chosen):
    cmds = []
    for key, v in zip(state_keys(idb), chosen):
        cmds.append([b"DEL", key])
        if v is None:
            continue
        kind, data = v
        if kind == "string":
            cmds.append([b"SET", key, data])
        elif kind == "hash":
            cmds.append([b"HSET", key] + [x for fv in data for x in fv])
        elif kind == "list":
            cmds.append([b"RPUSH", key] + data)
        elif kind == "set":
            cmds.append([b"SADD", key] + data)
        else:
            cmds.append([b"ZADD", key] + [x for sm in data for x in sm])
    for c in cmds:
        conn.sendall(encode(c))
    for _ in cmds:
        read_reply(f)   # an error reply (a score Redis refuses) just leaves that key out


state_calls = st.sampled_from(["count_hit", "get_bucket", "delete_buckets", "check_rate_at", "inspect_bucket",
                               "hit_at", "peek_at", "count_hits", "hit_many", "check_rates"])


def state_call(lib, h, fn, idb, period, lim, k):
    """One call with valid arguments on id `idb`; returns its status (and checks a decision's basic shape)."""
    ref = ctypes.byref
    idp = ctypes.create_string_buffer(idb, len(idb) + 1)
    dec = Decision()
    if fn == "count_hit":
        return lib.hammer_count_hit(h, idp, k, STATE_NOW, k, None)
    if fn == "get_bucket":
        return lib.hammer_get_bucket(h, idp, k, ref(Bucket()))
    if fn == "delete_buckets":
        n = ctypes.c_int64()
        rc = lib.hammer_delete_buckets(h, idp, ref(n))
        assert rc != OK or n.value >= 0
        return rc
    if fn == "check_rate_at":
        rc = lib.hammer_check_rate_at(h, idp, period, 10, k, STATE_NOW, ref(dec))
    elif fn == "inspect_bucket":
        ins = Inspection()
        rc = lib.hammer_inspect_bucket(h, idp, period, 10, ref(ins))
        assert rc != OK or 0 <= ins.remaining <= 10, f"inspect_bucket: remaining {ins.remaining} of 10"
        return rc
    elif fn == "hit_at":
        rc = lib.hammer_hit_at(h, idp, ref(lim), k, STATE_NOW, ref(dec))
    elif fn == "peek_at":
        rc = lib.hammer_peek_at(h, idp, ref(lim), STATE_NOW, ref(dec))
    else:
        st_ = (ctypes.c_int * 1)()
        cid = ctypes.cast(idp, ctypes.c_char_p)
        if fn == "count_hits":
            reqs = (CountReq * 1)(CountReq(cid, k, STATE_NOW, k))
            rc = lib.hammer_count_hits(h, reqs, 1, (ctypes.c_int64 * 1)(), st_)
        elif fn == "hit_many":
            reqs = (HitReq * 1)(HitReq(cid, ctypes.pointer(lim), k, STATE_NOW))
            rc = lib.hammer_hit_many(h, reqs, 1, ref(dec), st_)
        else:
            reqs = (CheckReq * 1)(CheckReq(cid, period, 10, k))
            rc = lib.hammer_check_rates(h, reqs, 1, ref(dec), st_)
        assert st_[0] == rc, f"{fn}: the call's status {rc} is its only request's {st_[0]}"
    assert rc != OK or (dec.allowed in (0, 1) and dec.degraded == 0), f"{fn}: allowed {dec.allowed}"
    return rc


requests = st.lists(st.tuples(ids(), ints, ints, ints, st.one_of(any_limit, sane_limits), st.booleans()),
                    max_size=12)
COMMON = dict(deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                     HealthCheck.filter_too_much])


def run(lib, examples):
    faulthandler.enable()
    live_srv = RedisServer(unix=True)
    down_srv = RedisServer()
    try:
        h = ctypes.c_void_p()
        url = live_srv.url(expiry_ms=60000, timeout_ms=10000, prefix="hyp:")
        assert lib.hammer_open(url.encode(), ctypes.byref(h)) == OK, lib.hammer_last_error()
        # Handles whose server goes away after open: the local fallback and the two error policies decide.
        down = {}
        for policy in ("fallback=local", "on_error=allow", "on_error=deny", "on_error=error"):
            dh = ctypes.c_void_p()
            u = down_srv.url(expiry_ms=60000, connect_timeout_ms=200, timeout_ms=200) + "&" + policy
            assert lib.hammer_open(u.encode(), ctypes.byref(dh)) == OK, lib.hammer_last_error()
            down[policy] = dh
        down_srv.stop()
        live = Checker(lib, (OK, INVALID))
        gone = Checker(lib, (OK, INVALID, CONNECT, TIMEOUT))
        opened = Checker(lib, (OK, INVALID, CONNECT, TIMEOUT, REDIS))
        port = live_srv.port

        url_parts = st.fixed_dictionaries({
            "scheme": st.sampled_from(["redis://", "unix://", "REDIS://", "rediss://", "redis:/", ""]),
            "user": st.one_of(st.just(""), st.text(max_size=12).map(lambda s: s + "@"),
                              st.text(max_size=8).map(lambda s: "u:" + s + "@")),
            "host": st.sampled_from([f"127.0.0.1:{port}", "127.0.0.1:1", f"[::1]:{port}", "[::1", "[zz]:1", "",
                                     f"127.0.0.1:{port}0000", "127.0.0.1:-1", "127.0.0.1:0", "127.0.0.1:x",
                                     f"127.0.0.1%3A{port}", "bad host", "127.0.0.1:65536"]),
            "path": st.one_of(st.just(""), st.sampled_from(["/", "/0", "/15", "/-1", "/x", "/1/2", "/99999999999"]),
                              st.text(max_size=10).map(lambda s: "/" + s)),
            "opts": st.lists(st.tuples(
                st.one_of(st.sampled_from(["expiry_ms", "prefix", "connect_timeout_ms", "timeout_ms", "pool_size",
                                           "clock", "on_error", "fallback", "db", "password", "user", "scan_delete"]),
                          st.text(max_size=10)),
                st.one_of(st.sampled_from([str(v) for v in EXTREMES] + ["", "local", "redis", "allow", "deny",
                                                                          "%", "%zz", "%00", "yes"]),
                          st.text(max_size=20))), max_size=6),
        })

        @settings(max_examples=examples, **COMMON)
        @given(st.one_of(url_parts, st.binary(max_size=300)))
        def urls(parts):
            if isinstance(parts, bytes):
                assume(b"://" not in parts)     # raw bytes: refused before any connection is tried
                raw = parts
            else:
                q = "&".join(f"{k}={v}" for k, v in parts["opts"])
                raw = (parts["scheme"] + parts["user"] + parts["host"] + parts["path"] + ("?" + q if q else "")).encode()
            hh = ctypes.c_void_p(7)
            rc = lib.hammer_open(raw, ctypes.byref(hh))
            # A URL that reaches the live server with credentials it does not know is refused by Redis (AUTH).
            opened.status(rc, f"hammer_open({raw!r})")
            assert (rc == OK) == bool(hh.value), f"hammer_open({raw!r}) -> {rc} with handle {hh.value}"
            if rc == OK:
                assert lib.hammer_count_hit(hh, b"hyp:url", 1, 1, 1, None) in (OK, INVALID, CONNECT, TIMEOUT)
                lib.hammer_close(hh)
            else:
                assert b"u:" not in raw or b"secret-pw" not in lib.hammer_last_error()

        @settings(max_examples=examples, **COMMON)
        @given(st.sampled_from(FUNCTIONS), ids(), ints, ints, ints, ints, st.one_of(any_limit, sane_limits),
               st.sampled_from([0, 0, 0, 0, 0, 0, 1, 2, 4, 7]))
        def single_live(fn, idb, a, b, c, d, lim, nulls):
            # nulls: bit 0 a NULL id, bit 1 a NULL out-parameter, bit 2 a NULL handle
            call_one(lib, live, None if nulls & 4 else h, fn, idb, a, b, c, d, lim, bool(nulls & 1), bool(nulls & 2))

        @settings(max_examples=examples, **COMMON)
        @given(st.sampled_from(FUNCTIONS), ids(), ints, ints, ints, ints, st.one_of(any_limit, sane_limits),
               st.sampled_from(sorted(down)))
        def single_down(fn, idb, a, b, c, d, lim, policy):
            call_one(lib, gone, down[policy], fn, idb, a, b, c, d, lim, False, False)

        @settings(max_examples=examples, **COMMON)
        @given(st.sampled_from(["count_hits", "hit_many", "check_rates"]), requests,
               st.one_of(st.none(), st.none(), st.sampled_from([-1, I64_MIN, 1000001, 2**63, 2**64 - 1])),
               st.sampled_from(["live"] + sorted(down)))
        def batches(which, reqs, n_override, where):
            batch(lib, live if where == "live" else gone, h if where == "live" else down[where], which, reqs,
                  n_override, down=where != "live")

        sh = ctypes.c_void_p()
        surl = live_srv.url(expiry_ms=60000, timeout_ms=10000, prefix=STATE_PREFIX.decode())
        assert lib.hammer_open(surl.encode(), ctypes.byref(sh)) == OK, lib.hammer_last_error()
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(live_srv.unix_path)
        raw_f = raw.makefile("rb")
        redis_answers = Checker(lib, (OK, REDIS, PROTOCOL))

        @settings(max_examples=examples, **COMMON)
        @given(st.binary(min_size=0, max_size=6), st.lists(values, min_size=len(state_keys(b"")),
                                                           max_size=len(state_keys(b""))),
               state_calls, st.sampled_from(STATE_PERIODS), valid_limits(), st.integers(0, 3))
        def redis_state(idb, chosen, fn, period, lim, k):
            assume(b"\0" not in idb)
            lim.period_ms = period
            if lim.algorithm < 2 or lim.burst == 0:
                lim.limit = max(1, min(lim.limit, 2**52 // period))
            else:
                lim.burst = max(1, min(lim.burst, 2**52 // period))
            seed_state(raw, raw_f, idb, chosen)
            rc = state_call(lib, sh, fn, idb, period, lim, k)
            redis_answers.status(rc, f"{fn} on id {idb!r} over seeded state {chosen!r}")

        for test in (urls, single_live, single_down, batches, redis_state):
            test()
            print(f"ok {test.__name__}: {examples} examples", flush=True)
        st_ = Stats(size=ctypes.sizeof(Stats))
        assert lib.hammer_stats(h, ctypes.byref(st_)) == OK
        assert st_.calls > 0 and st_.errors[0] == 0
        for dh in down.values():
            lib.hammer_close(dh)
        lib.hammer_close(h)
        lib.hammer_close(sh)
        raw.close()
    finally:
        live_srv.close()
        down_srv.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--library", default=os.environ.get("HAMMER_LIBRARY",
                                                        os.path.join(ROOT, "build", "lib", "libhammer.so")))
    args = ap.parse_args()
    run(load(args.library), args.examples)
    print("hypothesis_api: all properties held")


if __name__ == "__main__":
    main()
