"""The Python binding (bindings/python/hammer) against the Python `limits` library on the same redis-server.

    python3 benchmarks/py_vs_limits.py PORT N TAG [CHUNKS]

Runs CHUNKS x N allowed decisions on one fresh key per limiter, one thread, the four sides taking turns in chunks
of N (order reversed every pass, so a change of the machine's load weighs on all alike), for: hammer's fixed window vs limits'
FixedWindowRateLimiter, and hammer's sliding window vs limits' MovingWindowRateLimiter (both exact: no more than the
limit in any span of the period). The limit (10^6 per minute) is never reached, so every decision allows.
Prints one line of key=value: decisions per second of each. Needs `pip install limits redis`; benchmarks/run.py
runs it and skips the row when either library is missing.
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so"))

import hammer  # noqa: E402
from limits import parse, storage, strategies  # noqa: E402

LIMIT, PERIOD_MS = 10**6, 60_000


def timed(fn, key, n):
    t0 = time.perf_counter()
    for _ in range(n):
        if not fn(key):
            raise SystemExit("a decision was denied")
    return time.perf_counter() - t0


def main():
    port, n, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    chunks = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    key = f"pybench:{tag}"
    store = storage.storage_from_string(f"redis://127.0.0.1:{port}")
    item = parse(f"{LIMIT}/minute")
    fixed, moving = strategies.FixedWindowRateLimiter(store), strategies.MovingWindowRateLimiter(store)
    fw, sw = hammer.Limit.fixed_window(LIMIT, PERIOD_MS), hammer.Limit.sliding_window(LIMIT, PERIOD_MS)
    with hammer.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms={PERIOD_MS}&pool_size=1") as h:
        sides = [("hammer_fixed", lambda k: h.hit(k + ":f", fw).allowed),
                 ("limits_fixed", lambda k: fixed.hit(item, k, "f")),
                 ("hammer_moving", lambda k: h.hit(k + ":m", sw).allowed),
                 ("limits_moving", lambda k: moving.hit(item, k, "m"))]
        for _, fn in sides:   # warm-up: connections opened, scripts loaded
            timed(fn, "pybench:warmup", 50)
        seconds = dict.fromkeys((name for name, _ in sides), 0.0)
        for c in range(chunks):
            for name, fn in (sides if c % 2 == 0 else sides[::-1]):
                seconds[name] += timed(fn, key, n)
    print(" ".join(f"{name}={chunks * n / s:.1f}" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
