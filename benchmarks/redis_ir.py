#!/usr/bin/env python3
"""Redis's instructions per decision (callgrind Ir of redis-server per script call): the deterministic counterpart
of the "redis time" rows, for a machine too busy for timings. Not part of `make bench` (valgrind makes Redis ~50x
slower: about a minute in all).

    python3 benchmarks/redis_ir.py [N]

Starts redis-server under callgrind on a free loopback port and, for each row, sends 50 warm-up calls, zeroes the
counters (callgrind_control -z), sends N calls (default 1000) pipelined with redis-py, dumps (callgrind_control -d)
and prints the Ir of the dump / N: the whole command's cost in Redis (reading and parsing it, the script, its
redis.call()s, the reply), as INFO commandstats would time it. Our scripts are lua/*.lua put together by
lua/generate.py, called with the arguments the library sends; the `limits` rows are that library's own scripts
(incr_expire.lua: FixedWindowRateLimiter; acquire_moving_window.lua: MovingWindowRateLimiter) called as it calls
them. "existing": one id (bucket) for every call; "new": a new id each call. Needs valgrind, redis-py and limits.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "lua"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import generate  # noqa: E402
import redis  # noqa: E402
import limits  # noqa: E402
from redis_server import free_port  # noqa: E402

T = 1_700_000_000_000


def limits_script(name):
    with open(os.path.join(os.path.dirname(limits.__file__), "resources", "redis", "lua_scripts", name)) as f:
        return f.read()


def rows():
    s = generate.scripts()
    d = lambda alg: [str(alg), "h", "1000000", "60000", "1000000", "1"]  # noqa: E731 - a decision's arguments
    ours = [
        ("count_hit", s["count_hit"], lambda k, i: [k + ":7", k + ":index"], lambda i: ["1", str(T + i), "60000", "7"]),
        ("check_rate", s["check_rate"], lambda k, i: [k + ":28333333", k + ":index"],
         lambda i: ["1", str(T + i), "41000", "28333333"]),
        ("fixed window", s["fixed_window"], lambda k, i: [k + ":28333333", k + ":index"], lambda i: d(0) + [str(T + i)]),
        ("sliding window", s["sliding_window"], lambda k, i: [k + ":sw", k + ":swm"], lambda i: d(1) + [str(T + i)]),
        ("token bucket", s["bucket"], lambda k, i: [k + ":tb"], lambda i: d(2) + [str(T + i)]),
        ("leaky bucket", s["bucket"], lambda k, i: [k + ":lb"], lambda i: d(3) + [str(T + i)]),
        ("GCRA", s["gcra"], lambda k, i: [k + ":gcra"], lambda i: d(4) + [str(T + i)]),
    ]
    theirs = [
        ("limits fixed", limits_script("incr_expire.lua"), lambda k, i: [k], lambda i: ["60", "1"]),
        ("limits moving", limits_script("acquire_moving_window.lua"), lambda k, i: [k],
         lambda i: [str((T + i) / 1000), "1000000", "60", "1"]),
    ]
    out = []
    for name, script, keys, args in ours + theirs:
        out.append((name + ", existing", script, lambda i, keys=keys, name=name: keys("ir:" + name, i), args))
        out.append((name + ", new", script, lambda i, keys=keys, name=name: keys(f"ir:{name}:{i}", i), args))
    per = 64
    out.append((f"count_hits x{per}, per request", s["count_hits"], None, None))
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="hammer-ir-")
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.%p", "redis-server",
                          "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(300):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)

        def ir_of_dump():
            subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True, check=True)
            newest = max(glob.glob(tmp + "/cg.*"), key=os.path.getmtime)
            with open(newest) as f:
                for line in f:
                    if line.startswith(("totals:", "summary:")):
                        return int(line.split()[1])
            raise RuntimeError("no totals in " + newest)

        def measure(script, keys, args, calls_per_request=1, requests=1):
            sha = r.script_load(script)

            def send(a, b):
                pipe = r.pipeline(transaction=False)
                for i in range(a, b):
                    k = keys(i)
                    pipe.evalsha(sha, len(k), *k, *args(i))
                pipe.execute()
            send(0, 50)
            subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True, check=True)
            send(50, 50 + n)
            return ir_of_dump() / (n * requests)

        for name, script, keys, args in rows():
            if keys is None:   # a batch: 64 count_hits of one id a call, as hammer_count_hits sends them
                m = 64
                ks = lambda i: [x for j in range(m) for x in ("ir:batch:7", "ir:batch:index")]  # noqa: E731
                av = lambda i: ["60000"] + [x for j in range(m) for x in ("7", "1", str(T + i))]  # noqa: E731
                print(f"{name:34s} {measure(script, ks, av, requests=m):9.0f} Ir", flush=True)
                continue
            print(f"{name:34s} {measure(script, keys, args):9.0f} Ir", flush=True)
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
