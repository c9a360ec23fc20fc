"""Fuzzing, short CI runs: the libFuzzer target of tests/fuzz (URL parser, number and key helpers, limiter models,
every exported call's arguments against a real redis-server) for FUZZ_SECONDS, and the hypothesis properties of
tests/fuzz/hypothesis_api.py through ctypes against the release library. Both run in their own process, so a crash
is reported as one. The bugs they found have regression tests here. Longer runs: `make fuzz FUZZ_SECONDS=600`, or
`python3 tests/fuzz/hypothesis_api.py --examples 20000`."""
import hashlib
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "tests", "fuzz")
CORPUS = os.path.join(FUZZ, "corpus")
FUZZ_BIN = os.path.join(ROOT, ".build-fuzz", "release", "fuzz-hammer")
FUZZ_SECONDS = int(os.environ.get("HAMMER_FUZZ_SECONDS", "20"))
HYPOTHESIS_EXAMPLES = int(os.environ.get("HAMMER_HYPOTHESIS_EXAMPLES", "200"))
sys.path.insert(0, FUZZ)


def signal_name(rc):
    return f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"


def test_seed_corpus_is_the_generated_one():
    """tests/fuzz/corpus holds exactly what make_corpus.py writes (regenerate it after changing the encoding)."""
    import make_corpus
    want = {"seed-" + hashlib.sha1(s).hexdigest()[:16]: s for s in make_corpus.seeds()}
    have = {n: open(os.path.join(CORPUS, n), "rb").read() for n in os.listdir(CORPUS) if n.startswith("seed-")}
    assert len(want) >= 200
    assert have == want
    # Every target of the fuzzer (first byte 0..6) has seeds.
    assert {s[0] for s in want.values()} == set(range(7))


@pytest.fixture(scope="module")
def fuzzer():
    r = subprocess.run(["make", "-C", ROOT, "fuzz-build"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.fail(f"make fuzz-build failed:\n{(r.stdout + r.stderr)[-6000:]}")
    return FUZZ_BIN


def test_libfuzzer_short_run(fuzzer, redis_server, tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no",
               HAMMER_FUZZ_URL=redis_server.url(expiry_ms=10000, timeout_ms=10000, prefix="fuzz:"),
               ASAN_OPTIONS="detect_leaks=1:halt_on_error=1",
               LSAN_OPTIONS=f"suppressions={ROOT}/tests/sanitize/lsan.supp")
    cmd = [fuzzer, f"-max_total_time={FUZZ_SECONDS}", "-max_len=4096", "-timeout=20", "-rss_limit_mb=4096",
           f"-artifact_prefix={tmp_path}/", "-print_final_stats=1", str(new), CORPUS]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=FUZZ_SECONDS + 240, env=env)
    out = r.stdout + r.stderr
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    assert r.returncode == 0 and not crashes, (
        f"libFuzzer found a failure ({signal_name(r.returncode)}); inputs {crashes} in {tmp_path}\n{out[-10000:]}")
    m = re.search(r"stat::number_of_executed_units:\s+(\d+)", out)
    assert m and int(m.group(1)) > 1000, out[-3000:]
    # The seeds were all read and run.
    seeds = len([n for n in os.listdir(CORPUS) if n.startswith("seed-")])
    assert re.search(rf"{seeds} files found in .*corpus", out), out[:3000]


def test_libfuzzer_reports_a_trap_as_a_crash(fuzzer, tmp_path):
    """The harness sees a Swift trap as a crash: with HAMMER_FUZZ_SELFTEST=1 the input "SELFTEST" overflows an Int64
    (as the library's trap found by fuzzing did); an ordinary input passes."""
    good, bad = tmp_path / "good-input", tmp_path / "SELFTEST-input"
    good.write_bytes(b"\x01123")
    bad.write_bytes(b"SELFTEST")
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no", HAMMER_FUZZ_SELFTEST="1")
    r = subprocess.run([fuzzer, str(good)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and re.search(r"Executed .*good-input", r.stdout + r.stderr), r.stdout + r.stderr
    r = subprocess.run([fuzzer, f"-artifact_prefix={tmp_path}/", str(bad)], capture_output=True, text=True,
                       timeout=120, env=env)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "deadly signal" in out and re.search(r"arithmetic overflow|fuzzOne", out), out[-4000:]


def test_hypothesis_properties(tmp_path):
    """Random URLs, ids of any bytes and length, extreme integers, random limits and batches through ctypes; in a
    child process so that a crash shows as one."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, os.path.join(FUZZ, "hypothesis_api.py"), "--examples",
                        str(HYPOTHESIS_EXAMPLES)], capture_output=True, text=True, timeout=600, env=env,
                       cwd=str(tmp_path))
    out = r.stdout + r.stderr
    assert r.returncode >= 0, f"the library crashed the process ({signal_name(r.returncode)}):\n{out[-10000:]}"
    assert r.returncode == 0, out[-10000:]
    for name in ("urls", "single_live", "single_down", "batches"):
        assert f"ok {name}: {HYPOTHESIS_EXAMPLES} examples" in out, out[-3000:]
    assert "all properties held" in out


# --- Regression tests for what fuzzing found -----------------------------------------------------------------------

CHILD = r"""
import ctypes, sys
sys.path.insert(0, {fuzz!r}); sys.path.insert(0, {tests!r})
import hypothesis_api as m
from redis_server import RedisServer
lib = m.load({lib!r})
with RedisServer() as s:
    h = ctypes.c_void_p()
    assert lib.hammer_open((s.url(connect_timeout_ms=200, timeout_ms=200) + "&fallback=local").encode(),
                           ctypes.byref(h)) == 0
    s.stop()
    for alg in (2, 3, 4):
        d = m.Decision()
        rc = lib.hammer_hit_at(h, b"fuzz:over", ctypes.byref(m.Limit(alg, 1, 315360000000, 0)), 10**9, 5,
                               ctypes.byref(d))
        print("alg", alg, "rc", rc, "allowed", d.allowed, "retry", d.retry_after_ms, "degraded", d.degraded,
              flush=True)
    lib.hammer_close(h)
"""


def test_fallback_local_cost_above_capacity_does_not_trap():
    """Found by fuzzing (fixed in a0c31d0): under fallback=local with Redis down, a cost above the capacity with a
    long period made the in-process model compute cost * period first and trap (SIGILL in the caller)."""
    lib = os.environ.get("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so"))
    code = CHILD.format(fuzz=FUZZ, tests=os.path.join(ROOT, "tests"), lib=lib)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{signal_name(r.returncode)}:\n{out[-4000:]}"
    got = re.findall(r"^alg (\d) rc (\d+) allowed (\d) retry (-?\d+) degraded (\d)$", r.stdout, re.M)
    assert [g[0] for g in got] == ["2", "3", "4"], out
    assert all(g[1:] == ("0", "0", "-1", "1") for g in got), out


def test_gcra_clock_step_back_keeps_counts_within_capacity(redis_server, uid):
    import hypothesis_api as m
    lib = m.load(os.environ.get("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so")))
    h = m.ctypes.c_void_p()
    assert lib.hammer_open(redis_server.url().encode(), m.ctypes.byref(h)) == 0
    try:
        lim = m.Limit(4, 1, 1000, 0)   # GCRA, 1 per second
        got = []
        for cost, now in [(1, 1), (0, 0)]:   # the second caller's clock is 1 ms behind
            d = m.Decision()
            assert lib.hammer_hit_at(h, uid.encode(), m.ctypes.byref(lim), cost, now, m.ctypes.byref(d)) == 0
            got.append((d.allowed, d.count, d.remaining))
        assert got[0] == (1, 1, 0)
        assert all(0 <= rem and count <= 1 for _a, count, rem in got), got
    finally:
        lib.hammer_close(h)
