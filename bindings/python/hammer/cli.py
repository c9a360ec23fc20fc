"""The operator's command line: python -m hammer URL inspect|reset|stats|bench ... (--help says how).

Exit status: 0 done, 1 Redis or the library failed (unreachable, timeout, a Redis error), 2 bad usage (arguments,
limit, URL). Messages go to stderr as "hammer: ...", never with the URL's password.
"""
import argparse
import json
import os
import re
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

from . import _api
from ._api import ALGORITHMS, FIXED_WINDOW, Limit
from ._parse import parse
from ._native import LIBRARY_PATH, LIBRARY_SOURCE, version
from ._version import __version__
from .errors import HammerError, InvalidError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_SPEC = re.compile(r"^([a-z_]+):(\d+)/(\d+)(ms|s|m|h)?(?::(\d+))?$")
_BY_NAME = {name: number for number, name in ALGORITHMS.items()}


class UsageError(Exception):
    pass


def parse_limits(spec: str) -> List[Tuple[str, Limit]]:
    """The limits of a --limit: ALGORITHM:LIMIT/PERIOD[:BURST] with PERIOD in ms (the default), s, m or h
    ("token_bucket:10/1s:20"), or a string of the `limits` notation (hammer.parse), with an optional ALGORITHM: before
    it and :BURST after it: "10/second", "sliding_window:100/minute;1000/day", "token_bucket:10/second:20".
    Returns (the piece of the string, its Limit) per limit."""
    m = _SPEC.match(spec.strip())
    if m and m.group(1) in _BY_NAME:
        period = int(m.group(3)) * _UNITS[m.group(4) or "ms"]
        try:
            return [(spec.strip(), Limit(_BY_NAME[m.group(1)], int(m.group(2)), period, int(m.group(5) or 0)))]
        except InvalidError as e:
            raise UsageError(f"bad limit {spec!r}: {e}") from None
    text, algorithm, burst = spec.strip(), FIXED_WINDOW, 0
    head, sep, rest = text.partition(":")
    if sep and head.strip().lower() in _BY_NAME:
        algorithm, text = _BY_NAME[head.strip().lower()], rest
    body, sep, tail = text.rpartition(":")
    if sep and tail.strip().isdigit() and tail.strip().isascii():
        text, burst = body, int(tail)
    try:
        return list(zip((p.strip() for p in re.split(r"[,;|]", text)), parse(text, algorithm, burst)))
    except InvalidError as e:
        raise UsageError(f"bad limit {spec!r}: expected ALGORITHM:LIMIT/PERIOD[:BURST] (ALGORITHM one of "
                         f"{', '.join(sorted(_BY_NAME))}, PERIOD like 1000, 1000ms, 1s, 5m or 1h) or the notation of "
                         f"limits, [ALGORITHM:]N/[M] UNIT[;...][:BURST] like 10/second or sliding_window:100/minute "
                         f"({e})") from None


def parse_limit(spec: str) -> Limit:
    """The one limit of a --limit (UsageError when it holds several)."""
    limits = parse_limits(spec)
    if len(limits) != 1:
        raise UsageError(f"{spec!r}: give one limit here, not {len(limits)}")
    return limits[0][1]


def redact(url: str) -> str:
    """The URL without its password (user info "user:secret@" becomes "user:***@", a password= option too)."""
    url = re.sub(r"^([a-z]+://[^/@]*?:)[^/@]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hammer",
        description="Look at, reset and measure hammer rate limiters in Redis.",
        epilog="URL is a hammer URL (redis://[user:password@]host[:port][/db][?prefix=...], unix:///path, or rediss://"
               " for TLS); the key prefix comes from its prefix= option. LIMIT is "
               "ALGORITHM:LIMIT/PERIOD[:BURST], e.g. token_bucket:10/1s:20 or sliding_window:100/60s (algorithms: "
               + ", ".join(sorted(_BY_NAME)) + "), or the notation of Flask-Limiter and slowapi, with the algorithm "
               "before it (fixed_window when left out) and the burst after it: 10/second, "
               "sliding_window:100/minute, token_bucket:10/second:20; inspect takes several: 10/second;1000/day. "
               "Exit status: 0 done, 1 Redis or the library failed, 2 bad usage.")
    p.add_argument("--version", action="version",
                   version=f"hammer {__version__} (library {version()}, {LIBRARY_PATH}, from {LIBRARY_SOURCE})")
    p.add_argument("url", metavar="URL", help="the Redis URL, as for hammer.Hammer")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    i = sub.add_parser("inspect", help="show the state of ids without changing it",
                       description="Shows each id's state, changing nothing: with --limit what a hit of cost 1 would "
                                   "get now (a peek), with --window Hammer's inspect_bucket (check_rate's windows), "
                                   "with --bucket one count_hit bucket.")
    i.add_argument("ids", metavar="ID", nargs="+")
    mode = i.add_mutually_exclusive_group(required=True)
    mode.add_argument("--limit", metavar="LIMIT", help="the limiter's ALGORITHM:LIMIT/PERIOD[:BURST], or limits' "
                      "notation (10/second;1000/day: a line per limit)")
    mode.add_argument("--window", metavar="SCALE_MS:LIMIT", help="check_rate's scale_ms and limit")
    mode.add_argument("--bucket", metavar="N", type=int, help="a bucket number of count_hit")
    i.add_argument("--json", action="store_true", help="one JSON object per line")

    r = sub.add_parser("reset", help="delete every bucket and limiter state of ids",
                       description="Deletes every bucket and every limiter state of each id (delete_buckets).")
    r.add_argument("ids", metavar="ID", nargs="+")

    s = sub.add_parser("stats", help="probe the server and show the handle's statistics",
                       description="Makes --probes side-effect-free calls (peeks on one id) and shows this handle's "
                                   "statistics: calls, errors by status, latency percentiles, connections. The library "
                                   "keeps statistics per handle, so they describe these probes only.")
    s.add_argument("--probes", type=int, default=100, metavar="N", help="calls to make (default 100)")
    s.add_argument("--json", action="store_true", help="one JSON object")

    b = sub.add_parser("bench", help="measure decisions per second",
                       description="Hits --keys ids (hammer-bench:PID:N, deleted afterwards) from --threads threads "
                                   "for --seconds, printing a progress line each --interval on stderr and the "
                                   "decisions per second on stdout.")
    b.add_argument("--seconds", type=float, default=5.0)
    b.add_argument("--threads", type=int, default=4)
    b.add_argument("--keys", type=int, default=1000)
    b.add_argument("--limit", metavar="LIMIT", default="token_bucket:1000000/1s",
                   help="the limiter of each key (default token_bucket:1000000/1s)")
    b.add_argument("--interval", type=float, default=1.0, help="seconds between progress lines (default 1)")
    return p


def _decision(d: "_api.Decision") -> Dict[str, Any]:
    return {"allowed": d.allowed, "count": d.count, "limit": d.limit, "remaining": d.remaining,
            "retry_after_ms": d.retry_after_ms, "reset_after_ms": d.reset_after_ms}


def _show(out: TextIO, id: str, fields: Optional[Dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out.write(json.dumps({"id": id, **(fields or {"found": False})}) + "\n")
    elif fields is None:
        out.write(f"{id}: no such bucket\n")
    else:
        out.write(f"{id}: " + " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                                       for k, v in fields.items()) + "\n")


def cmd_inspect(h: "_api.Hammer", a: argparse.Namespace, out: TextIO) -> int:
    limits = parse_limits(a.limit) if a.limit else []
    window = None
    if a.window:
        m = re.match(r"^(\d+):(\d+)$", a.window)
        if not m:
            raise UsageError(f"bad --window {a.window!r}: expected SCALE_MS:LIMIT, e.g. 60000:100")
        window = (int(m.group(1)), int(m.group(2)))
    for id in a.ids:
        fields: Optional[Dict[str, Any]]
        if len(limits) > 1:   # a line per limit, each named by its piece of the string
            for piece, limit in limits:
                _show(out, id, {"limit_spec": piece, **_decision(h.peek(id, limit))}, a.json)
            continue
        if limits:
            fields = _decision(h.peek(id, limits[0][1]))
        elif window is not None:
            i = h.inspect_bucket(id, *window)
            fields = {"count": i.count, "remaining": i.remaining, "ms_to_next_bucket": i.ms_to_next_bucket,
                      "created": i.created, "updated": i.updated}
        else:
            bucket = h.get_bucket(id, a.bucket)
            fields = None if bucket is None else bucket._asdict()
        _show(out, id, fields, a.json)
    return EXIT_OK


def cmd_reset(h: "_api.Hammer", a: argparse.Namespace, out: TextIO) -> int:
    for id in a.ids:
        out.write(f"{id}: {h.delete_buckets(id)} keys deleted\n")
    return EXIT_OK


def cmd_stats(h: "_api.Hammer", a: argparse.Namespace, out: TextIO) -> int:
    if not 1 <= a.probes <= 1_000_000:
        raise UsageError("--probes must be from 1 to 1000000")
    probe = Limit.gcra(1, 1000)
    failures = 0
    for _ in range(a.probes):
        try:
            h.peek("hammer-cli:probe", probe)
        except HammerError:
            failures += 1
    st = h.stats()
    if a.json:
        out.write(json.dumps(st.__dict__) + "\n")
    else:
        errors = ", ".join(f"{k} {v}" for k, v in st.errors.items() if v) or "none"
        out.write(f"calls        {st.calls} ({failures} failed)\n"
                  f"errors       {errors}\n"
                  f"latency      p50 {st.p50_us} us, p99 {st.p99_us} us, p99.9 {st.p999_us} us\n"
                  f"connections  {st.connections} (reconnects {st.reconnects})\n"
                  f"degraded     {st.degraded}\n")
    return EXIT_FAILED if failures == a.probes else EXIT_OK


def cmd_bench(h: "_api.Hammer", a: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not 0 < a.seconds <= 3600 or not 1 <= a.threads <= 256 or not 1 <= a.keys <= 10_000_000 \
            or not 0 < a.interval <= 60:
        raise UsageError("bench: --seconds 0..3600, --threads 1..256, --keys 1..10000000, --interval 0..60")
    limit = parse_limit(a.limit)
    prefix = f"hammer-bench:{os.getpid()}:"
    done = [0] * a.threads
    allowed = [0] * a.threads
    failed = [0] * a.threads
    first_error: List[str] = []
    stop = threading.Event()

    def work(n: int) -> None:
        i = n
        while not stop.is_set():
            try:
                d = h.hit(f"{prefix}{i % a.keys}", limit)
                allowed[n] += d.allowed
            except HammerError as e:
                failed[n] += 1
                if not first_error:
                    first_error.append(f"{type(e).__name__}: {e}")
            done[n] += 1
            i += a.threads

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(a.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    end = t0 + a.seconds
    last_t, last_n = t0, 0
    tty = err.isatty()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        time.sleep(min(a.interval, end - now))
        now, n = time.monotonic(), sum(done)
        line = (f"bench: {now - t0:6.1f} s  {n:>10} decisions  {(n - last_n) / max(now - last_t, 1e-9):>10.0f} "
                f"decisions/s  errors {sum(failed)}")
        err.write(("\r" + line) if tty else line + "\n")
        err.flush()
        last_t, last_n = now, n
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if tty:
        err.write("\n")
    total = sum(done)
    st = h.stats()
    out.write(f"{total / elapsed:.0f} decisions/s ({total} in {elapsed:.2f} s, {a.threads} threads, {a.keys} keys, "
              f"{sum(allowed)} allowed, {sum(failed)} failed; p50 {st.p50_us} us, p99 {st.p99_us} us)\n")
    for k in range(min(a.keys, total)):   # the bench's own keys only
        try:
            h.delete_buckets(f"{prefix}{k}")
        except HammerError:
            pass
    if first_error:
        err.write(f"hammer: first failure: {first_error[0]}\n")
    return EXIT_FAILED if sum(failed) == total else EXIT_OK


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    a = _parser().parse_args(argv)   # exits 2 on bad usage, 0 on --help
    try:
        if a.command == "bench":
            parse_limit(a.limit)
        elif a.command == "inspect" and a.limit:
            parse_limits(a.limit)
    except UsageError as e:
        err.write(f"hammer: {a.command}: {e}\n")
        return EXIT_USAGE
    try:
        h = _api.Hammer(a.url)
    except UsageError as e:
        err.write(f"hammer: {e}\n")
        return EXIT_USAGE
    except InvalidError as e:
        err.write(f"hammer: bad URL {redact(a.url)}: {e}\n")
        return EXIT_USAGE
    except HammerError as e:
        err.write(f"hammer: cannot open {redact(a.url)}: {e}\n")
        return EXIT_FAILED
    try:
        if a.command == "inspect":
            return cmd_inspect(h, a, out)
        if a.command == "reset":
            return cmd_reset(h, a, out)
        if a.command == "stats":
            return cmd_stats(h, a, out)
        return cmd_bench(h, a, out, err)
    except UsageError as e:
        err.write(f"hammer: {e}\n")
        return EXIT_USAGE
    except InvalidError as e:
        err.write(f"hammer: {a.command}: {e}\n")
        return EXIT_USAGE
    except HammerError as e:
        err.write(f"hammer: {a.command}: {type(e).__name__}: {e}\n")
        return EXIT_FAILED
    finally:
        h.close()
