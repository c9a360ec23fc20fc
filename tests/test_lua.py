"""The Lua scripts as files (lua/*.lua): the library's constants are those files, luacheck finds nothing, each
script runs by hand with `redis-cli --eval` as its header shows, and every key a script touches is one of its KEYS
(checked on a real redis-server through MONITOR, with Redis's own COMMAND GETKEYS)."""
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

import hammer
from redis_server import encode, read_reply

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GENERATE = os.path.join(ROOT, "lua", "generate.py")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """The whole scripts, written by lua/generate.py --out."""
    out = tmp_path_factory.mktemp("lua")
    subprocess.run([sys.executable, GENERATE, "--out", str(out)], check=True)
    return out


def test_generated_swift_matches_the_lua_files():
    r = subprocess.run([sys.executable, GENERATE, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_luacheck_finds_nothing(scripts):
    luacheck = shutil.which("luacheck")
    if not luacheck:
        pytest.fail("luacheck is not installed (Debian: apt-get install lua-check; make deps installs it)")
    names = sorted(os.listdir(scripts))
    assert len(names) >= 9
    r = subprocess.run([luacheck, "--no-color", "--config", os.path.join(ROOT, ".luacheckrc"), *names],
                       cwd=scripts, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 warnings / 0 errors" in r.stdout


def examples(scripts):
    """{script: its header's `redis-cli --eval` line, as argv} for every script."""
    out = {}
    for name in sorted(os.listdir(scripts)):
        with open(os.path.join(ROOT, "lua", name)) as f:
            text = f.read()
        m = re.search(r"^--   (redis-cli --eval .*?)$((?:\n--     .*$)*)", text, re.M)
        assert m, f"lua/{name} shows no `redis-cli --eval` line"
        line = (m.group(1) + m.group(2)).replace("\\\n--    ", "")
        out[name] = shlex.split(line)
    return out


def test_every_script_runs_with_redis_cli_eval(scripts, own_redis):
    server = own_redis()
    info = server.cli("INFO", "server")
    info = info.decode() if isinstance(info, bytes) else str(info)
    major = int(re.search(r"redis_version:(\d+)", info).group(1))
    got = {}
    for name, argv in examples(scripts).items():
        assert argv[:3] == ["redis-cli", "--eval", name]
        if name.endswith("_node.lua") and major < 7:
            # Script flags (#!lua) are Redis 7's: the library sends these to 7.0+ nodes only (INFO server), and
            # one script per slot elsewhere.
            continue
        r = subprocess.run(["redis-cli", "-p", str(server.port), "--no-raw", "--eval", name, *argv[3:]],
                           cwd=scripts, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "(error)" not in r.stdout and "ERR" not in r.stdout, (name, r.stdout, r.stderr)
        got[name] = r.stdout
    # What the examples did, seen in Redis: count_hit counted once on a bucket that lives expiry_ms, indexed.
    assert server.cli("HGET", "Hammer:Redis:a:7", "count") in (b"1", b"2")
    assert got["count_hit.lua"].strip() == "(integer) 1"
    assert got["bucket.lua"].split()[:2] == ["1)", "(integer)"]


def test_count_hit_by_hand_refreshes_its_ttl_each_hit(scripts, own_redis):
    """redis-cli --eval count_hit.lua twice: the second hit restarts the TTL (Hammer's Elixir backend's rule)."""
    server = own_redis()

    def hit():
        r = subprocess.run(["redis-cli", "-p", str(server.port), "--eval", "count_hit.lua", "h:a:1", "h:a:index",
                            ",", "1", "1700000000000", "1000", "1"], cwd=scripts, capture_output=True, text=True)
        return int(r.stdout)

    assert hit() == 1
    time.sleep(1.1)
    assert int(server.cli("PTTL", "h:a:1")) < 1000
    assert hit() == 2
    assert int(server.cli("PTTL", "h:a:1")) > 1800
    assert int(server.cli("PTTL", "h:a:index")) > 1800
    assert server.cli("ZRANGE", "h:a:index", "0", "-1") == [b"1"]


def monitored(server, calls):
    """Runs calls() with MONITOR on; returns the monitored lines (bytes) once the last call's commands are seen."""
    mon = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    f = mon.makefile("rb")
    mon.sendall(encode(["MONITOR"]))
    assert read_reply(f) == "OK"
    lines, done = [], threading.Event()

    def reader():
        while not done.is_set():
            line = f.readline()
            if not line:
                return
            lines.append(line.rstrip(b"\r\n"))
            if b'"end-of-test"' in line:
                done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    calls()
    server.cli("ECHO", "end-of-test")
    assert done.wait(10)
    mon.close()
    return lines


def parse_monitor(line):
    """A MONITOR line's arguments, unescaped, and whether a script sent it."""
    m = re.match(rb'^\+?[\d.]+ \[(\d+) ([^\]]*)\] (.*)$', line)
    assert m, line
    args = [bytes(a, "latin-1").decode("unicode_escape").encode("latin-1")
            for a in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(3).decode("latin-1"))]
    return args, m.group(2) == b"lua"


def test_every_key_a_script_touches_is_in_its_keys(own_redis):
    """Every library call, with MONITOR on: the keys of each command a script sends (as COMMAND GETKEYS names
    them) are among that EVALSHA's KEYS. The one exception by design: with Redis's clock the fixed window's bucket
    is its KEYS[1] (the id's key base, or its own bucket's name up to the window: "...fw.4.1000.4.") followed by the
    window's number."""
    server = own_redis()
    algs = [hammer.Limit.fixed_window(3, 1000), hammer.Limit.sliding_window(3, 1000), hammer.Limit.token_bucket(3, 1000),
            hammer.Limit.leaky_bucket(3, 1000), hammer.Limit.gcra(3, 1000), hammer.Limit.sliding_counter(3, 1000)]

    def calls():
        for clock in ("local", "redis"):
            with hammer.Hammer(server.url(clock=clock)) as h:
                id = "k:" + clock
                h.count_hit(id, 1, 1000)
                h.count_hit(id, 1, 1001)
                h.count_hit(id, 2, 1002, 5)
                h.check_rate(id, 1000, 2)
                h.check_rate(id, 1000, 2)
                h.inspect_bucket(id, 1000, 2)
                for lim in algs:
                    for now in (None, 5000, 5001, 5002, 5003):
                        h.hit(id, lim, 1, now)
                    h.peek(id, lim)
                h.hit_many([(id + ":m", lim, 1, now) for lim in algs for now in (None, 7000)] * 3)
                for now in (None, 9000, 9001, 9002, 9003):   # several limits: every algorithm's keys in one call
                    h.hit(id + ":a", algs, 1, now)
                h.peek(id + ":a", algs)
                twice = algs + [hammer.Limit.fixed_window(4, 1000), hammer.Limit.sliding_window(5, 2000),
                                hammer.Limit.token_bucket(4, 2000), hammer.Limit.leaky_bucket(4, 2000),
                                hammer.Limit.gcra(4, 2000), hammer.Limit.sliding_counter(4, 1000)]
                for now in (None, 9000, 9001, 9002, 9003):   # limits of one algorithm: states of their own, indexed
                    h.hit(id + ":o", twice, 1, now)
                h.hit_many([(id + ":om", twice, 1, now) for now in (None, 9500)] * 3)
                h.delete_buckets(id + ":o")
                h.delete_buckets(id + ":om")
                h.hit_many([(id + ":am", algs, 1, now) for now in (None, 9500)] * 3)
                h.count_hits([(id + ":c", b, 1000 + b) for b in range(5)] * 2)
                h.check_rates([(id + ":r", 1000, 2)] * 3)
                h.delete_buckets(id)
                h.delete_buckets(id + ":c")

    lines = monitored(server, calls)
    evals, checked = 0, 0
    declared = None
    for line in lines:
        args, from_lua = parse_monitor(line)
        if not from_lua:
            if args[0].upper() in (b"EVALSHA", b"EVAL"):
                evals += 1
                declared = set(args[3:3 + int(args[2])])
            else:
                declared = None
            continue
        assert declared is not None, line
        keys = server.cli("COMMAND", "GETKEYS", *args) if args[0].upper() not in (b"TIME",) else []
        for k in keys:
            ok = k in declared or any(k.startswith(d) and k[len(d):].isdigit() and d.endswith((b":", b"."))
                                      for d in declared)
            assert ok, f"{args} touches {k!r}, not among KEYS {sorted(declared)}"
            checked += 1
    assert evals > 50 and checked > 200, (evals, checked)


def script_commands(server, call):
    """The commands the scripts sent during call(), as Redis saw them (MONITOR), upper-cased."""
    return [args[0].upper() for args, from_lua in map(parse_monitor, monitored(server, call)) if from_lua]


def test_commands_per_decision_are_the_documented_ones(own_redis):
    """BENCHMARKS.md ("Redis time per decision") lists the commands each decision sends; a change shows here."""
    server = own_redis()
    with hammer.Hammer(server.url()) as h:
        t = 1_700_000_000_000
        h.count_hit("cmd", 1, t)
        assert script_commands(server, lambda: h.count_hit("cmd", 1, t + 1)) == [b"HINCRBY", b"HSET", b"PTTL"]
        assert script_commands(server, lambda: h.count_hit("cmd:new", 1, t)) == \
            [b"HINCRBY", b"PTTL", b"PEXPIRE", b"HSET", b"TIME", b"ZADD", b"PTTL", b"PEXPIRE"]
        h.check_rate_at("cmd", 60_000, 100, t)
        assert script_commands(server, lambda: h.check_rate_at("cmd", 60_000, 100, t + 1)) == [b"HINCRBY", b"HSET"]
        fixed = hammer.Limit.fixed_window(100, 60_000)
        h.hit("cmd", fixed, 1, t)
        assert script_commands(server, lambda: h.hit("cmd", fixed, 1, t + 1)) == [b"HINCRBY", b"HSET"]
        sliding = hammer.Limit.sliding_window(100, 60_000)
        h.hit("cmd", sliding, 1, t)
        assert script_commands(server, lambda: h.hit("cmd", sliding, 1, t + 1)) == \
            [b"GET", b"ZCOUNT", b"ZADD", b"SET", b"PEXPIRE"]
        for lim in (hammer.Limit.token_bucket(100, 60_000), hammer.Limit.leaky_bucket(100, 60_000),
                    hammer.Limit.gcra(100, 60_000)):
            h.hit("cmd", lim, 1, t)
            assert script_commands(server, lambda: h.hit("cmd", lim, 1, t + 1)) == [b"GET", b"SET"], lim
        # A batch of count_hits reads Redis's clock once.
        cmds = script_commands(server, lambda: h.count_hits([("cmd", 1, t + 2)] * 4))
        assert cmds.count(b"TIME") == 1 and cmds.count(b"HINCRBY") == 4
