"""The sliding-window counter (HAMMER_SLIDING_COUNTER) and several limits (hammer_hit_all) on one redis-server, next
to the Python `limits` library's SlidingWindowCounterRateLimiter and MovingWindowRateLimiter on the same server.

    python3 benchmarks/sliding_counter.py PORT [N] [ROUNDS]

Redis memory per id (MEMORY USAGE of every key the id owns, after H allowed hits at one instant: H = 10, 100, 1000)
for hammer's counter and exact sliding window and limits' counter and moving window; then Redis's own time per
decision (INFO commandstats usec of EVALSHA and EVAL after CONFIG RESETSTAT, N allowed decisions, existing key and a
new key each call) for hammer's counter and limits' counter, ROUNDS rounds interleaved; and hammer_hit_all of a token
bucket and a counter against the two single hits. The limit (10^6 per minute) is never reached: every decision
allows. Prints a Markdown table. Needs `pip install limits redis`.
"""
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so"))

import hammer  # noqa: E402
from limits import parse, storage, strategies  # noqa: E402

LIMIT, PERIOD_MS = 10**6, 60_000


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def memory(port, pattern):
    """Bytes of every key matching pattern (MEMORY USAGE ... SAMPLES 0: every element counted)."""
    keys = [k for k in cli(port, "--scan", "--pattern", pattern).split("\n") if k]
    return sum(int(cli(port, "MEMORY", "USAGE", k, "SAMPLES", "0") or 0) for k in keys), len(keys)


def redis_usec(port, calls, per_call=1):
    cli(port, "CONFIG", "RESETSTAT")
    calls()
    info = cli(port, "INFO", "commandstats")
    n = usec = 0
    for cmd in ("evalsha", "eval"):
        m = re.search(r"^cmdstat_" + cmd + r":calls=(\d+),usec=(\d+)", info, re.M)
        if m:
            n, usec = n + int(m.group(1)), usec + int(m.group(2))
    return usec / (n * per_call)


def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    tag = f"swcbench{os.getpid()}"
    store = storage.storage_from_string(f"redis://127.0.0.1:{port}")
    item = parse(f"{LIMIT}/minute")
    counter, moving = strategies.SlidingWindowCounterRateLimiter(store), strategies.MovingWindowRateLimiter(store)
    ours, log = hammer.Limit.sliding_counter(LIMIT, PERIOD_MS), hammer.Limit.sliding_window(LIMIT, PERIOD_MS)
    bucket = hammer.Limit.token_bucket(LIMIT, PERIOD_MS)
    rows = []
    with hammer.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms={PERIOD_MS}&pool_size=1") as h:
        now = h.peek("warm", ours).reset_after_ms   # connection open
        for hits in (10, 100, 1000):
            # One instant for hammer (hit_at), as close as limits gets (its own clock, within one window).
            t = 1_700_000_000_000 + 1000 * hits
            for i in range(hits):
                assert h.hit(f"{tag}:c{hits}", ours, now_ms=t).allowed
                assert h.hit(f"{tag}:l{hits}", log, now_ms=t).allowed
                assert counter.hit(item, f"{tag}c{hits}")
                assert moving.hit(item, f"{tag}m{hits}")
            got = {"hammer sliding counter": memory(port, f"Hammer:Redis:{tag}:c{hits}:*"),
                   "hammer sliding window (exact log)": memory(port, f"Hammer:Redis:{tag}:l{hits}:*"),
                   "limits SlidingWindowCounter": memory(port, f"*{tag}c{hits}*"),
                   "limits MovingWindow (exact log)": memory(port, f"*{tag}m{hits}*")}
            for name, (b, k) in got.items():
                rows.append((f"Redis memory per id after {hits} hits: {name}", f"{b} B in {k} key(s)"))
            rows.append((f"  ratio hammer counter / limits counter ({hits} hits)",
                         f"{got['hammer sliding counter'][0] / got['limits SlidingWindowCounter'][0]:.2f}"))
        del now

        def ours_calls(r, fresh):
            return lambda: [h.hit(f"{tag}:t{r}:{i}" if fresh else f"{tag}:t{r}", ours) for i in range(n)]

        def theirs_calls(r, fresh):
            return lambda: [counter.hit(item, f"{tag}t{r}", str(i) if fresh else "x") for i in range(n)]

        def all_calls(r):
            return lambda: [h.hit(f"{tag}:a{r}", [bucket, ours]) for _ in range(n)]

        def two_calls(r):
            return lambda: [(h.hit(f"{tag}:b{r}", bucket), h.hit(f"{tag}:b{r}", ours)) for _ in range(n)]

        # Warm-up: scripts loaded.
        ours_calls("w", False)()
        theirs_calls("w", False)()
        all_calls("w")()
        times = {k: [] for k in ("ours", "theirs", "ours new", "theirs new", "all", "two")}
        for r in range(rounds):
            order = [("ours", lambda: ours_calls(r, False)), ("theirs", lambda: theirs_calls(r, False)),
                     ("ours new", lambda: ours_calls(r, True)), ("theirs new", lambda: theirs_calls(r, True)),
                     ("all", lambda: all_calls(r)), ("two", lambda: two_calls(r))]
            for name, make in (order if r % 2 == 0 else order[::-1]):
                # two_calls makes 2 script calls a decision pair: its usec per call x 2 is the pair's time.
                times[name].append(redis_usec(port, make()) * (2 if name == "two" else 1))
        med = {k: statistics.median(v) for k, v in times.items()}

        def ratio(a, b):
            rs = [x / y for x, y in zip(times[a], times[b])]
            return f"{med[a]:.2f} / {med[b]:.2f} us = {statistics.median(rs):.2f} (rounds {min(rs):.2f}-{max(rs):.2f})"
        rows.append(("Redis time per decision, existing key: hammer counter / limits counter", ratio("ours", "theirs")))
        rows.append(("Redis time per decision, new key: hammer counter / limits counter", ratio("ours new", "theirs new")))
        rows.append(("Redis time: hit_all(token bucket, counter) / hit(token bucket) + hit(counter)", ratio("all", "two")))
    print(f"{n} decisions x {rounds} rounds, redis-server {cli(port, 'INFO', 'server').split('redis_version:')[1].split()[0]}")
    print("| measure | value |\n|---|---|")
    for name, v in rows:
        print(f"| {name} | {v} |")


if __name__ == "__main__":
    main()
