#!/usr/bin/env python3
"""Deny cache rows of BENCHMARKS.md: one id hit far over its limit (hammer_hit, fixed window, one C thread), with
deny_cache=1000 and without, alternating in the same run on one redis-server; Redis commands per decision from
INFO commandstats (every command's calls, before and after each run).

    make lib && python3 benchmarks/deny_cache.py [--rounds 3]

Two loads: "10x its limit" (N hits, LIMIT = N / 10: the first tenth pass, and each is a round trip whether cached
or not) and "abuse" (LIMIT 1: every hit after the first is denied)."""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from redis_server import RedisServer  # noqa: E402
from run import build, prog, run  # noqa: E402


def commands(server):
    """(scripts run: EVALSHA and EVAL, i.e. requests; every command, those of the scripts included), INFO's own
    calls left out."""
    scripts = total = 0
    for line in server.cli("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            n = int(line.split("calls=")[1].split(",")[0])
            total += n
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                scripts += n
    return scripts, total


def minus(a, b):
    return a[0] - b[0], a[1] - b[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=20000)
    args = ap.parse_args()
    assert "bench_deny" in build()
    server = RedisServer()
    try:
        # What opening a handle sends (PING, ...), measured with a run of 0 calls, is not a decision's.
        c0 = commands(server)
        run([prog("bench_deny"), server.url(pool_size=1), 0, 1, f"deny:{os.getpid()}:open"])
        overhead = minus(commands(server), c0)
        loads = {"10x": args.n // 10, "abuse": 1}
        rows = {(load, side): [] for load in loads for side in ("cached", "plain")}
        for r in range(args.rounds):
            for load, limit in loads.items():
                order = ("cached", "plain") if r % 2 == 0 else ("plain", "cached")
                for side in order:
                    url = server.url(pool_size=1, **({"deny_cache": 1000} if side == "cached" else {}))
                    c0 = commands(server)
                    out = run([prog("bench_deny"), url, args.n, limit, f"deny:{os.getpid()}:{r}:{load}:{side}"])
                    used = minus(minus(commands(server), c0), overhead)
                    rows[(load, side)].append((out["calls"] / out["seconds"], used[0] / out["calls"],
                                               used[1] / out["calls"], out["allowed"]))
            print(f"round {r + 1}: " + ", ".join(f"{k[0]}/{k[1]} {v[-1][0]:.0f}/s {v[-1][1]:.4f} req {v[-1][2]:.4f} cmd"
                                                  for k, v in rows.items()))
        print("| load | cached decisions/s | uncached decisions/s | ratio (rounds range) | requests (scripts) to Redis"
              " per decision, cached / uncached | all Redis commands per decision, cached / uncached | allowed |")
        for load in loads:
            c, p = rows[(load, "cached")], rows[(load, "plain")]
            ratios = [a[0] / b[0] for a, b in zip(c, p)]
            print(f"| {load} | {statistics.median(x[0] for x in c):.0f} | {statistics.median(x[0] for x in p):.0f} |"
                  f" {statistics.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}) |"
                  f" {statistics.median(x[1] for x in c):.4f} / {statistics.median(x[1] for x in p):.4f} |"
                  f" {statistics.median(x[2] for x in c):.4f} / {statistics.median(x[2] for x in p):.4f} |"
                  f" {c[0][3]:.0f} / {p[0][3]:.0f} |")
    finally:
        server.close()


if __name__ == "__main__":
    main()
