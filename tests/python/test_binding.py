"""The ctypes binding itself: it declares every function of include/hammer.h as the header does, lays out the structs
as the C compiler does, finds the library, maps statuses to exceptions, and never hands C a dangling or NULL pointer
it did not mean to. The raw C functions are also called with NULLs: they must return HAMMER_ERR_INVALID, not crash."""
import ctypes
import gc
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import pytest

import hammer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "include", "hammer.h")
PACKAGE = os.path.join(ROOT, "bindings", "python", "hammer")


def header_text():
    with open(HEADER) as f:
        return f.read()


def header_functions():
    """{name: (return type, [parameter types])} of every HAMMER_API declaration."""
    text = re.sub(r"/\*.*?\*/", " ", header_text(), flags=re.S)
    out = {}
    for m in re.finditer(r"HAMMER_API\s+([^;(]*?)\b(hammer_\w+)\s*\(([^)]*)\)\s*;", text):
        ret = " ".join(m.group(1).split())
        params = [" ".join(p.split()) for p in m.group(3).split(",")]
        if params == ["void"]:
            params = []
        types = [re.sub(r"\s*\b\w+$", "", p) if not p.endswith("*") else p for p in params]
        out[m.group(2)] = (ret, [" ".join(t.replace("*", " * ").split()) for t in types])
    return out


def header_defines():
    return dict(re.findall(r"#define\s+(HAMMER_\w+)\s+(\S+)", header_text()))


def header_enums():
    return {k: int(v) for k, v in re.findall(r"\b(HAMMER_\w+)\s*=\s*(-?\d+)", header_text())}


# ---------------------------------------------------------------------------------------------------------------------
# Declarations against the header
# ---------------------------------------------------------------------------------------------------------------------
def test_header_parses():
    fns = header_functions()
    assert {"hammer_open", "hammer_count_hit", "hammer_get_bucket", "hammer_delete_buckets", "hammer_close",
            "hammer_strerror", "hammer_last_error", "hammer_version"} <= set(fns)
    assert fns["hammer_count_hit"] == ("int", ["hammer_t *", "const char *", "int64_t", "int64_t", "int64_t",
                                               "int64_t *"])


def test_every_header_function_is_declared():
    fns = header_functions()
    assert set(hammer._SIGNATURES) == set(fns), "the binding declares exactly the header's functions"
    for name in fns:
        for table in (hammer.raw, hammer.checked):
            f = getattr(table, name)
            assert f.argtypes is not None, name
            assert f.restype is not ctypes.c_int or fns[name][0] == "int", name


SCALARS = {"int64_t": ctypes.c_int64, "int": ctypes.c_int, "size_t": ctypes.c_size_t, "int32_t": ctypes.c_int32}


def expected_ctype(ctype):
    """The ctypes type (or a predicate) that matches one C parameter type of the header."""
    if ctype in SCALARS:
        return lambda t: t is SCALARS[ctype]
    if ctype == "const char *":
        return lambda t: t is ctypes.c_char_p
    if ctype == "hammer_t *":
        return lambda t: t is ctypes.c_void_p
    if ctype == "hammer_t * *":
        return lambda t: getattr(t, "_type_", None) is ctypes.c_void_p
    m = re.fullmatch(r"(?:const )?(\w+) \*", ctype)
    assert m, ctype
    pointee = m.group(1)
    if pointee in SCALARS:
        return lambda t: getattr(t, "_type_", None) is SCALARS[pointee]
    return lambda t: getattr(getattr(t, "_type_", None), "__name__", None) == pointee


# Functions returning an int that is not a status (hammer_fd: a descriptor, or -1).
NOT_STATUS = {"hammer_fd"}


@pytest.mark.parametrize("name", sorted(header_functions()))
def test_signature_matches_the_header(name):
    ret, params = header_functions()[name]
    f = getattr(hammer.raw, name)
    assert len(f.argtypes) == len(params)
    for i, (ctype, py) in enumerate(zip(params, f.argtypes)):
        assert expected_ctype(ctype)(py), f"{name} parameter {i}: {ctype} declared as {py}"
    ret = " ".join(ret.replace("*", " * ").split())
    want = {"int": ctypes.c_int, "unsigned": ctypes.c_uint, "void": None, "const char *": ctypes.c_char_p,
            "size_t": ctypes.c_size_t}[ret]
    assert f.restype is want
    checked = getattr(hammer.checked, name)
    status = ret == "int" and name not in NOT_STATUS
    assert (getattr(checked, "errcheck", None) is hammer._check) == status, "status-returning functions raise"
    assert getattr(f, "errcheck", None) is None, "raw functions return the status as is"


def test_status_constants_match_the_header():
    enums = header_enums()
    for name in ("OK", "ERR_INVALID", "ERR_CONNECT", "ERR_TIMEOUT", "ERR_REDIS", "ERR_PROTOCOL", "ERR_NOMEM",
                 "ERR_INTERNAL", "FIXED_WINDOW", "SLIDING_WINDOW", "TOKEN_BUCKET", "LEAKY_BUCKET", "GCRA"):
        assert getattr(hammer, name) == enums["HAMMER_" + name], name


def test_version_matches_the_header():
    d = header_defines()
    assert hammer.version() == d["HAMMER_VERSION_STRING"].strip('"')
    assert hammer.version() == f"{d['HAMMER_VERSION_MAJOR']}.{d['HAMMER_VERSION_MINOR']}.{d['HAMMER_VERSION_PATCH']}"


def test_bucket_struct_size():
    assert ctypes.sizeof(hammer.hammer_bucket) == 56
    assert [f[0] for f in hammer.hammer_bucket._fields_] == ["bucket", "count", "created", "updated", "found",
                                                             "reserved32", "reserved"]
    assert hammer.hammer_bucket.found.offset == 32


STRUCTS = {
    "hammer_bucket": ["bucket", "count", "created", "updated", "found", "reserved32", "reserved"],
    "hammer_decision": ["allowed", "count", "limit", "remaining", "retry_after_ms", "reset_after_ms", "degraded",
                        "decided_by", "reserved"],
    "hammer_inspection": ["count", "remaining", "ms_to_next_bucket", "created", "updated", "reserved"],
    "hammer_limit": ["algorithm", "limit", "period_ms", "burst", "reserved"],
    "hammer_count_request": ["id", "bucket", "now_ms", "increment", "reserved"],
    "hammer_hit_request": ["id", "lim", "cost", "now_ms", "reserved"],
    "hammer_check_request": ["id", "scale_ms", "limit", "increment", "reserved"],
    "hammer_multi_request": ["id", "lims", "n_lims", "cost", "now_ms", "reserved"],
    "hammer_stats_t": ["size", "spin_cpus", "calls", "allowed", "denied", "errors", "reconnects", "degraded",
                       "p50_us", "p99_us", "p999_us", "connections", "cluster_moved", "cluster_ask",
                       "cluster_tryagain", "cluster_down", "cluster_map_reads", "cluster_nodes",
                       "deny_cache_hits"],
    "hammer_op": ["kind", "reserved32", "tag", "id", "lims", "n_lims", "bucket", "scale_ms", "limit", "amount",
                  "now_ms", "reserved"],
    "hammer_completion": ["tag", "status", "kind", "value", "decision", "bucket", "inspection", "reserved", "message"],
}


def test_every_header_struct_is_mirrored():
    declared = set(re.findall(r"typedef struct (hammer\w*) \{", header_text()))
    assert declared == set(STRUCTS)
    for name, fields in STRUCTS.items():
        assert [f[0] for f in getattr(hammer, name)._fields_] == fields, name


def test_struct_layouts_match_the_c_compiler(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    lines = []
    for name, fields in STRUCTS.items():
        lines.append(f'printf("{name} sizeof %zu\\n", sizeof({name}));')
        for f in fields:
            lines.append(f'printf("{name} {f} %zu\\n", offsetof({name}, {f}));')
    src = tmp_path / "layout.c"
    src.write_text("#include <stdio.h>\n#include <stddef.h>\n#include \"hammer.h\"\nint main(void) {\n"
                   + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", os.path.dirname(HEADER), "-o", str(exe), str(src)], check=True, timeout=120)
    got = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines():
        struct, what, n = line.split()
        got[(struct, what)] = int(n)
    for name, fields in STRUCTS.items():
        cls = getattr(hammer, name)
        assert ctypes.sizeof(cls) == got[(name, "sizeof")], name
        for f in fields:
            assert getattr(cls, f).offset == got[(name, f)], f"{name}.{f}"


# ---------------------------------------------------------------------------------------------------------------------
# Text functions
# ---------------------------------------------------------------------------------------------------------------------
def test_strerror_known_statuses_are_distinct():
    texts = [hammer.strerror(s) for s in range(8)]
    assert all(texts) and len(set(texts)) == 8


@pytest.mark.parametrize("status", [-1, 8, 9, 100, 2**31 - 1, -2**31])
def test_strerror_unknown_statuses_have_text(status):
    raw = hammer.raw.hammer_strerror(status)
    assert raw and raw.decode() not in [hammer.strerror(s) for s in range(1, 8)]
    assert hammer.strerror(status) == raw.decode()


def test_strerror_beyond_int_range():
    assert hammer.strerror(2**40) and hammer.strerror(-2**40) and hammer.strerror("x")


def test_last_error_is_per_thread():
    kinds = {"handle": lambda: hammer.raw.hammer_count_hit(None, b"id", 1, 1, 1, None),
             "expiry_ms": lambda: hammer.raw.hammer_open(b"redis://127.0.0.1:1/?prefix=x&expiry_ms=0",
                                                        ctypes.byref(ctypes.c_void_p()))}
    barrier = threading.Barrier(len(kinds))
    bad = []

    def work(word, fail):
        for _ in range(100):
            assert fail() == 1
            mine = hammer.last_error()
            barrier.wait(10)
            if word not in mine or hammer.last_error() != mine:
                bad.append((word, mine))
            barrier.wait(10)

    ts = [threading.Thread(target=work, args=kv) for kv in kinds.items()]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert bad == []
    fresh = []
    t = threading.Thread(target=lambda: fresh.append(hammer.last_error()))
    t.start()
    t.join(10)
    assert fresh == [""], "a thread that never failed reads \"\""


def test_exception_carries_its_threads_message():
    errors = {}

    def work(word, url):
        try:
            hammer.Hammer(url)
        except hammer.HammerError as e:
            errors[word] = e

    ts = [threading.Thread(target=work, args=("pool_size", "redis://127.0.0.1:1/?expiry_ms=1&pool_size=0")),
          threading.Thread(target=work, args=("bogus", "redis://127.0.0.1:1/?expiry_ms=1&bogus=1"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert set(errors) == {"pool_size", "bogus"}
    for word, e in errors.items():
        assert word in e.message and isinstance(e, hammer.InvalidError)


# ---------------------------------------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status,cls", [(1, hammer.InvalidError), (2, hammer.ConnectError),
                                        (3, hammer.HammerTimeout), (4, hammer.RedisError), (5, hammer.ProtocolError),
                                        (6, hammer.NoMemoryError), (7, hammer.InternalError)])
def test_status_to_exception(status, cls):
    assert issubclass(cls, hammer.HammerError) and issubclass(cls, Exception)
    assert cls.status == status
    e = hammer._error(status)
    assert type(e) is cls and e.status == status and str(e) == e.message and e.message


def test_unknown_status_is_an_internal_error():
    e = hammer._error(42)
    assert isinstance(e, hammer.InternalError) and e.status == 42 and e.message


def test_checked_call_raises_and_raw_call_returns():
    assert hammer.raw.hammer_delete_buckets(None, b"id", None) == 1
    with pytest.raises(hammer.InvalidError) as e:
        hammer.checked.hammer_delete_buckets(None, b"id", None)
    assert e.value.status == 1 and "handle" in e.value.message


# ---------------------------------------------------------------------------------------------------------------------
# The raw C functions with NULLs: HAMMER_ERR_INVALID, a message, cleared out-parameters, no crash
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def raw_handle(redis_server):
    h = ctypes.c_void_p()
    assert hammer.raw.hammer_open(redis_server.url().encode(), ctypes.byref(h)) == 0 and h.value
    yield h
    hammer.raw.hammer_close(h)


def test_open_with_nulls():
    r = hammer.raw
    out = ctypes.c_void_p(0xDEAD)
    assert r.hammer_open(None, ctypes.byref(out)) == 1
    assert out.value is None, "*out is NULL after a failed open"
    assert "config" in hammer.last_error()
    assert r.hammer_open(b"redis://127.0.0.1:1/?expiry_ms=1", None) == 1
    assert "out" in hammer.last_error()
    assert r.hammer_open(None, None) == 1
    out = ctypes.c_void_p(0xBEEF)
    assert r.hammer_open(b"redis://127.0.0.1:1/?expiry_ms=0", ctypes.byref(out)) == 1
    assert out.value is None


def test_count_hit_with_nulls(raw_handle, uid):
    r = hammer.raw
    n = ctypes.c_int64(77)
    assert r.hammer_count_hit(None, uid.encode(), 1, 1, 1, ctypes.byref(n)) == 1
    assert n.value == 0, "the count is cleared on failure"
    assert "handle" in hammer.last_error()
    assert r.hammer_count_hit(raw_handle, None, 1, 1, 1, ctypes.byref(n)) == 1
    assert "id" in hammer.last_error()
    assert r.hammer_count_hit(None, None, 1, 1, 1, None) == 1
    assert r.hammer_count_hit(raw_handle, uid.encode(), 1, 1, -1, ctypes.byref(n)) == 1
    assert "increment" in hammer.last_error()
    assert r.hammer_count_hit(raw_handle, uid.encode(), 1, 1, 2, None) == 0, "count_out may be NULL"
    assert r.hammer_count_hit(raw_handle, uid.encode(), 1, 1, 3, ctypes.byref(n)) == 0 and n.value == 5


def test_get_bucket_with_nulls(raw_handle, uid):
    r = hammer.raw
    assert r.hammer_count_hit(raw_handle, uid.encode(), 1, 1_000, 4, None) == 0
    out = hammer.hammer_bucket(bucket=9, count=9, created=9, updated=9, found=1)
    assert r.hammer_get_bucket(None, uid.encode(), 1, ctypes.byref(out)) == 1
    assert (out.count, out.created, out.updated, out.found) == (0, 0, 0, 0), "out is cleared on failure"
    assert r.hammer_get_bucket(raw_handle, None, 1, ctypes.byref(out)) == 1
    assert out.found == 0 and "id" in hammer.last_error()
    assert r.hammer_get_bucket(raw_handle, uid.encode(), 1, None) == 1
    assert "out" in hammer.last_error()
    assert r.hammer_get_bucket(None, None, 1, None) == 1
    assert r.hammer_get_bucket(raw_handle, uid.encode(), 1, ctypes.byref(out)) == 0
    assert (out.bucket, out.count, out.created, out.updated, out.found) == (1, 4, 1_000, 1_000, 1)
    assert r.hammer_get_bucket(raw_handle, uid.encode(), 2, ctypes.byref(out)) == 0
    assert (out.bucket, out.count, out.found) == (2, 0, 0), "a missing bucket: found 0, the rest 0"


def test_delete_buckets_with_nulls(raw_handle, uid):
    r = hammer.raw
    n = ctypes.c_int64(77)
    assert r.hammer_count_hit(raw_handle, uid.encode(), 1, 1, 1, None) == 0
    assert r.hammer_delete_buckets(None, uid.encode(), ctypes.byref(n)) == 1 and n.value == 0
    assert r.hammer_delete_buckets(raw_handle, None, ctypes.byref(n)) == 1 and n.value == 0
    assert r.hammer_delete_buckets(None, None, None) == 1
    assert r.hammer_delete_buckets(raw_handle, uid.encode(), None) == 0, "deleted_out may be NULL"
    assert r.hammer_delete_buckets(raw_handle, uid.encode(), ctypes.byref(n)) == 0 and n.value == 0


def test_close_null_is_a_noop():
    assert hammer.raw.hammer_close(None) is None


# ---------------------------------------------------------------------------------------------------------------------
# The Hammer class
# ---------------------------------------------------------------------------------------------------------------------
def test_bucket_is_a_named_tuple(h, uid):
    h.count_hit(uid, 5, 10, 2)
    b = h.get_bucket(uid, 5)
    assert isinstance(b, tuple) and b._fields == ("bucket", "count", "created", "updated")
    assert (b.bucket, b.count, b.created, b.updated) == (5, 2, 10, 10)


def test_close_is_idempotent_and_later_calls_raise(redis_server, uid):
    h = hammer.Hammer(redis_server.url())
    assert not h.closed
    h.close()
    h.close()
    assert h.closed
    for call in (lambda: h.count_hit(uid, 1, 1), lambda: h.get_bucket(uid, 1), lambda: h.delete_buckets(uid)):
        with pytest.raises(hammer.InvalidError) as e:
            call()
        assert "closed" in e.value.message


def test_context_manager_closes(redis_server, uid):
    with hammer.Hammer(redis_server.url()) as h:
        assert h.count_hit(uid, 1, 1) == 1
    assert h.closed
    with pytest.raises(hammer.InvalidError):
        h.count_hit(uid, 1, 1)
    with pytest.raises(RuntimeError):
        with hammer.Hammer(redis_server.url()) as h2:
            raise RuntimeError("boom")
    assert h2.closed


def test_failed_open_leaves_nothing_to_close():
    with pytest.raises(hammer.InvalidError):
        hammer.Hammer("redis://127.0.0.1:1/?expiry_ms=0")
    gc.collect()  # __del__ of the half-built object must not call hammer_close on garbage


def test_repr_shows_no_url(own_redis):
    s = own_redis(extra=["requirepass hunter2"])
    h = hammer.Hammer(f"redis://:hunter2@127.0.0.1:{s.port}/?expiry_ms=1000")
    assert "hunter2" not in repr(h) and "hunter2" not in str(vars(h))
    h.close()
    assert "closed" in repr(h)


def test_close_waits_for_calls_in_flight(redis_server, uid):
    """Threads keep calling while another closes: each call either completes or raises InvalidError."""
    h = hammer.Hammer(redis_server.url(pool_size=2))
    started = threading.Barrier(5)
    outcomes = []

    def work():
        ok = 0
        started.wait(10)
        for _ in range(100_000):
            try:
                h.count_hit(uid, 1, 1)
                ok += 1
            except hammer.InvalidError as e:
                outcomes.append(("closed", ok, e.message))
                return
            except Exception as e:  # noqa: BLE001 - reported below
                outcomes.append(("error", ok, repr(e)))
                return
        outcomes.append(("never closed", ok, ""))

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    started.wait(10)
    with hammer.Hammer(redis_server.url()) as check:
        for _ in range(1000):  # let the threads get going: at least 50 hits, at most ~10 s
            got = check.get_bucket(uid, 1)
            if got and got.count >= 50:
                break
            threading.Event().wait(0.01)
    h.close()
    for t in ts:
        t.join(60)
    assert len(outcomes) == 4 and all(o[0] == "closed" and "closed" in o[2] for o in outcomes), outcomes
    with hammer.Hammer(redis_server.url()) as check:
        assert check.get_bucket(uid, 1).count == sum(o[1] for o in outcomes), "every completed call counted"


def test_garbage_collected_handle_closes_its_connections(own_redis, uid):
    s = own_redis()

    def clients():
        return s.cli("CLIENT", "LIST").count(b"\n")

    base = clients()
    h = hammer.Hammer(s.url(pool_size=3))
    h.count_hit(uid, 1, 1)
    assert clients() == base + 1
    del h
    gc.collect()
    for _ in range(100):
        if clients() == base:
            break
        threading.Event().wait(0.02)
    assert clients() == base


# ---------------------------------------------------------------------------------------------------------------------
# Finding the library
# ---------------------------------------------------------------------------------------------------------------------
def run_python(code, env_changes, cwd=None, path=None):
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    env["PYTHONPATH"] = path or os.path.dirname(PACKAGE)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)


def test_loads_from_hammer_library(tmp_path):
    lib = tmp_path / "libhammer-copy.so"
    shutil.copy(os.path.realpath(hammer.LIBRARY_PATH), lib)
    r = run_python("import hammer; print(hammer.LIBRARY_PATH); print(hammer.version())", {"HAMMER_LIBRARY": str(lib)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(lib), hammer.version()]


def test_bad_hammer_library_is_an_import_error(tmp_path):
    r = run_python("import hammer", {"HAMMER_LIBRARY": str(tmp_path / "missing.so")})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "HAMMER_LIBRARY" in r.stderr and "missing.so" in r.stderr


def system_has_libhammer():
    """Whether the dynamic loader finds libhammer.so.1 by itself (asked in a fresh process: this one has loaded it)."""
    r = run_python("import ctypes; ctypes.CDLL('libhammer.so.1')", {"HAMMER_LIBRARY": None})
    return r.returncode == 0


def test_falls_back_to_the_system_or_the_checkout():
    r = run_python("import hammer; print(hammer.LIBRARY_PATH); print(hammer.LIBRARY_SOURCE)", {"HAMMER_LIBRARY": None})
    assert r.returncode == 0, r.stderr
    loaded, source = r.stdout.split("\n")[:2]
    if system_has_libhammer():
        assert source == "system"
    else:
        assert (loaded, source) == (os.path.join(ROOT, "build", "lib", "libhammer.so"), "checkout")


def test_nothing_found_says_what_to_do(tmp_path):
    if system_has_libhammer():
        pytest.skip("a libhammer is installed on this system")
    shutil.copytree(PACKAGE, tmp_path / "hammer", ignore=shutil.ignore_patterns("_lib", "__pycache__"))
    r = run_python("import hammer", {"HAMMER_LIBRARY": None, "LD_LIBRARY_PATH": None}, path=str(tmp_path))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "make lib" in r.stderr and "HAMMER_LIBRARY" in r.stderr
