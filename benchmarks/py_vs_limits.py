"""The Python binding (bindings/python/hammer.py) against the Python `limits` library on the same redis-server.

    python3 benchmarks/py_vs_limits.py PORT N TAG

Runs N allowed decisions on one fresh key per limiter, one thread, for: hammer's fixed window vs limits'
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


def rate(fn, n):
    for _ in range(50):   # warm-up: connections opened, scripts loaded
        fn("warmup")
    t0 = time.perf_counter()
    for _ in range(n):
        if not fn(KEY):
            raise SystemExit("a decision was denied")
    return n / (time.perf_counter() - t0)


def main():
    global KEY
    port, n, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    KEY = f"pybench:{tag}"
    store = storage.storage_from_string(f"redis://127.0.0.1:{port}")
    item = parse(f"{LIMIT}/minute")
    fixed, moving = strategies.FixedWindowRateLimiter(store), strategies.MovingWindowRateLimiter(store)
    fw, sw = hammer.Limit.fixed_window(LIMIT, PERIOD_MS), hammer.Limit.sliding_window(LIMIT, PERIOD_MS)
    out = {}
    with hammer.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms={PERIOD_MS}&pool_size=1") as h:
        out["hammer_fixed"] = rate(lambda k: h.hit(k + ":f", fw).allowed, n)
        out["limits_fixed"] = rate(lambda k: fixed.hit(item, k, "f"), n)
        out["hammer_moving"] = rate(lambda k: h.hit(k + ":m", sw).allowed, n)
        out["limits_moving"] = rate(lambda k: moving.hit(item, k, "m"), n)
    print(" ".join(f"{k}={v:.1f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
