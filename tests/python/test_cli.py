"""python -m hammer, run as a user runs it (a subprocess) against a real redis-server: inspect, reset, stats, bench,
--help, exit statuses, and errors that say what went wrong without a traceback or a password."""
import json
import os
import re
import subprocess
import sys

import pytest

import hammer
from redis_server import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"))
    return subprocess.run([sys.executable, "-m", "hammer", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def plain_url(server):
    """The server's URL without expiry_ms: the CLI never calls count_hit, which alone needs it."""
    return f"redis://127.0.0.1:{server.port}"


def test_help_and_usage_errors():
    r = cli("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())   # argparse wraps the epilog at the terminal's width
    for word in ("inspect", "reset", "stats", "bench", "ALGORITHM:LIMIT/PERIOD", "Exit status", "10/second"):
        assert word in text, word
    r = cli("redis://127.0.0.1:1", "inspect", "--help")
    assert r.returncode == 0 and "--window" in r.stdout and "--bucket" in r.stdout
    r = cli()
    assert r.returncode == 2 and "usage:" in r.stderr
    r = cli("redis://127.0.0.1:1", "frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = cli("redis://127.0.0.1:1", "inspect", "id")
    assert r.returncode == 2 and "one of the arguments --limit --window --bucket is required" in r.stderr
    r = cli("--version", "x")
    assert r.returncode == 0 and hammer.__version__ in r.stdout


def test_bad_limit_and_bad_url_are_usage_errors(redis_server):
    r = cli(plain_url(redis_server), "inspect", "id", "--limit", "token_bucket:10")
    assert r.returncode == 2 and "bad limit 'token_bucket:10'" in r.stderr and "Traceback" not in r.stderr
    r = cli(plain_url(redis_server), "inspect", "id", "--limit", "quantum:1/1s")
    assert r.returncode == 2 and "bad limit" in r.stderr
    r = cli(plain_url(redis_server), "inspect", "id", "--window", "sixty")
    assert r.returncode == 2 and "SCALE_MS:LIMIT" in r.stderr
    r = cli("redis://127.0.0.1:99999", "stats")
    assert r.returncode == 2 and r.stderr.startswith("hammer: bad URL") and "Traceback" not in r.stderr
    r = cli(plain_url(redis_server), "inspect", "id", "--limit", "gcra:0/1s")
    assert r.returncode == 2 and r.stderr.startswith("hammer: inspect: ") and "limit" in r.stderr


def test_unreachable_server_fails_with_status_1_and_no_password():
    port = free_port()
    r = cli(f"redis://ops:s3cr3t-pw@127.0.0.1:{port}/?password=s3cr3t-pw", "stats")
    assert r.returncode == 1
    assert r.stderr.startswith(f"hammer: cannot open redis://ops:***@127.0.0.1:{port}/?password=***:")
    assert "s3cr3t-pw" not in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert "onnect" in r.stderr


def test_inspect_and_reset(redis_server, uid, whole_minute):
    url = plain_url(redis_server)
    lim = hammer.Limit.token_bucket(10, 3_600_000, burst=10)  # refills 10 an hour: no refill during the test
    with hammer.Hammer(redis_server.url()) as h:
        for _ in range(3):
            assert h.hit(uid, lim).allowed
        h.check_rate(uid + ":w", 60_000, 5, increment=2)
        h.count_hit(uid + ":b", 7, 1_000, 4)

        r = cli(url, "inspect", uid, uid + ":other", "--limit", "token_bucket:10/1h:10")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2
        assert re.match(rf"^{re.escape(uid)}: allowed=true count=\d+ limit=10 remaining=7 retry_after_ms=0 ", lines[0])
        assert lines[1].startswith(f"{uid}:other: allowed=true") and "remaining=10" in lines[1]
        assert h.peek(uid, lim).remaining == 7, "inspect changed nothing"

        r = cli(url, "inspect", uid + ":w", "--window", "60000:5", "--json")
        assert r.returncode == 0, r.stderr
        w = json.loads(r.stdout)
        assert w["id"] == uid + ":w" and w["count"] == 2 and w["remaining"] == 3 and w["created"] > 0

        r = cli(url, "inspect", uid + ":b", uid + ":none", "--bucket", "7")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == [f"{uid}:b: bucket=7 count=4 created=1000 updated=1000",
                                         f"{uid}:none: no such bucket"]

        r = cli(url, "reset", uid, uid + ":b")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == f"{uid}: 1 keys deleted"
        assert re.match(rf"^{re.escape(uid)}:b: [12] keys deleted$", r.stdout.splitlines()[1])
        assert h.peek(uid, lim).remaining == 10 and h.get_bucket(uid + ":b", 7) is None


def test_prefix_comes_from_the_url(redis_server, uid):
    with hammer.Hammer(redis_server.url(prefix="other:")) as h:
        h.count_hit(uid, 1, 1_000)
    assert "no such bucket" in cli(plain_url(redis_server), "inspect", uid, "--bucket", "1").stdout
    r = cli(plain_url(redis_server) + "/?prefix=other:", "inspect", uid, "--bucket", "1")
    assert r.returncode == 0 and "count=1" in r.stdout


def test_stats(redis_server):
    r = cli(plain_url(redis_server), "stats", "--probes", "50", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["calls"] == 50 and sum(st["errors"].values()) == 0 and st["connections"] >= 1
    assert 0 < st["p50_us"] <= st["p99_us"] <= st["p999_us"]
    r = cli(plain_url(redis_server), "stats")
    assert r.returncode == 0 and re.search(r"^calls +100 \(0 failed\)$", r.stdout, re.M), r.stdout


def test_bench_reports_progress_and_cleans_up(redis_server):
    r = cli(plain_url(redis_server), "bench", "--seconds", "1.2", "--threads", "2", "--keys", "50",
            "--interval", "0.3", "--limit", "gcra:5/1s")
    assert r.returncode == 0, r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("bench:")]
    assert len(progress) >= 3 and all("decisions/s" in line for line in progress), r.stderr
    m = re.match(r"^(\d+) decisions/s \((\d+) in [\d.]+ s, 2 threads, 50 keys, (\d+) allowed, 0 failed", r.stdout)
    assert m, r.stdout
    rate, total, allowed = map(int, m.groups())
    assert rate > 0 and total > 0 and 0 < allowed <= total
    assert allowed <= 50 * (5 + 2 * 5), "gcra:5/1s lets at most a burst plus 1.2 s of rate per key through"
    assert redis_server.cli("KEYS", "*hammer-bench:*") == [], "the bench deletes its keys"


def test_bench_against_a_dead_server_fails():
    port = free_port()
    r = cli(f"redis://127.0.0.1:{port}", "bench", "--seconds", "0.5")
    assert r.returncode == 1 and "cannot open" in r.stderr


@pytest.mark.parametrize("args", [("--seconds", "0"), ("--threads", "0"), ("--keys", "0")])
def test_bench_bounds(redis_server, args):
    r = cli(plain_url(redis_server), "bench", *args)
    assert r.returncode == 2 and "bench:" in r.stderr


def test_takes_the_librarys_tls_urls(redis_server, uid):
    with hammer.Hammer(redis_server.url()) as h:
        h.count_hit(uid, 3, 1_000, 2)
    r = cli(redis_server.tls_url(), "inspect", uid, "--bucket", "3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{uid}: bucket=3 count=2 created=1000 updated=1000"


def test_limits_notation(redis_server, uid):
    """--limit takes the strings of hammer.parse (Flask-Limiter's and slowapi's), with the algorithm before and the
    burst after them; inspect takes several, a line each."""
    from hammer.cli import parse_limit, parse_limits
    assert parse_limit("10/second") == hammer.Limit.fixed_window(10, 1000)
    assert parse_limit("sliding_window:100 per 2 minutes") == hammer.Limit.sliding_window(100, 120_000)
    assert parse_limit("token_bucket:10/second:20") == hammer.Limit.token_bucket(10, 1000, 20)
    assert parse_limit("GCRA:5/minute") == hammer.Limit.gcra(5, 60_000)
    assert parse_limit("token_bucket:10/1s:20") == hammer.Limit.token_bucket(10, 1000, 20), "the CLI's own form"
    assert [p for p, _ in parse_limits("gcra:10/second; 1000/day")] == ["10/second", "1000/day"]
    url = plain_url(redis_server)
    with hammer.Hammer(redis_server.url()) as h:
        h.hit(uid, hammer.Limit.sliding_window(10, 3_600_000))
        r = cli(url, "inspect", uid, "--limit", "sliding_window:10/hour;1000/day", "--json")
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(row["limit_spec"], row["limit"]) for row in rows] == [("10/hour", 10), ("1000/day", 1000)]
        assert rows[0]["remaining"] == 9 and rows[0]["id"] == uid
        h.delete_buckets(uid)
    r = cli(url, "bench", "--seconds", "0.2", "--threads", "1", "--keys", "1", "--limit", "10/second;1/day")
    assert r.returncode == 2 and "give one limit here, not 2" in r.stderr
    r = cli(url, "inspect", "x", "--limit", "10/second;ten/day")
    assert r.returncode == 2 and r.stderr.startswith("hammer: inspect: bad limit") and "'ten/day'" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli(url, "inspect", "x", "--limit", "gcra:1000000/year")
    assert r.returncode == 2 and "2^52" in r.stderr
