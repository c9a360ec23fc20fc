#!/usr/bin/env python3
"""Redis Cluster rows of BENCHMARKS.md: the same C benchmark programs on a cluster (3 masters on loopback, no
replicas, so only routing differs) and on a lone redis-server, in the same run, alternating within each round; the
figure is the median of the per-round ratios (cluster / lone).

    make lib && python3 benchmarks/cluster.py [--rounds 3]

Also prints Redis's own time per count_hit (INFO commandstats, EVALSHA usec_per_call on the lone server), from
which BENCHMARKS.md derives decisions per second per Redis core.

The batch rows run twice on the cluster: as the library sends them (one script per node and chunk on Redis 7+), and
as it sends them to a node whose version it cannot read (one script per slot, as on Redis 6.2), here through a user
whose ACL refuses INFO."""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from redis_cluster import RedisCluster  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from run import build, c_side, interleaved, prog, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    built = build()
    assert {"bench_core", "bench_batch"} <= built
    lone = RedisServer()
    cluster = RedisCluster(replicas=0)
    try:
        lone_url = lone.url(pool_size=1)
        cl_url = cluster.url(pool_size=1)
        for node in cluster.live_nodes():
            node.cli("ACL", "SETUSER", "slots", "on", ">pw", "~*", "+@all", "-info")
        slot_url = cl_url.replace("redis+cluster://", "redis+cluster://slots:pw@")
        # The first master's first slot range: a new id per call, every one on that master (the lone Redis gets the
        # same ids), which tells routing's cost from that of waking three servers in turn on a machine's few cores.
        one = "slots:%d-%d" % min(r for rs in cluster.slot_ranges().values() for r in rs)
        rows = {"single": [], "distinct": [], "one_master": [], "batch64": [], "hit64": [], "batch64_slots": [], "hit64_slots": []}
        n, nb = 4000, 6400
        for r in range(args.rounds):
            def single(u, mode, side, c):
                out = run([prog("bench_core"), "single", u, n, mode, f"cl:{os.getpid()}:{r}:{c}:{side}"])
                return out["calls"], out["seconds"]
            rate = interleaved([
                ("lone", lambda c: single(lone_url, "same", "lone", c)),
                ("cluster", lambda c: single(cl_url, "same", "cluster", c)),
                ("lone_d", lambda c: single(lone_url, "distinct", "lone_d", c)),
                ("cluster_d", lambda c: single(cl_url, "distinct", "cluster_d", c)),
                ("lone_1", lambda c: single(lone_url, one, "lone_1", c)),
                ("cluster_1", lambda c: single(cl_url, one, "cluster_1", c)),
                ("lone_b", lambda c: c_side([prog("bench_batch"), lone_url, "count", "batch", nb, 64, f"l{r}{c}"])),
                ("cluster_b", lambda c: c_side([prog("bench_batch"), cl_url, "count", "batch", nb, 64, f"c{r}{c}"])),
                ("lone_h", lambda c: c_side([prog("bench_batch"), lone_url, "hit", "batch", nb, 64, f"l{r}{c}"])),
                ("cluster_h", lambda c: c_side([prog("bench_batch"), cl_url, "hit", "batch", nb, 64, f"c{r}{c}"])),
                ("slots_b", lambda c: c_side([prog("bench_batch"), slot_url, "count", "batch", nb, 64, f"s{r}{c}"])),
                ("slots_h", lambda c: c_side([prog("bench_batch"), slot_url, "hit", "batch", nb, 64, f"s{r}{c}"])),
            ])
            rows["single"].append((rate["cluster"], rate["lone"]))
            rows["distinct"].append((rate["cluster_d"], rate["lone_d"]))
            rows["one_master"].append((rate["cluster_1"], rate["lone_1"]))
            rows["batch64"].append((rate["cluster_b"], rate["lone_b"]))
            rows["hit64"].append((rate["cluster_h"], rate["lone_h"]))
            rows["batch64_slots"].append((rate["slots_b"], rate["lone_b"]))
            rows["hit64_slots"].append((rate["slots_h"], rate["lone_h"]))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1][0]:.0f}/{v[-1][1]:.0f}" for k, v in rows.items()))
        names = {"single": "count_hit, 1 thread, same id: cluster / lone Redis (calls/s)",
                 "distinct": "count_hit, 1 thread, distinct ids: cluster / lone Redis (calls/s)",
                 "one_master": "count_hit, 1 thread, distinct ids all on one master: cluster / lone Redis (calls/s)",
                 "batch64": "count_hits, batches of 64 ids over 3 masters: cluster / lone Redis (decisions/s)",
                 "hit64": "hit_many (fixed window), batches of 64 ids over 3 masters: cluster / lone Redis (decisions/s)",
                 "batch64_slots": "count_hits, batches of 64, one script per slot (as Redis 6.2): cluster / lone Redis",
                 "hit64_slots": "hit_many, batches of 64, one script per slot (as Redis 6.2): cluster / lone Redis"}
        for k, v in rows.items():
            ratios = [a / b for a, b in v]
            print(f"| {names[k]} | {statistics.median(a for a, _ in v):.0f} | {statistics.median(b for _, b in v):.0f}"
                  f" | {statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |")
        # Redis's own time per batched request (scripts' usec over the nodes, INFO commandstats), which the
        # machine's load sways less than the rates: node scripts, slot scripts, lone Redis.
        def redis_us(servers, url, kind, tag):
            for s in servers:
                s.cli("CONFIG", "RESETSTAT")
            run([prog("bench_batch"), url, kind, "batch", 6400, 64, tag])
            usec = calls = 0
            for s in servers:
                for line in s.cli("INFO", "commandstats").decode().splitlines():
                    if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                        usec += int(line.split("usec=")[1].split(",")[0])
                        calls += int(line.split("calls=")[1].split(",")[0])
            return usec / 6400, calls / 100
        for kind in ("count", "hit"):
            per = {name: redis_us(servers, url, kind, f"us:{os.getpid()}:{kind}:{name}") for name, servers, url in
                   (("node", cluster.masters(), cl_url), ("slot", cluster.masters(), slot_url), ("lone", [lone], lone_url))}
            print(f"Redis time per request, {kind} batches of 64: " + ", ".join(
                f"{k} {us:.2f} us ({c:.1f} script calls per batch)" for k, (us, c) in per.items()))
        # Redis's time per count_hit on an existing bucket, from its own accounting.
        lone.cli("CONFIG", "RESETSTAT")
        run([prog("bench_core"), "single", lone_url, 20000, "same", f"cl:{os.getpid()}:stat"])
        stats = lone.cli("INFO", "commandstats").decode()
        line = next(x for x in stats.splitlines() if x.startswith("cmdstat_evalsha:"))
        usec = float(line.split("usec_per_call=")[1].split(",")[0])
        print(f"Redis time per count_hit (existing bucket): {usec:.2f} us -> {1e6 / usec:.0f} decisions/s per core")
    finally:
        cluster.close()
        lone.close()


if __name__ == "__main__":
    main()
