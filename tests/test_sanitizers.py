"""Sanitizers and valgrind: tests/sanitize/stress.c (threads mixing every exported call, error paths, open/close
cycles) against the library built with -sanitize=address and with -sanitize=thread, and valgrind on the C example and
the stress program with the release library; each against a real redis-server. Builds through mk/sanitize.mk
(`make build/sanitize/asan/stress`, ...); the debug Swift builds use their own scratch folders (.build-asan,
.build-tsan), so this file costs about a minute on a fresh clone."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAN = os.path.join(ROOT, "build", "sanitize")
STRESS_SECONDS = "3"
RUN_TIMEOUT = 180     # seconds; a hung program fails its test instead of hanging the suite
BUILD_TIMEOUT = 900


def make(*targets):
    """Builds make targets of mk/sanitize.mk; fails the test with the end of the log if the build fails."""
    r = subprocess.run(["make", "-C", ROOT, *targets], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if r.returncode != 0:
        pytest.fail(f"make {' '.join(targets)} failed:\n{(r.stdout + r.stderr)[-6000:]}")


def run(cmd, env=None):
    full = dict(os.environ, **(env or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=full)
    return r, r.stdout + r.stderr


def stress_summary(out):
    m = re.search(r"^stress: (\d+) calls, (\d+) open cycles, (\d+) unexpected$", out, re.M)
    assert m, f"the stress program printed no summary:\n{out[-4000:]}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def undefined_symbols(lib):
    r = subprocess.run(["nm", "-D", "--undefined-only", lib], capture_output=True, text=True, check=True)
    return r.stdout


def unix_url(server):
    return f"unix://{server.unix_path}?expiry_ms=60000"


@pytest.fixture(scope="module")
def asan_stress():
    make("build/sanitize/asan/stress")
    return os.path.join(SAN, "asan", "stress")


@pytest.fixture(scope="module")
def tsan_stress():
    make("build/sanitize/tsan/stress")
    return os.path.join(SAN, "tsan", "stress")


def test_asan_library_is_instrumented(asan_stress):
    syms = undefined_symbols(os.path.join(SAN, "asan", "lib", "libhammer.so.1"))
    assert re.search(r"\b__asan_(report|load|store)", syms), "libhammer.so of the ASan build has no ASan checks"
    # Same link as the release library: hammer_* only.
    r = subprocess.run(["nm", "-D", "--defined-only", os.path.join(SAN, "asan", "lib", "libhammer.so.1")],
                       capture_output=True, text=True, check=True)
    exported = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
    assert exported and all(s.startswith("hammer_") for s in exported), exported


MEMORY_URL = "memory://?expiry_ms=60000"


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_stress_under_address_sanitizer(asan_stress, redis_server, backend):
    env = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1",
           "LSAN_OPTIONS": f"suppressions={ROOT}/tests/sanitize/lsan.supp"}
    r, out = run([asan_stress, redis_server.url() if backend == "redis" else MEMORY_URL, STRESS_SECONDS], env)
    assert "AddressSanitizer" not in out and "LeakSanitizer" not in out, out[-8000:]
    assert r.returncode == 0, f"exit {r.returncode}:\n{out[-8000:]}"
    calls, cycles, unexpected = stress_summary(out)
    assert unexpected == 0 and calls > 1000 and cycles > 0, out[-4000:]


def test_tsan_library_is_instrumented(tsan_stress):
    syms = undefined_symbols(os.path.join(SAN, "tsan", "lib", "libhammer.so.1"))
    assert re.search(r"\b__tsan_(read|write|func_entry)", syms), "libhammer.so of the TSan build has no TSan hooks"


@pytest.mark.parametrize("backend", ["redis", "memory"])
def test_stress_under_thread_sanitizer(tsan_stress, redis_server, backend):
    env = {"TSAN_OPTIONS": f"halt_on_error=0:second_deadlock_stack=1:suppressions={ROOT}/tests/sanitize/tsan.supp"}
    r, out = run([tsan_stress, unix_url(redis_server) if backend == "redis" else MEMORY_URL, STRESS_SECONDS], env)
    assert "ThreadSanitizer" not in out, out[-12000:]
    assert r.returncode == 0, f"exit {r.returncode}:\n{out[-8000:]}"
    calls, cycles, unexpected = stress_summary(out)
    assert unexpected == 0 and calls > 1000 and cycles > 0, out[-4000:]


def test_tsan_suppressions_name_only_third_party_code():
    """Suppressions may only name code outside libhammer (hiredis, the Swift runtime), each with its reason."""
    for name in ("tsan.supp", "lsan.supp"):
        lines = open(os.path.join(ROOT, "tests", "sanitize", name)).read().splitlines()
        rules = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        for i, rule in enumerate(rules):
            assert not re.search(r"hammer|Hammer|\$s6Hammer|HammerCore", rule), f"{name}: {rule} silences our code"
        for rule in rules:
            at = lines.index(rule)
            assert at > 0 and lines[at - 1].lstrip().startswith("#"), f"{name}: {rule} has no comment above it"


def valgrind():
    exe = shutil.which("valgrind")
    if exe is None:
        pytest.fail("valgrind is not installed (apt-get install valgrind; .ci/run installs it)")
    return [exe, "--leak-check=full", "--errors-for-leak-kinds=definite", "--error-exitcode=9"]


def leak_summary(out):
    if "All heap blocks were freed" in out:
        return 0, 0
    d = re.search(r"definitely lost: ([\d,]+) bytes", out)
    i = re.search(r"indirectly lost: ([\d,]+) bytes", out)
    assert d and i, f"valgrind printed no leak summary:\n{out[-4000:]}"
    return int(d.group(1).replace(",", "")), int(i.group(1).replace(",", ""))


def possibly_lost_frames(out):
    """The stacks of "possibly lost" records; each must be inside the Swift runtime's own caches."""
    blocks = re.split(r"==\d+== \n", out)
    return [b for b in blocks if "are possibly lost" in b]


@pytest.fixture(scope="module")
def release_programs():
    make("lib", "build/bin/example", "build/sanitize/stress")


def check_valgrind(r, out):
    assert r.returncode == 0, f"valgrind exit {r.returncode} (9: memory errors or definite leaks):\n{out[-8000:]}"
    assert re.search(r"ERROR SUMMARY: 0 errors", out), out[-4000:]
    definitely, indirectly = leak_summary(out)
    assert definitely == 0 and indirectly == 0, out[-8000:]
    for block in possibly_lost_frames(out):
        # Only the Swift runtime's metadata caches (process-lifetime, interior pointers) may show as possibly lost.
        assert re.search(r"swift::|swift_", block) and "Hammer" not in block.split("swift::")[0], block


def test_valgrind_example(release_programs, redis_server):
    r, out = run(valgrind() + [os.path.join(ROOT, "build", "bin", "example"), redis_server.url()])
    check_valgrind(r, out)
    assert re.search(r"allowed", out), out[-2000:]


def test_valgrind_stress(release_programs, redis_server):
    r, out = run(valgrind() + [os.path.join(SAN, "stress"), redis_server.url(), "2"])
    check_valgrind(r, out)
    calls, cycles, unexpected = stress_summary(out)
    assert unexpected == 0 and calls > 100 and cycles > 0
