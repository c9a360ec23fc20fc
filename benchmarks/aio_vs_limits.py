"""asyncio decisions per second: hammer.aio (the completions: no thread per call) against limits.aio on redis-py's
asyncio client, on the same redis-server.

    python3 benchmarks/aio_vs_limits.py PORT N TAG [CHUNKS] [TASKS...]

For each TASKS (default 1 16 64), CHUNKS rounds in which each of the four sides runs N allowed decisions spread
over TASKS coroutines on one event loop (sides take turns, order reversed every round, so the machine's load
weighs on all alike): hammer's fixed window vs limits' FixedWindowRateLimiter, and hammer's sliding window vs
limits' MovingWindowRateLimiter (both exact). The limit (10^9 per minute) is never reached. Prints one line of
key=value per TASKS: decisions per second of each side. Needs `pip install limits redis`.
"""
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so"))

import hammer  # noqa: E402
import hammer.aio  # noqa: E402
from limits import parse  # noqa: E402
from limits.aio import storage, strategies  # noqa: E402

LIMIT, PERIOD_MS = 10**9, 60_000


async def timed(fn, key, n, tasks):
    per = n // tasks

    async def worker(k):
        for _ in range(per):
            if not await fn(k):
                raise SystemExit("a decision was denied")
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(f"{key}:{t}") for t in range(tasks)))
    return time.perf_counter() - t0, per * tasks


async def main():
    port, n, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    chunks = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    task_counts = [int(a) for a in sys.argv[5:]] or [1, 16, 64]
    store = storage.RedisStorage(f"async+redis://127.0.0.1:{port}", implementation="redispy")
    item = parse(f"{LIMIT}/minute")
    fixed, moving = strategies.FixedWindowRateLimiter(store), strategies.MovingWindowRateLimiter(store)
    fw, sw = hammer.Limit.fixed_window(LIMIT, PERIOD_MS), hammer.Limit.sliding_window(LIMIT, PERIOD_MS)
    async with hammer.aio.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms={PERIOD_MS}") as h:
        async def hf(k):
            return (await h.hit(k + ":f", fw)).allowed

        async def hm(k):
            return (await h.hit(k + ":m", sw)).allowed

        async def lf(k):
            return await fixed.hit(item, k, "f")

        async def lm(k):
            return await moving.hit(item, k, "m")
        sides = [("hammer_fixed", hf), ("limits_fixed", lf), ("hammer_moving", hm), ("limits_moving", lm)]
        for _, fn in sides:   # warm-up: connections opened, scripts loaded
            await timed(fn, f"aiobench:{tag}:warmup", 256, 64)
        for tasks in task_counts:
            seconds = dict.fromkeys((name for name, _ in sides), 0.0)
            done = dict.fromkeys(seconds, 0)
            for c in range(chunks):
                for name, fn in (sides if c % 2 == 0 else sides[::-1]):
                    s, k = await timed(fn, f"aiobench:{tag}:{tasks}", n, tasks)
                    seconds[name] += s
                    done[name] += k
            print(f"tasks={tasks} " + " ".join(f"{name}={done[name] / s:.1f}" for name, s in seconds.items()),
                  flush=True)


if __name__ == "__main__":
    asyncio.run(main())
