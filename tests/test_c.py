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
    if transport == "tls":
        return server.tls_url()
    return server.url()


# Every program over plain TCP, a unix socket and TLS; test_limits reads Redis's TIME itself over a raw plaintext
# socket, so it runs over the first two only.
RUNS = [(n, t) for t in ("tcp", "unix", "tls") for n in C_TESTS if not (t == "tls" and n == "test_limits")]


@pytest.mark.parametrize("name,transport", RUNS, ids=[f"{n}-{t}" for n, t in RUNS])
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


LIMITERS = ["check_rate", "fixed window", "sliding window", "token bucket", "leaky bucket", "gcra"]
REQUEST = re.compile(r"^\s+request\s+(\d+): (allowed|denied)\s+count (\d+), remaining (\d+), retry_after_ms (-?\d+)$")


def sections(stdout):
    """{limiter name: [(allowed, count, remaining, retry_after_ms), ...]} in the order printed."""
    out, current = {}, None
    for line in stdout.splitlines():
        head = re.match(r"^([a-z_ ]+): \S", line)
        if head and head.group(1) in LIMITERS:
            current = out.setdefault(head.group(1), [])
            continue
        m = REQUEST.match(line)
        if m:
            assert current is not None, stdout
            current.append((m.group(2) == "allowed", int(m.group(3)), int(m.group(4)), int(m.group(5))))
    return out


@pytest.mark.parametrize("how", ["env", "argv", "unix", "memory"])
def test_example_allows_then_denies(how, redis_server):
    if how == "memory":   # no server at all: HAMMER_URL=memory://...
        r = run_example(env_url="memory://?expiry_ms=60000")
    elif how == "env":
        r = run_example(env_url=redis_server.url())
    elif how == "argv":
        r = run_example([redis_server.url()])
    else:
        r = run_example([server_url(redis_server, "unix")])
    assert r.returncode == 0, r.stdout + r.stderr
    d = decisions(r.stdout)
    assert d, r.stdout
    assert "allowed" in d and "denied" in d, r.stdout
    m = re.search(r"^(\d+) requests at once through each limiter, limit (\d+) per (\d+) ms", r.stdout, re.M)
    assert m, r.stdout
    requests, limit = int(m.group(1)), int(m.group(2))
    assert requests > 2 * limit, r.stdout  # a denial even if the burst straddles two windows
    got = sections(r.stdout)
    assert list(got) == LIMITERS, r.stdout  # every algorithm, each with its line on when to pick it
    for name, hits in got.items():
        assert len(hits) == requests, (name, r.stdout)
        assert hits[0] == (True, 1, limit - 1, 0), (name, r.stdout)  # a fresh client: full capacity
        for allowed, count, remaining, retry in hits:
            if allowed:
                assert retry == 0 and count + remaining == limit, (name, r.stdout)
            else:
                assert retry > 0 and remaining == 0, (name, r.stdout)  # cost 1 always fits later: never -1
        assert re.search(rf"^{name}: .+\n(  request .*\n){{{requests}}}  {sum(h[0] for h in hits)} allowed, "
                         rf"{sum(not h[0] for h in hits)} denied$", r.stdout, re.M), (name, r.stdout)
    # Hammer's check_rate counts every request, denied ones too, in its window: counts go 1, 2, 3, ... and start
    # over at 1 only in a new window; a request is allowed exactly when its count is within the limit.
    counts = [c for _, c, _, _ in got["check_rate"]]
    assert all(b == a + 1 or b == 1 for a, b in zip(counts, counts[1:])), r.stdout
    assert all(a == (c <= limit) for a, c, _, _ in got["check_rate"]), r.stdout
    # A denied hammer_hit takes nothing: a fixed window never counts past the limit.
    assert all(c <= limit for _, c, _, _ in got["fixed window"]), r.stdout
    m = re.search(r"^  inspect_bucket: count (\d+), remaining (\d+), next window in (\d+) ms$", r.stdout, re.M)
    assert m and int(m.group(1)) >= 1 and int(m.group(2)) == max(0, limit - int(m.group(1))), r.stdout
    assert 0 < int(m.group(3)) <= int(re.search(r"per (\d+) ms", r.stdout).group(1)), r.stdout
    assert re.search(r"^reset: [1-9]\d* keys deleted$", r.stdout, re.M), r.stdout
    m = re.search(r"^stats: (\d+) calls, (\d+) allowed, (\d+) denied, latency p50 (\d+) us, p99 (\d+) us$",
                  r.stdout, re.M)
    assert m, r.stdout
    calls, allowed, denied, p50, p99 = map(int, m.groups())
    assert allowed == d.count("allowed") and denied == d.count("denied"), r.stdout
    assert calls > allowed + denied, r.stdout  # inspect_bucket and the resets are calls too
    # In-process decisions (memory://) may take under a microsecond: a p50 of 0 us is a true reading there.
    assert (0 <= p50 if how == "memory" else 0 < p50) and p50 <= p99, r.stdout


def test_example_without_url_prints_usage():
    r = run_example()
    assert r.returncode != 0
    assert "usage" in r.stderr.lower()


def test_example_reports_errors():
    # Nothing listens on port 1: HAMMER_ERR_CONNECT (2), with the static text and the detail.
    r = run_example(["redis://127.0.0.1:1/?expiry_ms=1000&connect_timeout_ms=500"])
    assert r.returncode != 0
    assert re.search(r"hammer_open failed: .+ \(2\): .+", r.stderr), r.stderr
    r = run_example(["redis://127.0.0.1:1/?expiry_ms=0"])  # expiry_ms out of range
    assert r.returncode != 0
    assert "expiry_ms" in r.stderr, r.stderr


ASYNC_EXAMPLES = ["async_epoll", "async_uv"]


@pytest.mark.parametrize("transport", ["tcp", "unix"])
@pytest.mark.parametrize("name", ASYNC_EXAMPLES)
def test_async_examples_keep_ops_in_flight_and_decide_them_all(name, transport, redis_server):
    """The event-loop examples (plain epoll, libuv): 20000 hits of 100 clients, 64 in flight, each client allowed
    exactly its 50 a minute (a sliding window: every hit decided once, none lost or counted twice)."""
    exe = binary(os.path.join(ROOT, "build", "bin", name))
    r = subprocess.run([exe, server_url(redis_server, transport), "20000", "64"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(rf"^{name}: (\d+) ops, (\d+) in flight at most: (\d+) allowed, (\d+) denied, (\d+) errors$",
                  r.stdout, re.M)
    assert m, r.stdout
    ops, depth, allowed, denied, errors = map(int, m.groups())
    assert (ops, depth, allowed, denied, errors) == (20000, 64, 5000, 15000, 0), r.stdout
