#!/usr/bin/env python3
"""Benchmarks of libhammer (issue 5): every figure is a RATIO against a reference measured on the same
redis-server in the same run, the median of several rounds (reference and ours alternate within each round).

    make bench                      # = make lib && python3 benchmarks/run.py
    python3 benchmarks/run.py --rounds 3 --only single,memory     # a subset, fewer rounds
    python3 benchmarks/run.py --no-publish                          # only benchmarks/out/, commits nothing

Setup (once; benchmarks are not run by CI):
    apt-get install -y redis-server redis-tools valgrind libhiredis-dev     # redis-benchmark is in redis-tools
    pip install matplotlib limits redis     # chart; the Python `limits` comparison (rows skipped without them)

Writes benchmarks/out/results-<time>.csv (git-ignored) and, unless --no-publish, benchmarks/results.csv (a copy of
the latest), benchmarks/results.png (the chart) and the results section of BENCHMARKS.md (table + machine).

Layout, for whoever adds a benchmark: one function per group, `bench_*(ctx)` returning a list of Row; the groups
run in the order of GROUPS. The calls that were still missing from the API when this was written are behind
`hook_*` functions that check the header and the library at run time (`api_has`) and print "skipped (not in the
API yet)" until they are there, so they start working without edits.
"""
import argparse
import csv
import datetime
import hashlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
BIN = os.path.join(OUT, "bin")
LIBDIR = os.path.join(ROOT, "build", "lib")
LIB = os.path.join(LIBDIR, "libhammer.so")
HEADER = os.path.join(ROOT, "include", "hammer.h")
DOC = os.path.join(ROOT, "BENCHMARKS.md")

sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("HAMMER_LIBRARY", LIB)

from redis_server import RedisServer  # noqa: E402

SKIPPED_API = "skipped (not in the API yet)"
PREFIX = "Hammer:Redis:"
EXPIRY_MS = 60_000


# ---------------------------------------------------------------------------------------------------------------
# Rows and ratios
# ---------------------------------------------------------------------------------------------------------------

class Row:
    """One line of the table. `ours` and `ref` are per-round values; the ratio is the median of the per-round
    ratios ours/ref (paired, so a slow moment of the shared machine hits both sides of a round alike).
    `higher`: True when a higher ratio is better (target is a minimum), False when lower is better (a maximum),
    None for a figure without a target."""

    def __init__(self, key, name, unit, ours=(), ref=(), target=None, higher=True, note="", status=None):
        self.key, self.name, self.unit = key, name, unit
        self.ours, self.ref = list(ours), list(ref)
        self.target, self.higher, self.note = target, higher, note
        self._status = status

    @property
    def ratio(self):
        pairs = [o / r for o, r in zip(self.ours, self.ref) if r]
        return statistics.median(pairs) if pairs else None

    @property
    def spread(self):
        """Lowest and highest per-round ratio."""
        pairs = [o / r for o, r in zip(self.ours, self.ref) if r]
        return (min(pairs), max(pairs)) if pairs else None

    @property
    def status(self):
        if self._status:
            return self._status
        r = self.ratio
        if r is None:
            return "no data"
        if self.target is None or self.higher is None:
            return "info"
        ok = r >= self.target if self.higher else r <= self.target
        return "pass" if ok else "FAIL"

    def target_text(self):
        if self.target is None or self.higher is None:
            return ""
        return (">= " if self.higher else "<= ") + f"{self.target:g}"

    def cells(self):
        med = lambda v: statistics.median(v) if v else None  # noqa: E731
        return {
            "key": self.key, "benchmark": self.name, "unit": self.unit,
            "ours": fmt(med(self.ours)), "reference": fmt(med(self.ref)),
            "ratio": "" if self.ratio is None else f"{self.ratio:.3f}",
            "rounds_range": "" if self.spread is None else f"{self.spread[0]:.2f}-{self.spread[1]:.2f}",
            "target": self.target_text(), "result": self.status,
            "rounds": len(self.ours), "note": self.note,
        }


def skipped(key, name, why=SKIPPED_API, note=""):
    print(f"  {name}: {why}")
    return Row(key, name, "", status=why, note=note)


def fmt(v):
    if v is None:
        return ""
    if abs(v) >= 1000:
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.3f}"


# ---------------------------------------------------------------------------------------------------------------
# Environment: the API present now, building the C programs, running them
# ---------------------------------------------------------------------------------------------------------------

def header_declares(name):
    with open(HEADER) as f:
        return re.search(r"\b" + re.escape(name) + r"\s*\(", f.read()) is not None


_exports = None


def library_exports():
    global _exports
    if _exports is None:
        out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True, text=True).stdout
        _exports = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return _exports


def api_has(*names):
    """True when every function is declared in include/hammer.h AND exported by build/lib/libhammer.so."""
    return all(header_declares(n) and n in library_exports() for n in names)


def build():
    """Compiles benchmarks/c/*.c with -O2 against include/ and build/lib. A program whose calls are not in the API
    yet is not built (its benchmark is skipped)."""
    os.makedirs(BIN, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    needs = {  # program -> the library calls it uses
        "bench_core": ("hammer_count_hit", "hammer_delete_buckets"),
        "bench_rate": ("hammer_check_rate",),
        "bench_batch": ("hammer_count_hits", "hammer_hit_many", "hammer_hit", "hammer_count_hit"),
        "bench_deny": ("hammer_hit", "hammer_stats"),
        "bench_async": ("hammer_submit", "hammer_fd", "hammer_drain"),
    }
    built = set()
    for name, calls in needs.items():
        if not api_has(*calls):
            continue
        cmd = [cc, "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-I" + os.path.join(ROOT, "include"),
               "-o", os.path.join(BIN, name),
               os.path.join(HERE, "c", name + ".c"), "-L" + LIBDIR, "-lhammer", "-Wl,-rpath," + LIBDIR, "-lpthread"]
        subprocess.run(cmd, check=True)
        built.add(name)
    for name in ("hiredis_evalsha", "hiredis_pipeline"):   # the bare-hiredis references
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-o", os.path.join(BIN, name),
                        os.path.join(HERE, "c", name + ".c"), "-lhiredis", "-lpthread"], check=True)
        built.add(name)
    return built


def run(args, timeout=120):
    """Runs a program; returns its key=value output line as a dict of floats (text when not a number)."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(str(args[0]))} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    out = {}
    for k, v in re.findall(r"(\w+)=(\S+)", p.stdout):
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def prog(name):
    return os.path.join(BIN, name)


def redis_benchmark(port, clients, n, command=None):
    """requests/sec of `redis-benchmark -c clients -P 1 -t incr -n n -q` on the server, or of the given command
    (a list of arguments) instead of INCR."""
    what = [str(a) for a in command] if command else ["-t", "incr"]
    p = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-P", "1",
                        "-n", str(n), "-q"] + what, capture_output=True, text=True, timeout=120)
    m = re.findall(r"([\d.]+) requests per second", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError("redis-benchmark: " + (p.stderr or p.stdout)[-300:])
    return float(m[-1])


CHUNKS = 4   # alternations of the sides within one round


def interleaved(sides, chunks=CHUNKS):
    """Runs every side `chunks` times, in an order that reverses each pass (A B C, C B A, A B C, ...) so that a
    change in the shared machine's load weighs on every side alike. sides: [(name, fn(chunk) -> (calls, seconds))].
    Returns {name: calls per second over all its chunks}."""
    total = {name: [0.0, 0.0] for name, _ in sides}
    for c in range(chunks):
        for name, fn in (sides if c % 2 == 0 else sides[::-1]):
            calls, seconds = fn(c)
            total[name][0] += calls
            total[name][1] += seconds
    return {name: calls / seconds for name, (calls, seconds) in total.items()}


def incr_side(ctx, clients, n):
    """One chunk of the INCR reference: (calls, seconds)."""
    return n, n / redis_benchmark(ctx.port, clients, n)


def c_side(args):
    """One chunk of one of our C programs, from its calls= and seconds= output: (calls, seconds)."""
    out = run(args)
    return out["calls"], out["seconds"]


class Ctx:
    def __init__(self, server, rounds, quick, built):
        self.server, self.rounds, self.quick, self.built = server, rounds, quick, built
        self.port = server.port
        self.tag = str(os.getpid())

    def url(self, **opts):
        return self.server.url(**opts)

    def n(self, full, quick):
        return quick if self.quick else full


# ---------------------------------------------------------------------------------------------------------------
# 1. One thread: hammer_count_hit vs a bare INCR
# ---------------------------------------------------------------------------------------------------------------

def bench_single(ctx):
    n = ctx.n(4_000, 500)    # calls per side per chunk; CHUNKS chunks per round
    url = ctx.url(pool_size=1)
    url_sleep = ctx.url(pool_size=1, spin_us=0)
    rows = [Row("count_hit_same", "count_hit, 1 thread, same id / INCR -c 1", "calls/s", target=0.85,
                note="issue 17: blocking calls on the event-driven core must not get slower (>= 0.85 as before)"),
            Row("count_hit_distinct", "count_hit, 1 thread, distinct ids / INCR -c 1", "calls/s", target=0.85),
            Row("count_hit_same_spin0", "count_hit, 1 thread, same id, spin_us=0 (sleeping reads) / INCR -c 1",
                "calls/s", note="no polling: waits for the reply as redis-benchmark does"),
            Row("lua_floor", "floor: EVALSHA of 'return INCR' / INCR -c 1 (both redis-benchmark)", "calls/s"),
            Row("cpu_spin", "client CPU per count_hit: default (polls up to 100 us) / spin_us=0", "us/call",
                note="getrusage user+system of the calling process over the timed calls")]
    for row in rows[2:]:
        row.higher = None
    # The floor of any scripted decision: redis-benchmark running a one-call script instead of INCR.
    floor_sha = ctx.server.cli("SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])")
    floor_sha = floor_sha.decode() if isinstance(floor_sha, bytes) else floor_sha
    floor_cmd = ["EVALSHA", floor_sha, 1, "bench:floor"]
    for r in range(ctx.rounds):
        cpu = {"same": [0.0, 0], "sleep": [0.0, 0]}

        def ours(side, u, mode, c):
            out = run([prog("bench_core"), "single", u, n, mode, f"{ctx.tag}:{r}:{c}:{side}"])
            if side in cpu:
                cpu[side][0] += out["cpu_us_per_call"] * out["calls"]
                cpu[side][1] += out["calls"]
            return out["calls"], out["seconds"]
        rate = interleaved([
            ("incr", lambda c: incr_side(ctx, 1, n)),
            ("floor", lambda c: (n, n / redis_benchmark(ctx.port, 1, n, floor_cmd))),
            ("same", lambda c: ours("same", url, "same", c)),
            ("distinct", lambda c: ours("distinct", url, "distinct", c)),
            ("sleep", lambda c: ours("sleep", url_sleep, "same", c)),
        ])
        for row, side in zip(rows, ("same", "distinct", "sleep", "floor")):
            row.ours.append(rate[side])
            row.ref.append(rate["incr"])
        cpu_us = {k: v / max(1, m) for k, (v, m) in cpu.items()}
        rows[4].ours.append(cpu_us["same"])
        rows[4].ref.append(cpu_us["sleep"])
        print(f"  round {r + 1}: INCR {rate['incr']:.0f}/s, EVALSHA 'return INCR' {rate['floor']:.0f}/s, "
              f"same id {rate['same']:.0f}/s ({cpu_us['same']:.1f} us CPU), distinct ids {rate['distinct']:.0f}/s, "
              f"same id with spin_us=0 {rate['sleep']:.0f}/s ({cpu_us['sleep']:.1f} us CPU)")
    return rows


def commandstat_usec(ctx, command):
    """usec_per_call of one command in INFO commandstats (Redis's own time, without the network)."""
    info = ctx.server.cli("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else str(info)
    m = re.search(r"^cmdstat_" + command + r":.*?usec_per_call=([\d.]+)", info, re.M)
    if not m:
        raise RuntimeError(f"no cmdstat_{command} in INFO commandstats")
    return float(m.group(1))


def bench_server_time(ctx):
    """Where a single call's time goes: Redis's own time per count_hit EVALSHA (INFO commandstats, the script's
    redis.call()s included) vs per INCR. No target: it explains the ceiling of batches, which save round trips but
    not Redis's work."""
    n = ctx.n(2_000, 500)
    url = ctx.url(pool_size=1)
    sides = {"same": (Row("server_us_same", "Redis time per count_hit (same id) / per INCR", "us/call"),
                      lambda tag: [prog("bench_core"), "single", url, n, "same", tag]),
             "distinct": (Row("server_us_distinct", "Redis time per count_hit (distinct ids) / per INCR", "us/call"),
                          lambda tag: [prog("bench_core"), "single", url, n, "distinct", tag])}
    if "bench_rate" in ctx.built:
        sides["check_rate"] = (Row("server_us_check_rate", "Redis time per check_rate / per INCR", "us/call"),
                               lambda tag: [prog("bench_rate"), url, n, tag])
    rows = [row for row, _ in sides.values()]
    for r in range(ctx.rounds):
        ctx.server.cli("CONFIG", "RESETSTAT")
        redis_benchmark(ctx.port, 1, n)
        incr = commandstat_usec(ctx, "incr")
        got = {}
        for name, (row, args) in sides.items():
            ctx.server.cli("CONFIG", "RESETSTAT")
            run(args(f"{ctx.tag}:srv:{r}"))
            got[name] = commandstat_usec(ctx, "evalsha")
            row.ours.append(got[name])
            row.ref.append(incr)
        print(f"  round {r + 1}: INCR {incr:.2f} us, EVALSHA " + ", ".join(f"{k} {v:.2f} us" for k, v in got.items()))
    for row in rows:
        row.higher = None
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 1d. Redis time per decision: ours vs the Python `limits` library on the same server (issue 10)
# ---------------------------------------------------------------------------------------------------------------

def redis_usec(ctx, calls, per_call=1):
    """Redis's own time (INFO commandstats, the scripts' redis.call()s included) per decision of calls(): CONFIG
    RESETSTAT, the calls, then usec of EVALSHA and EVAL over the decisions made (per_call a script call)."""
    ctx.server.cli("CONFIG", "RESETSTAT")
    calls()
    info = ctx.server.cli("INFO", "commandstats")
    info = info.decode() if isinstance(info, bytes) else str(info)
    usec = n = 0
    for cmd in ("evalsha", "eval"):
        m = re.search(r"^cmdstat_" + cmd + r":calls=(\d+),usec=(\d+)", info, re.M)
        if m:
            n, usec = n + int(m.group(1)), usec + int(m.group(2))
    if not n:
        raise RuntimeError("no script calls in INFO commandstats")
    return usec / (n * per_call)


def bench_redis_time(ctx):
    """Redis's time per decision, the cost a fleet pays on its one Redis core: count_hit (existing bucket, new id),
    check_rate, every algorithm (existing id, new id) and batches of 64, next to the Python `limits` library's
    fixed window and moving window on the same server. Lower is better: targets are maxima."""
    try:
        import hammer
        from limits import parse, storage, strategies
    except ImportError as e:
        return [skipped("redis_time", "Redis time per decision", f"skipped ({e.name} missing: pip install limits redis)")]
    n = ctx.n(2_000, 300)
    store = storage.storage_from_string(f"redis://127.0.0.1:{ctx.port}")
    item = parse("1000000/minute")
    fixed, moving = strategies.FixedWindowRateLimiter(store), strategies.MovingWindowRateLimiter(store)
    period = 60_000
    lims = {"fixed window": hammer.Limit.fixed_window(10**6, period),
            "sliding window": hammer.Limit.sliding_window(10**6, period),
            "token bucket": hammer.Limit.token_bucket(10**6, period),
            "leaky bucket": hammer.Limit.leaky_bucket(10**6, period),
            "GCRA": hammer.Limit.gcra(10**6, period)}
    big = 100_000_000_000   # a check_rate window the clock does not leave during the run
    rows, refs = [], {}
    with hammer.Hammer(ctx.url(pool_size=1, expiry_ms=period)) as h:
        def ours(kind, fresh):
            """(calls, decisions per script call) for one row; fresh: a new id (or bucket) every call."""
            def tag(r, i):
                return f"rt:{ctx.tag}:{kind}:{r}:{i}" if fresh else f"rt:{ctx.tag}:{kind}"
            if kind == "count_hit":
                return lambda r: [h.count_hit(tag(r, i), 1, 1000 + i) for i in range(n)], 1
            if kind == "check_rate":
                return lambda r: [h.check_rate(tag(r, i), big, 10**9) for i in range(n)], 1
            if kind == "count_hits x64":
                return lambda r: [h.count_hits([(tag(r, j), 1, 1000 + j) for j in range(64)])
                                  for _ in range(max(1, n // 64))], 64
            if kind == "hit_many x64":
                lim = lims["fixed window"]
                return lambda r: [h.hit_many([(tag(r, j), lim) for j in range(64)]) for _ in range(max(1, n // 64))], 64
            lim = lims[kind]
            return lambda r: [h.hit(tag(r, i), lim) for i in range(n)], 1

        def theirs(strategy, fresh):
            side = "f" if strategy is fixed else "m"     # limits names both strategies' keys alike
            def calls(r):
                for i in range(n):
                    if not strategy.hit(item, f"rt:{ctx.tag}:{r}:{side}", str(i) if fresh else "x"):
                        raise RuntimeError("limits denied a hit")
            return calls

        sides = [("count_hit", "fixed"), ("check_rate", "fixed"), ("fixed window", "fixed"),
                 ("sliding window", "moving"), ("token bucket", "fixed"), ("leaky bucket", "fixed"), ("GCRA", "fixed")]
        for fresh in (False, True):
            which = "new id" if fresh else "existing id"
            for kind, ref in sides:
                target = None
                if ref == "moving" or kind in ("count_hit", "check_rate", "fixed window"):
                    target = 0.8 if fresh and kind in ("count_hit", "check_rate", "fixed window") else 1.0
                ref_name = "FixedWindowRateLimiter" if ref == "fixed" else "MovingWindowRateLimiter"
                rows.append(Row(f"redis_us_{kind.replace(' ', '_')}_{'new' if fresh else 'existing'}",
                                f"Redis time: {kind}, {which} / limits {ref_name}, {'new' if fresh else 'existing'} key",
                                "us/decision", target=target, higher=False if target else None))
        batch_rows = {k: Row(f"redis_us_{k.split()[0]}_batch", f"Redis time per request: {k} / single {single}",
                             "us/decision", target=0.5, higher=False)
                      for k, single in (("count_hits x64", "count_hit"), ("hit_many x64", "hit (fixed window)"))}
        # Warm-up: every script loaded, connections open.
        h.count_hit("rt:warm", 1, 1)
        h.check_rate("rt:warm", big, 10**9)
        for lim in lims.values():
            h.hit("rt:warm", lim)
        h.count_hits([("rt:warm", 1, 1)])
        h.hit_many([("rt:warm", lims["fixed window"])])
        fixed.hit(item, "rt:warm:f")
        moving.hit(item, "rt:warm:m")
        for r in range(ctx.rounds):
            got = {}
            for fresh in (False, True):
                for ref in ("fixed", "moving"):
                    got[(ref, fresh)] = redis_usec(ctx, lambda: theirs(fixed if ref == "fixed" else moving, fresh)(r))
                for kind, _ in sides:
                    calls, per = ours(kind, fresh)
                    got[(kind, fresh)] = redis_usec(ctx, lambda: calls(r), per)
            for kind in batch_rows:
                calls, per = ours(kind, False)
                got[(kind, False)] = redis_usec(ctx, lambda: calls(r), per)
            i = 0
            for fresh in (False, True):
                for kind, ref in sides:
                    rows[i].ours.append(got[(kind, fresh)])
                    rows[i].ref.append(got[(ref, fresh)])
                    i += 1
            batch_rows["count_hits x64"].ours.append(got[("count_hits x64", False)])
            batch_rows["count_hits x64"].ref.append(got[("count_hit", False)])
            batch_rows["hit_many x64"].ours.append(got[("hit_many x64", False)])
            batch_rows["hit_many x64"].ref.append(got[("fixed window", False)])
            print(f"  round {r + 1}: " + ", ".join(f"{k}{' new' if f else ''} {v:.2f}" for (k, f), v in got.items())
                  + " us")
    return rows + list(batch_rows.values())


# ---------------------------------------------------------------------------------------------------------------
# 2. N threads on one handle (pool_size N) vs redis-benchmark -c N
# ---------------------------------------------------------------------------------------------------------------

def bench_threads(ctx):
    n = ctx.n(8_000, 1_000)
    sha = count_hit_sha(ctx)
    rows = []
    for threads in (2, 4, 8):
        row = Row(f"threads_{threads}", f"count_hit, {threads} threads on one handle / INCR -c {threads}",
                  "calls/s", target=0.8,
                  note="issue 17: 0.52 before the event-driven core (automatic pipelining); measured again"
                  if threads == 8 else "")
        floor = Row(f"threads_{threads}_hiredis", f"floor: hiredis EVALSHA loop, {threads} threads / INCR -c {threads}",
                    "calls/s", higher=None, note="the same script, keys and arguments from a bare hiredis loop per "
                    "thread (each its own connection): what any client of this script reaches")
        url = ctx.url(pool_size=threads)
        for r in range(ctx.rounds):
            rate = interleaved([
                ("incr", lambda c: incr_side(ctx, threads, n)),
                ("ours", lambda c: c_side([prog("bench_core"), "threads", url, threads, n])),
                ("hiredis", lambda c: c_side([prog("hiredis_evalsha"), ctx.port, sha, PREFIX, EXPIRY_MS, n, threads])),
            ])
            row.ours.append(rate["ours"])
            row.ref.append(rate["incr"])
            floor.ours.append(rate["hiredis"])
            floor.ref.append(rate["incr"])
            print(f"  {threads} threads, round {r + 1}: INCR {rate['incr']:.0f}/s, ours {rate['ours']:.0f}/s, "
                  f"hiredis EVALSHA loop {rate['hiredis']:.0f}/s")
        rows += [row, floor]
    return rows


# ---------------------------------------------------------------------------------------------------------------
# 3. Client CPU per decision: callgrind instructions of our library vs a minimal hiredis EVALSHA loop
# ---------------------------------------------------------------------------------------------------------------

def count_hit_sha(ctx):
    """The SHA1 of the count_hit script (lua/count_hit.lua put together by lua/generate.py), checked against the
    server after one hammer_count_hit (which loads it); MONITOR is the fallback."""
    sys.path.insert(0, os.path.join(ROOT, "lua"))
    import generate  # noqa: E402 - lua/generate.py
    sha = hashlib.sha1(generate.scripts()["count_hit"].encode()).hexdigest()
    run([prog("bench_core"), "cpu", ctx.url(pool_size=1), 1])
    if ctx.server.cli("SCRIPT", "EXISTS", sha) == [1]:
        return sha
    return sha_from_monitor(ctx)


def sha_from_monitor(ctx):
    """The SHA of the EVALSHA that one hammer_count_hit sends, seen through MONITOR."""
    with socket.create_connection(("127.0.0.1", ctx.port), timeout=10) as s:
        s.sendall(b"MONITOR\r\n")
        f = s.makefile("rb")
        f.readline()
        run([prog("bench_core"), "cpu", ctx.url(pool_size=1), 1])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(rb'"EVALSHA" "([0-9a-f]{40})"', f.readline(), re.I)
            if m:
                return m.group(1).decode()
    raise RuntimeError("no EVALSHA seen from hammer_count_hit")


def callgrind_ir(args):
    """Total instructions (Ir) of one program run under callgrind."""
    out = os.path.join(OUT, f"callgrind.{os.getpid()}.out")
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("callgrind: " + p.stderr[-500:])
    with open(out) as f:
        m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
    os.remove(out)
    return int(m.group(1))


def bench_cpu(ctx):
    name = "client instructions per count_hit / hiredis EVALSHA loop"
    if not shutil.which("valgrind"):
        return [skipped("cpu_per_call", name, "skipped (valgrind missing: apt-get install -y valgrind)")]
    k = ctx.n(5_000, 1_000)
    sha = count_hit_sha(ctx)
    url = ctx.url(pool_size=1)
    ours_cmd = [prog("bench_core"), "cpu", url]
    ref_cmd = [prog("hiredis_evalsha"), ctx.port, sha, PREFIX, EXPIRY_MS]
    row = Row("cpu_per_call", name, "Ir/call", target=1.3, higher=False,
              note=f"callgrind, (Ir of {k} calls - Ir of 0 calls) / {k}; same EVALSHA {sha[:8]}, keys, args")
    rounds = min(ctx.rounds, 3)   # instruction counts barely move between runs
    for r in range(rounds):
        ours = (callgrind_ir(ours_cmd + [k]) - callgrind_ir(ours_cmd + [0])) / k
        ref = (callgrind_ir(ref_cmd + [k]) - callgrind_ir(ref_cmd + [0])) / k
        row.ours.append(ours)
        row.ref.append(ref)
        print(f"  round {r + 1}: ours {ours:.0f} Ir/call, hiredis loop {ref:.0f} Ir/call")
    return [row]


# ---------------------------------------------------------------------------------------------------------------
# 4. delete_buckets with 1,000,000 unrelated keys vs an empty Redis
# ---------------------------------------------------------------------------------------------------------------

def bench_delete(ctx):
    deletes, keys = ctx.n(300, 100), ctx.n(1_000_000, 200_000)
    row = Row("delete_1m_keys", f"delete_buckets (10 buckets), {keys:,} other keys / empty Redis", "us/delete",
              target=2.0, higher=False, note=f"per round: runs empty, full, full, empty; median of {deletes // 2} deletes per run")
    url = ctx.url(pool_size=1)
    delete = lambda tag, k: run([prog("bench_core"), "delete", url, k, 10, tag])["median_us"]  # noqa: E731
    ctx.server.cli("FLUSHALL")
    for r in range(ctx.rounds):
        # empty, full, full, empty: a drift of the machine's load weighs on both sides alike
        empty1 = delete(f"{ctx.tag}:e{r}a", deletes // 2)
        ctx.server.cli("DEBUG", "POPULATE", keys, "unrelated")
        dbsize = ctx.server.cli("DBSIZE")
        full = (delete(f"{ctx.tag}:f{r}a", deletes // 2) + delete(f"{ctx.tag}:f{r}b", deletes // 2)) / 2
        ctx.server.cli("FLUSHALL")
        empty2 = delete(f"{ctx.tag}:e{r}b", deletes // 2)
        empty = (empty1 + empty2) / 2
        row.ours.append(full)
        row.ref.append(empty)
        print(f"  round {r + 1}: empty {empty:.1f} us, with {dbsize:,} keys {full:.1f} us")
    ctx.server.cli("FLUSHALL")
    return [row]


# ---------------------------------------------------------------------------------------------------------------
# 5. Redis memory per bucket, next to the seed's layout
# ---------------------------------------------------------------------------------------------------------------

def memory_usage(ctx, key):
    v = ctx.server.cli("MEMORY", "USAGE", key, "SAMPLES", "0")
    if not isinstance(v, int):
        raise RuntimeError(f"MEMORY USAGE {key}: {v!r}")
    return v


def bench_memory(ctx):
    import hammer
    now = int(time.time() * 1000)
    bucket = now // EXPIRY_MS
    rows = [Row("mem_bucket", "bucket hash written by hammer / seed's hash", "bytes"),
            Row("mem_1_bucket", "bucket + index, 1 bucket per id / seed's hash", "bytes/bucket", target=None),
            Row("mem_10_buckets", "bucket + index share, 10 buckets per id / seed's hash", "bytes/bucket")]
    with hammer.Hammer(ctx.url(pool_size=1)) as h:
        for r in range(ctx.rounds):
            seed_key = f"{PREFIX}mem:seed:{ctx.tag}:{r}:{bucket}"
            ctx.server.cli("HSET", seed_key, "count", 1, "created", now, "updated", now)
            ctx.server.cli("PEXPIRE", seed_key, EXPIRY_MS)
            seed = memory_usage(ctx, seed_key)
            one = f"mem:one:{ctx.tag}:{r}"
            h.count_hit(one, bucket, now, 1)
            b1 = memory_usage(ctx, f"{PREFIX}{one}:{bucket}")
            i1 = memory_usage(ctx, f"{PREFIX}{one}:index")
            ten = f"mem:ten:{ctx.tag}:{r}"
            for b in range(10):
                h.count_hit(ten, bucket + b, now, 1)
            b10 = sum(memory_usage(ctx, f"{PREFIX}{ten}:{bucket + b}") for b in range(10))
            i10 = memory_usage(ctx, f"{PREFIX}{ten}:index")
            for row, v in zip(rows, (b1, b1 + i1, (b10 + i10) / 10)):
                row.ours.append(v)
                row.ref.append(seed)
            print(f"  round {r + 1}: seed hash {seed} B, hammer bucket {b1} B, index of 1 bucket {i1} B, "
                  f"index of 10 buckets {i10} B")
    for row in rows:
        row.higher = None
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Hooks: calls that may not be in the API yet. Each checks the header and the library at run time.
# ---------------------------------------------------------------------------------------------------------------

def hook_check_rate(ctx):
    """TODO(issue 5): hammer_check_rate from one thread vs INCR -c 1 (target >= 0.85)."""
    name = "check_rate, 1 thread / INCR -c 1"
    if "bench_rate" not in ctx.built:
        return [skipped("check_rate", name)]
    n = ctx.n(4_000, 500)
    url = ctx.url(pool_size=1)
    row = Row("check_rate", name, "calls/s", target=0.85)
    for r in range(ctx.rounds):
        rate = interleaved([("incr", lambda c: incr_side(ctx, 1, n)),
                            ("ours", lambda c: c_side([prog("bench_rate"), url, n, f"{ctx.tag}:{r}:{c}"]))])
        row.ours.append(rate["ours"])
        row.ref.append(rate["incr"])
        print(f"  round {r + 1}: INCR {rate['incr']:.0f}/s, check_rate {rate['ours']:.0f}/s")
    return [row]


def hook_batches(ctx):
    """TODO(issue 5): batches of 64 (hammer_count_hits, hammer_hit_many) vs the same requests one call each
    (target >= 8x)."""
    names = {"count": "count_hits, batches of 64 / 64 single count_hit",
             "hit": "hit_many, batches of 64 / 64 single hit (fixed window)"}
    if "bench_batch" not in ctx.built:
        return [skipped(f"batch64_{k}", v) for k, v in names.items()]
    n = ctx.n(1_600, 320)
    url = ctx.url(pool_size=1)
    rows = []
    for kind, name in names.items():
        row = Row(f"batch64_{kind}", name, "decisions/s", target=8.0)
        for r in range(ctx.rounds):
            tag = f"{ctx.tag}:{kind}:{r}"
            rate = interleaved([
                ("single", lambda c: c_side([prog("bench_batch"), url, kind, "single", n, 64, tag])),
                ("batch", lambda c: c_side([prog("bench_batch"), url, kind, "batch", n, 64, tag])),
            ])
            row.ours.append(rate["batch"])
            row.ref.append(rate["single"])
            print(f"  {kind}, round {r + 1}: single {rate['single']:.0f}/s, batches of 64 {rate['batch']:.0f}/s")
        rows.append(row)
    return rows


def hook_python_vs_limits(ctx):
    """TODO(issue 5): the Python binding vs the Python `limits` library, fixed and moving window on the same Redis
    (target >= 2x). Needs hammer_hit in the API, Hammer.hit / Limit in the binding, and `pip install limits redis`."""
    names = {"fixed": "Python: hammer fixed window / limits FixedWindowRateLimiter",
             "moving": "Python: hammer sliding window / limits MovingWindowRateLimiter"}
    if not api_has("hammer_hit"):
        return [skipped(f"python_{k}", v) for k, v in names.items()]
    try:
        import hammer
        if not (hasattr(hammer.Hammer, "hit") and hasattr(hammer, "Limit")):
            return [skipped(f"python_{k}", v, "skipped (Hammer.hit not in the Python binding yet)")
                    for k, v in names.items()]
        import limits  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        return [skipped(f"python_{k}", v, f"skipped ({e.name} missing: pip install limits redis)")
                for k, v in names.items()]
    n = ctx.n(750, 150)   # per side per chunk; the script interleaves CHUNKS chunks itself
    rows = {k: Row(f"python_{k}", v, "decisions/s", target=2.0) for k, v in names.items()}
    for r in range(ctx.rounds):
        out = run([sys.executable, os.path.join(HERE, "py_vs_limits.py"), ctx.port, n, f"{ctx.tag}:{r}", CHUNKS])
        for k, row in rows.items():
            row.ours.append(out[f"hammer_{k}"])
            row.ref.append(out[f"limits_{k}"])
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in out.items()))
    return list(rows.values())


def hook_async_c(ctx):
    """Issue 17: one C thread keeping 64 hits in flight (hammer_submit / epoll on hammer_fd / hammer_drain) vs the
    same thread's blocking hammer_hit (target >= 5x)."""
    name = "C: 64 ops in flight (completions) / blocking hammer_hit, one thread"
    if "bench_async" not in ctx.built:
        return [skipped("async_c_64", name)]
    n = ctx.n(20_000, 4_000)
    row = Row("async_c_64", name, "decisions/s", target=5.0)
    for r in range(ctx.rounds):
        out = run([prog("bench_async"), ctx.url(), n, 64, 2])
        row.ours.append(out["async"])
        row.ref.append(out["blocking"])
        print(f"  round {r + 1}: blocking {out['blocking']:.0f}/s, 64 in flight {out['async']:.0f}/s")
    return [row]


def fixed_window_script(ctx):
    """(SHA1, path of its source) of the fixed-window limiter script that hammer_hit sends (lua/fixed_window.lua put
    together by lua/generate.py), checked against the server after blocking hammer_hit calls (bench_async's
    warm-up) loaded it: run before anything else loads it, so SCRIPT EXISTS says the library sends that SHA."""
    sys.path.insert(0, os.path.join(ROOT, "lua"))
    import generate  # noqa: E402 - lua/generate.py
    src = generate.scripts()["fixed_window"]
    sha = hashlib.sha1(src.encode()).hexdigest()
    if ctx.server.cli("SCRIPT", "EXISTS", sha) != [1]:
        run([prog("bench_async"), ctx.url(), 1, 1, 1, "both"])
        if ctx.server.cli("SCRIPT", "EXISTS", sha) != [1]:
            raise RuntimeError(f"hammer_hit did not load lua/generate.py's fixed_window script ({sha})")
    path = os.path.join(OUT, "fixed_window.lua")
    with open(path, "w") as f:
        f.write(src)
    return sha, path


def hook_async_vs_hiredis(ctx):
    """Issue 17: one C thread keeping 64 hits in flight through the completions (bench_async, its async side)
    against a bare hiredis loop keeping 64 of the same EVALSHA in flight on one connection (hiredis_pipeline.c:
    the fixed-window script hammer_hit sends, its keys and arguments), alternating in each round (target >= 0.8)."""
    name = "C: 64 ops in flight (completions) / bare hiredis pipelining the limiter script at depth 64"
    if "bench_async" not in ctx.built:
        return [skipped("async_c_64_hiredis", name)]
    n = ctx.n(20_000, 4_000)
    depth = 64
    sha, script = fixed_window_script(ctx)
    row = Row("async_c_64_hiredis", name, "decisions/s", target=0.8,
              note=f"fixed window on 64 ids, one thread each; hiredis: one connection, EVALSHA {sha[:8]}, "
                   "redisAppendCommandArgv + redisGetReply")
    url = ctx.url()
    for r in range(ctx.rounds):
        rate = interleaved([
            ("hiredis", lambda c: c_side([prog("hiredis_pipeline"), ctx.port, sha, script, PREFIX, n, depth,
                                          f"{ctx.tag}:{r}:{c}"])),
            ("ours", lambda c: c_side([prog("bench_async"), url, n, depth, 1, "async"])),
        ])
        row.ours.append(rate["ours"])
        row.ref.append(rate["hiredis"])
        print(f"  round {r + 1}: hiredis pipeline at depth {depth} {rate['hiredis']:.0f}/s, "
              f"completions at depth {depth} {rate['ours']:.0f}/s")
    return [row]


def hook_aio_vs_limits(ctx):
    """Issue 17: hammer.aio (completions) vs limits.aio on redis-py's asyncio client, 1, 16 and 64 tasks (targets
    1.5x with 1 task, 3x with 16 and 64)."""
    rows = {}
    for tasks, target in ((1, 1.5), (16, 3.0), (64, 3.0)):
        for k, v in (("fixed", "fixed window / limits.aio FixedWindow"), ("moving", "sliding window / limits.aio MovingWindow")):
            rows[(tasks, k)] = Row(f"aio_{k}_{tasks}", f"asyncio, {tasks} task(s): hammer.aio {v} (redis-py)",
                                   "decisions/s", target=target)
    if not api_has("hammer_submit"):
        return [skipped(r.key, r.name) for r in rows.values()]
    try:
        import limits  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        return [skipped(r.key, r.name, f"skipped ({e.name} missing: pip install limits redis)") for r in rows.values()]
    n = ctx.n(2_048, 512)
    for r in range(ctx.rounds):
        for tasks in (1, 16, 64):
            out = run([sys.executable, os.path.join(HERE, "aio_vs_limits.py"), ctx.port, n, f"{ctx.tag}:{r}", 2,
                       tasks], timeout=300)
            for k in ("fixed", "moving"):
                rows[(tasks, k)].ours.append(out[f"hammer_{k}"])
                rows[(tasks, k)].ref.append(out[f"limits_{k}"])
            print(f"  round {r + 1}, {tasks} task(s): " + ", ".join(
                f"{k} {v:.0f}/s" for k, v in out.items() if k != "tasks"))
    return list(rows.values())


# ---------------------------------------------------------------------------------------------------------------
# TLS: single calls over TLS vs plaintext, on one server listening on both
# ---------------------------------------------------------------------------------------------------------------

def connections_received(server):
    info = server.cli("INFO", "stats")
    info = info.decode() if isinstance(info, bytes) else info
    return int(re.search(r"total_connections_received:(\d+)", info).group(1))


def bench_tls(ctx):
    import tempfile
    from tls_certs import Certs
    n = ctx.n(4_000, 500)
    rows = [Row("tls_single", "count_hit over TLS / plaintext, 1 thread, same server", "calls/s", target=0.8,
                note="rediss:// and redis:// to one redis-server's tls-port and port"),
            Row("tls_handshakes", "TLS handshakes per count_hit after the first (connections accepted per call)",
                "per call", target=0, higher=False,
                note="every TLS connection costs one handshake; a pooled connection is reused call after call")]
    with tempfile.TemporaryDirectory(prefix="hammer-bench-tls-") as d, RedisServer(tls=Certs(d)) as server:
        plain = server.url(pool_size=1)
        tls = server.tls_url(pool_size=1)
        for r in range(ctx.rounds):
            accepted = [0, 0]

            def ours(u, c, count=False):
                before = connections_received(server) if count else 0
                out = run([prog("bench_core"), "single", u, n, "same", f"{ctx.tag}:tls:{r}:{c}"])
                if count:
                    # The bench opens one handle (one connection) and makes WARMUP + n calls on it; cli() is one more.
                    accepted[0] += connections_received(server) - before - 2
                    accepted[1] += out["calls"]
                return out["calls"], out["seconds"]
            rate = interleaved([("plain", lambda c: ours(plain, c)), ("tls", lambda c: ours(tls, c, True))])
            rows[0].ours.append(rate["tls"])
            rows[0].ref.append(rate["plain"])
            rows[1].ours.append(max(0, accepted[0]))
            rows[1].ref.append(accepted[1])
            print(f"  round {r + 1}: plaintext {rate['plain']:.0f}/s, TLS {rate['tls']:.0f}/s, "
                  f"{accepted[0]} extra TLS connections over {accepted[1]:.0f} calls")
    return rows


GROUPS = [
    ("single", "1. one thread: count_hit vs INCR", bench_single),
    ("check_rate", "1b. one thread: check_rate vs INCR", hook_check_rate),
    ("server", "1c. Redis's own time per call (INFO commandstats)", bench_server_time),
    ("redis_time", "1d. Redis time per decision vs the limits library (INFO commandstats)", bench_redis_time),
    ("threads", "2. N threads on one handle vs redis-benchmark -c N", bench_threads),
    ("batches", "batches of 64 vs single calls", hook_batches),
    ("cpu", "3. client CPU per call (callgrind)", bench_cpu),
    ("delete", "4. delete_buckets with 1M unrelated keys vs empty", bench_delete),
    ("memory", "5. Redis memory per bucket vs the seed's layout", bench_memory),
    ("python", "Python binding vs the limits library", hook_python_vs_limits),
    ("tls", "TLS: single calls over TLS vs plaintext", bench_tls),
    ("async_c", "completions: one C thread, 64 ops in flight vs blocking calls", hook_async_c),
    ("async_hiredis", "completions: one C thread, 64 ops in flight vs bare hiredis pipelining at depth 64",
     hook_async_vs_hiredis),
    ("aio", "asyncio: hammer.aio vs limits.aio (redis-py)", hook_aio_vs_limits),
]


# ---------------------------------------------------------------------------------------------------------------
# Output: table, CSV, chart, BENCHMARKS.md
# ---------------------------------------------------------------------------------------------------------------

COLUMNS = ["key", "benchmark", "unit", "ours", "reference", "ratio", "rounds_range", "target", "result", "rounds",
           "note"]


def machine(server):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    info = server.cli("INFO", "server")
    info = info.decode() if isinstance(info, bytes) else str(info)
    ver = re.search(r"redis_version:(\S+)", info)
    try:
        import hammer
        libver = hammer.version()
    except Exception:  # noqa: BLE001 - the version is decoration
        libver = "?"
    hiredis = "?"
    try:
        with open("/usr/include/hiredis/hiredis.h") as f:
            v = dict(re.findall(r"#define HIREDIS_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
            hiredis = f"{v['MAJOR']}.{v['MINOR']}.{v['PATCH']}"
    except (OSError, KeyError):
        pass
    return {
        "hiredis": hiredis,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "redis": ver.group(1) if ver else "?",
        "libhammer": libver,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def machine_line(m):
    return (f"{m['nproc']} x {m['cpu']} (nproc {m['nproc']}), Linux {m['kernel']}, redis-server {m['redis']}, "
            f"libhammer {m['libhammer']}, hiredis {m.get('hiredis', '?')}; load average at start {m['load']}; {m['date']}")


def table(rows):
    cells = [r.cells() for r in rows]
    cols = ["benchmark", "ours", "reference", "unit", "ratio", "rounds_range", "target", "result"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for c in cells:
        lines.append("| " + " | ".join(str(c[k]) for k in cols) + " |")
    return "\n".join(lines)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r.cells())


def chart(rows, m, path):
    """Two panels of horizontal bars on a log scale: rows with a target (green pass, red fail, black tick at the
    target), then the information rows (grey)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart skipped: pip install matplotlib")
        return False
    panels = [[r for r in rows if r.ratio is not None and r.status in ("pass", "FAIL")],
              [r for r in rows if r.ratio is not None and r.status not in ("pass", "FAIL")]]
    panels = [p for p in panels if p]
    if not panels:
        return False
    heights = [len(p) + 1 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 0.42 * sum(heights) + 2.2), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colors = {"pass": "#2e7d32", "FAIL": "#c62828"}
    for ax, shown in zip(axes[:, 0], panels):
        ys = list(range(len(shown)))[::-1]
        lo = 0.25
        hi = max([r.ratio for r in shown] + [r.target or 1 for r in shown] + [1]) * 1.8
        for y, r in zip(ys, shown):
            ax.barh(y, r.ratio - lo, left=lo, color=colors.get(r.status, "#78909c"), height=0.6)
            near = r.target if r.target and r.higher is not None and r.ratio < r.target < r.ratio * 1.3 else 0
            ax.text(max(r.ratio, near) * 1.04, y, f"{r.ratio:.2f}", va="center", fontsize=8)
            if r.target is not None and r.higher is not None:
                ax.plot([r.target, r.target], [y - 0.42, y + 0.42], color="black", lw=2)
        ax.set_yticks(ys)
        ax.set_yticklabels([r.name + (f"  [{r.target_text()}]" if r.target_text() else "") for r in shown],
                           fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128) if t < hi]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.axvline(1.0, color="#999999", lw=0.8, ls="--")
    axes[0, 0].set_title("libhammer benchmarks: ours / reference, median of per-round ratios (log scale)\n"
                         "green: target met, red: missed, black tick: target; grey: no target\n"
                         + machine_line(m).replace("; ", "\n", 1), fontsize=8)
    axes[-1, 0].set_xlabel("ratio ours / reference")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def update_doc(rows, m):
    begin, end = "<!-- results:begin -->", "<!-- results:end -->"
    if not os.path.exists(DOC):
        return
    with open(DOC) as f:
        text = f.read()
    if begin not in text or end not in text:
        print(f"{DOC}: no {begin} ... {end} section, not updated")
        return
    section = (f"{begin}\nMachine: {machine_line(m)}.\n\n{table(rows)}\n\n![benchmark ratios](benchmarks/results.png)\n"
               f"{end}")
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    with open(DOC, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per benchmark (default 5)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for trying the harness (figures noisy)")
    ap.add_argument("--only", default="", help="comma-separated groups: " + ",".join(g[0] for g in GROUPS))
    ap.add_argument("--no-publish", action="store_true",
                    help="write only benchmarks/out/, not results.csv, results.png and BENCHMARKS.md")
    args = ap.parse_args()
    if not os.path.exists(LIB):
        sys.exit(f"{LIB} missing: run `make lib` first")
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: apt-get install -y redis-server redis-tools")
    only = {g for g in args.only.split(",") if g}
    unknown = only - {g[0] for g in GROUPS}
    if unknown:
        sys.exit(f"unknown groups: {', '.join(sorted(unknown))}")
    os.makedirs(OUT, exist_ok=True)
    t0 = time.monotonic()
    built = build()
    rows = []
    with RedisServer() as server:
        m = machine(server)
        print("machine:", machine_line(m))
        ctx = Ctx(server, max(1, args.rounds), args.quick, built)
        for key, title, fn in GROUPS:
            if only and key not in only:
                continue
            print(f"\n{title}")
            t = time.monotonic()
            try:
                rows += fn(ctx)
            except Exception as e:  # noqa: BLE001 - one failed group must not lose the others' figures
                print(f"  FAILED: {e}")
                rows.append(Row(key, title, "", status=f"error: {str(e)[:120]}"))
            print(f"  ({time.monotonic() - t:.1f} s)")
    print()
    print(table(rows))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_csv = os.path.join(OUT, f"results-{stamp}.csv")
    write_csv(rows, out_csv)
    print(f"\nCSV: {os.path.relpath(out_csv, ROOT)}")
    png = os.path.join(OUT, f"results-{stamp}.png")
    has_chart = chart(rows, m, png)
    if not args.no_publish:
        shutil.copyfile(out_csv, os.path.join(HERE, "results.csv"))
        if has_chart:
            shutil.copyfile(png, os.path.join(HERE, "results.png"))
        update_doc(rows, m)
        print("published: benchmarks/results.csv, benchmarks/results.png, BENCHMARKS.md")
    print(f"total {time.monotonic() - t0:.0f} s")
    failed = [r for r in rows if r.status.startswith("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
