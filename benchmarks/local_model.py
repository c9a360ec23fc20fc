#!/usr/bin/env python3
"""The cost of an in-process decision (fallback=local while Redis is down; memory://) by the size of a sliding
window's log, and whether threads on distinct ids wait for each other: benchmarks/c/bench_local.c run against one
or more builds of the library, back to back in this run.

    python3 benchmarks/local_model.py [--lib NAME=DIR ...] [--sizes 1000,10000,100000,1000000] [--m 2000]
                                      [--threads 2,8] [--thread-sizes 10000] [--memory]

--lib: a library directory to measure (default: build/lib as "this"); give the reference first, e.g.
--lib before=/tmp/hammer-main/lib --lib after=build/lib. A size that would take more than --max-fill-s to fill at
the cost measured for the sizes before it is skipped (the old model fills in n^2). --thread-sizes: the sizes also run
on --threads threads, each on its own id. --memory also runs memory:// on each library that knows it.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from redis_server import RedisServer  # noqa: E402


def build(out):
    src = os.path.join(ROOT, "benchmarks", "c", "bench_local.c")
    subprocess.run(["cc", "-O2", "-o", out, src, "-I", os.path.join(ROOT, "include"), "-L",
                    os.path.join(ROOT, "build", "lib"), "-lhammer", "-lpthread"], check=True)


def parse(line):
    return dict(kv.split("=", 1) for kv in line.split())


def run(exe, lib, url, sizes, m, threads, stop=None):
    env = dict(os.environ, LD_LIBRARY_PATH=lib)
    p = subprocess.Popen([exe, url, ",".join(map(str, sizes)), str(m), threads], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows = []
    for line in p.stdout:
        if line.strip() == "ready":
            stop()
            p.stdin.write("go\n")
            p.stdin.flush()
            continue
        rows.append(parse(line))
    if p.wait() != 0:
        raise RuntimeError(f"bench_local failed on {lib}")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", action="append", default=[])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--m", type=int, default=2000)
    ap.add_argument("--threads", default="2,8", help="thread counts, comma-separated")
    ap.add_argument("--thread-sizes", default="10000", help="the sizes also run on --threads threads")
    ap.add_argument("--max-fill-s", type=float, default=120)
    ap.add_argument("--memory", action="store_true")
    a = ap.parse_args()
    libs = [tuple(x.split("=", 1)) for x in a.lib] or [("this", os.path.join(ROOT, "build", "lib"))]
    exe = "/tmp/bench_local.%d" % os.getpid()
    build(exe)
    sizes = [int(s) for s in a.sizes.split(",")]
    thread_sizes = {int(s) for s in a.thread_sizes.split(",") if s}
    print(f"load average: {os.getloadavg()}")
    try:
        for name, lib in libs:
            # Sizes one process at a time: a size whose fill would take too long (n^2) is left out.
            fill, prev = 0.0, 1
            for s in sizes:
                if fill and fill * (s / prev) ** 2 > a.max_fill_s:
                    print(f"{name} fallback=local size={s}: skipped (filling would take over {a.max_fill_s:.0f} s)")
                    continue
                server = RedisServer()
                try:
                    url = server.url(fallback="local", expiry_ms=60000)
                    rows = run(exe, lib, url, [s], a.m, a.threads if s in thread_sizes else "1", stop=server.stop)
                finally:
                    server.close()
                for r in rows:
                    if "size" in r:
                        print(f"{name} fallback=local", " ".join(f"{k}={v}" for k, v in r.items()))
                        fill, prev = float(r["fill_s"]), int(r["size"])
                    else:
                        print(f"{name} fallback=local stats:", " ".join(f"{k}={v}" for k, v in r.items()))
            for s in sizes if a.memory else []:
                try:
                    rows = run(exe, lib, "memory://?expiry_ms=60000", [s], a.m,
                               a.threads if s in thread_sizes else "1")
                except RuntimeError as e:
                    print(f"{name} memory://: {e}")
                    break
                for r in rows:
                    print(f"{name} memory://", " ".join(f"{k}={v}" for k, v in r.items()))
    finally:
        os.unlink(exe)


if __name__ == "__main__":
    main()
