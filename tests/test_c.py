"""The C side: runs every tests/c/*.c program (built by `make c-tests` into build/tests/) and the C example
(build/bin/example) against a real redis-server. Builds nothing itself: `make py-test` depends on `c-tests`."""
import glob
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C_TESTS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "tests", "c", "*.c")))
EXAMPLE = os.path.join(ROOT, "build", "bin", "example")
TIMEOUT = 120  # seconds; a hung program fails its test instead of hanging the suite


def binary(path):
    if not os.access(path, os.X_OK):
        pytest.fail(f"{os.path.relpath(path, ROOT)} is missing: run `make c-tests` first")
    return path


def test_there_are_c_tests():
    assert {"test_api", "test_threads", "test_procs", "test_errors"} <= set(C_TESTS)


def server_url(server, transport):
    if transport == "unix":
        return f"unix://{server.unix_path}?expiry_ms=60000"
    return server.url()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("name", C_TESTS)
def test_c_program(name, transport, redis_server):
    exe = binary(os.path.join(ROOT, "build", "tests", name))
    r = subprocess.run([exe, server_url(redis_server, transport)], capture_output=True, text=True, timeout=TIMEOUT)
    out = r.stdout + r.stderr
    failures = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0, f"{name} exited {r.returncode}:\n{out[-4000:]}"
    assert not failures, "\n".join(failures)
    assert re.search(r"^ok ", r.stdout, re.M), f"{name} printed no ok line:\n{out[-2000:]}"
    m = re.search(rf"^{name}: (\d+) checks, 0 failed$", r.stdout, re.M)
    assert m and int(m.group(1)) > 0, f"{name} printed no summary:\n{out[-2000:]}"


def run_example(args=(), env_url=None):
    env = {k: v for k, v in os.environ.items() if k != "HAMMER_URL"}
    if env_url is not None:
        env["HAMMER_URL"] = env_url
    return subprocess.run([binary(EXAMPLE), *args], capture_output=True, text=True, timeout=TIMEOUT, env=env)


def decisions(stdout):
    return re.findall(r"^\s+request\s+\d+: (allowed|denied)", stdout, re.M)


@pytest.mark.parametrize("how", ["env", "argv", "unix"])
def test_example_allows_then_denies(how, redis_server):
    if how == "env":
        r = run_example(env_url=redis_server.url())
    elif how == "argv":
        r = run_example([redis_server.url()])
    else:
        r = run_example([server_url(redis_server, "unix")])
    assert r.returncode == 0, r.stdout + r.stderr
    d = decisions(r.stdout)
    assert d, r.stdout
    assert "allowed" in d and "denied" in d, r.stdout
    # Fixed window: within one window every allowed request comes before every denied one.
    windows = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+request\s+\d+: (allowed|denied)\s+\(count (\d+) in window (-?\d+)\)", line)
        if m:
            windows.setdefault(m.group(3), []).append((m.group(1), int(m.group(2))))
    for window, hits in windows.items():
        assert [c for _, c in hits] == list(range(1, len(hits) + 1)), r.stdout
        allowed = [c for a, c in hits if a == "allowed"]
        assert allowed == list(range(1, len(allowed) + 1)), r.stdout
    assert re.search(r"bucket -?\d+: count \d+", r.stdout), r.stdout
    assert re.search(r"reset: [1-9]\d* bucket", r.stdout), r.stdout


def test_example_without_url_prints_usage():
    r = run_example()
    assert r.returncode != 0
    assert "usage" in r.stderr.lower()


def test_example_reports_errors():
    # Nothing listens on port 1: HAMMER_ERR_CONNECT (2), with the static text and the detail.
    r = run_example(["redis://127.0.0.1:1/?expiry_ms=1000&connect_timeout_ms=500"])
    assert r.returncode != 0
    assert re.search(r"hammer_open failed: .+ \(2\): .+", r.stderr), r.stderr
    r = run_example(["redis://127.0.0.1:1/"])  # no expiry_ms
    assert r.returncode != 0
    assert "expiry_ms" in r.stderr, r.stderr
