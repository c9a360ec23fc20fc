"""The Python API over the C functions: argument conversion, Limit, Decision and the other results, and Hammer, the
handle. A new method on Hammer is "convert the arguments, self._call(C function, ...), build the result"."""
import ctypes
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ._native import (MAX_LIMITS, checked, hammer_bucket, hammer_check_request, hammer_count_request, hammer_decision,
                      hammer_hit_request, hammer_inspection, hammer_limit, hammer_multi_request, hammer_stats_t,
                      last_error, raw, strerror)
from ._native import error as _error
from .errors import ERRORS, OK, STATUS_NAMES, HammerError, InternalError, InvalidError

# Algorithms (include/hammer.h: values pinned, append only)
FIXED_WINDOW = 0
SLIDING_WINDOW = 1
TOKEN_BUCKET = 2
LEAKY_BUCKET = 3
GCRA = 4
SLIDING_COUNTER = 5
ALGORITHMS: Dict[int, str] = {FIXED_WINDOW: "fixed_window", SLIDING_WINDOW: "sliding_window",
                              TOKEN_BUCKET: "token_bucket", LEAKY_BUCKET: "leaky_bucket", GCRA: "gcra",
                              SLIDING_COUNTER: "sliding_counter"}

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# ---------------------------------------------------------------------------------------------------------------------
# Argument conversion (Python-side checks, so that bad values never reach C as something else)
# ---------------------------------------------------------------------------------------------------------------------
Id = Union[str, bytes, bytearray, memoryview]


def _id(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            b = value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidError(f"id is not encodable as UTF-8: {e.reason}") from None
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
    else:
        raise InvalidError(f"id must be str or bytes, not {type(value).__name__}")
    if b"\0" in b:
        raise InvalidError("id may not contain a NUL byte (the C API takes NUL-terminated ids)")
    return b


def _int64(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(f"{name} must be an int, not {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidError(f"{name} is out of the int64 range")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# The handle
# ---------------------------------------------------------------------------------------------------------------------
class Bucket(NamedTuple):
    """One fixed-window bucket, as Hammer's get_bucket returns it."""
    bucket: int
    count: int  # type: ignore[assignment]  # the C field's name, over tuple.count
    created: int
    updated: int


def _int32(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(f"{name} must be an int, not {type(value).__name__}")
    if not -(1 << 31) <= value < (1 << 31):
        raise InvalidError(f"{name} is out of the int32 range")
    return value


# hammer_limit's ranges (include/hammer.h; Sources/HammerCore/Algorithms.swift's Limit.validate).
MAX_LIMIT = 1_000_000_000
MAX_PERIOD_MS = 315_360_000_000     # 10 years
MAX_UNITS = 1 << 52                 # capacity x period_ms of the buckets and GCRA: exact in Lua's doubles


def _check_limit(algorithm: int, limit: int, period_ms: int, burst: int) -> None:
    """InvalidError naming the first field out of include/hammer.h's range (the library makes the same checks)."""
    if algorithm not in ALGORITHMS:
        last = max(ALGORITHMS)
        raise InvalidError(f"Limit: unknown algorithm {algorithm} (FIXED_WINDOW ... {ALGORITHMS[last].upper()}, "
                           f"0 to {last})")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidError(f"Limit: limit must be from 1 to {MAX_LIMIT:_}, not {limit}")
    if not 1 <= period_ms <= MAX_PERIOD_MS:
        raise InvalidError(f"Limit: period_ms must be from 1 to {MAX_PERIOD_MS:_} (10 years), not {period_ms}")
    if not 0 <= burst <= MAX_LIMIT:
        raise InvalidError(f"Limit: burst must be from 0 (= limit) to {MAX_LIMIT:_}, not {burst}")
    if algorithm in (FIXED_WINDOW, SLIDING_WINDOW):   # they never multiply the two
        return
    uses_burst = algorithm != SLIDING_COUNTER and burst != 0   # the counter's capacity is its limit (L x P <= 2^52)
    capacity = burst if uses_burst else limit
    if capacity * period_ms > MAX_UNITS:
        raise InvalidError(f"Limit: {'burst' if uses_burst else 'limit'} x period_ms must be at most 2^52 for "
                           f"{ALGORITHMS[algorithm]}, not {capacity} x {period_ms}")


@dataclass(frozen=True)
class Limit:
    """A limiter description, include/hammer.h's hammer_limit: `limit` hits per `period_ms` with `algorithm`.

    burst is the capacity of the token / leaky bucket and GCRA's burst tolerance (0 means = limit); the windows
    ignore it. Build one with a constructor named after the algorithm, e.g. Limit.token_bucket(10, 1000, burst=20),
    or from a string with hammer.parse("10/second").
    The fields are checked here, with include/hammer.h's ranges, so that a bad limit fails at start-up and not at
    every request: InvalidError (a ValueError) naming the field and its range when algorithm is not 0..4, limit not
    1..10^9, period_ms not 1 ms..10 years (315_360_000_000), burst not 0..10^9, or, for the buckets and GCRA,
    capacity (burst, or limit) x period_ms above 2^52. A Limit is immutable and may be shared by any number of
    threads and calls.
    """
    algorithm: int
    limit: int
    period_ms: int
    burst: int = 0
    _c: Any = field(init=False, repr=False, compare=False, hash=False)
    _p: Any = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        c = hammer_limit(_int32("algorithm", self.algorithm), _int64("limit", self.limit),
                         _int64("period_ms", self.period_ms), _int64("burst", self.burst))
        _check_limit(self.algorithm, self.limit, self.period_ms, self.burst)
        object.__setattr__(self, "_c", c)
        object.__setattr__(self, "_p", ctypes.pointer(c))

    @classmethod
    def fixed_window(cls, limit: int, period_ms: int) -> "Limit":
        """At most `limit` hits per calendar window of period_ms (Hammer's buckets); cheapest, but up to 2x limit
        can pass across a window boundary."""
        return cls(FIXED_WINDOW, limit, period_ms)

    @classmethod
    def sliding_window(cls, limit: int, period_ms: int) -> "Limit":
        """Never more than `limit` hits in ANY span of period_ms; memory grows with the hits in a window."""
        return cls(SLIDING_WINDOW, limit, period_ms)

    @classmethod
    def token_bucket(cls, rate: int, period_ms: int, burst: int = 0) -> "Limit":
        """A steady `rate` per period_ms with bursts up to `burst` (0: = rate); constant memory."""
        return cls(TOKEN_BUCKET, rate, period_ms, burst)

    @classmethod
    def leaky_bucket(cls, rate: int, period_ms: int, burst: int = 0) -> "Limit":
        """A level that leaks `rate` per period_ms, capacity `burst` (0: = rate)."""
        return cls(LEAKY_BUCKET, rate, period_ms, burst)

    @classmethod
    def gcra(cls, rate: int, period_ms: int, burst: int = 0) -> "Limit":
        """The token bucket's decisions stored as one timestamp (as redis-cell / redis_rate)."""
        return cls(GCRA, rate, period_ms, burst)

    @classmethod
    def sliding_counter(cls, limit: int, period_ms: int) -> "Limit":
        """About `limit` hits per sliding period_ms in constant memory: two fixed windows, the previous one weighted
        by its overlap (Cloudflare's approximation). Never more than `limit` in a calendar window, under
        2 x limit in a sliding one (when the previous window's hits crowd its end)."""
        return cls(SLIDING_COUNTER, limit, period_ms)


LimitSpec = Union[Limit, Sequence[int]]
# One limit, or several of one id decided at once (hammer_hit_all): a list or tuple of limits.
Limits = Union[LimitSpec, Sequence[LimitSpec]]


def _limit(spec: Any) -> Limit:
    """A Limit, or a tuple (algorithm, limit, period_ms[, burst]) made into one."""
    if isinstance(spec, Limit):
        return spec
    if isinstance(spec, (tuple, list)) and 3 <= len(spec) <= 4:
        return Limit(*spec)
    raise InvalidError(f"a limit must be a hammer.Limit or (algorithm, limit, period_ms[, burst]), not {spec!r}")


def _several(spec: Any) -> bool:
    """Is `spec` several limits (a list or tuple of limits), rather than one (a Limit, or a tuple of ints)?"""
    return isinstance(spec, (tuple, list)) and len(spec) > 0 and isinstance(spec[0], (Limit, tuple, list))


def _limits(spec: Any) -> Tuple[Any, int]:
    """Several limits as a C array of hammer_limit and its length."""
    lims = [_limit(s) for s in spec]
    if not 1 <= len(lims) <= MAX_LIMITS:
        raise InvalidError(f"several limits: from 1 to {MAX_LIMITS} (HAMMER_MAX_LIMITS), not {len(lims)}")
    return (hammer_limit * len(lims))(*(lim._c for lim in lims)), len(lims)


class Decision(NamedTuple):
    """The answer of a rate-limit call (include/hammer.h's hammer_decision). Denied is allowed=False, not an error.

    retry_after_ms is 0 when allowed, the wait after which this same hit can pass when denied, and -1 when it can
    never pass (cost above the limiter's capacity); `retry_after` is the same in seconds, None for -1 ("never": a
    number would be a lie, and math.inf makes time.sleep raise).
    degraded is True when Redis could not answer and the URL's on_error / fallback policy decided.
    decided_by: of several limits (hit(id, [a, b, ...])), the index of the one that decided (count and limit are its
    own): when denied the one with the longest wait, when allowed the one with the least remaining; 0 for one limit.
    Immutable (a named tuple: the cheapest object Python builds, and a decision is built on every call).
    """
    allowed: bool
    count: int  # type: ignore[assignment]  # the C field's name, over tuple.count
    limit: int
    remaining: int
    retry_after_ms: int
    reset_after_ms: int
    degraded: bool = False
    decided_by: int = 0   # of several limits, the index of the one that decided; 0 for one limit

    @property
    def retry_after(self) -> Optional[float]:
        """retry_after_ms in seconds, ready for time.sleep / asyncio.sleep; None when the hit can never pass."""
        return None if self.retry_after_ms < 0 else self.retry_after_ms / 1000.0


_byref = ctypes.byref
_raw_count_hit = raw.hammer_count_hit
_raw_check_rate = raw.hammer_check_rate
_raw_hit = raw.hammer_hit


def _decision(d: Any) -> Decision:
    return Decision(d.allowed != 0, d.count, d.limit, d.remaining, d.retry_after_ms, d.reset_after_ms,
                    d.degraded != 0, d.decided_by)


@dataclass(frozen=True)
class Inspection:
    """Hammer's inspect_bucket: the current fixed window of an id. created/updated are None when it has no hit."""
    count: int
    remaining: int
    ms_to_next_bucket: int
    created: Optional[int]
    updated: Optional[int]


@dataclass(frozen=True)
class Stats:
    """A handle's statistics since it was opened (include/hammer.h's hammer_stats_t).

    calls counts requests answered, failed or refused by the library (each request of a batch); values this module
    refuses before calling it (a float cost, a str id, ...) are not counted. errors maps each status name of
    STATUS_NAMES ("INVALID", "CONNECT", ...) to the number of failed or refused requests.
    Latencies are microseconds per call (a batch is one call), within 1/16 of the value. spin_cpus is the number of
    CPUs this process may use (affinity mask and cgroup CPU quota), which bounds how many calls poll for replies.
    """
    calls: int
    allowed: int
    denied: int
    errors: Dict[str, int]
    reconnects: int
    degraded: int
    p50_us: int
    p99_us: int
    p999_us: int
    connections: int
    spin_cpus: int = 0
    # Redis Cluster only (see hammer_stats_t): requests redirected by MOVED, ASK, TRYAGAIN, CLUSTERDOWN; map reads;
    # masters in the map.
    cluster_moved: int = 0
    cluster_ask: int = 0
    cluster_tryagain: int = 0
    cluster_down: int = 0
    cluster_map_reads: int = 0
    cluster_nodes: int = 0
    # deny_cache=ENTRIES only: decisions denied in-process from the cache (also counted in calls and denied).
    deny_cache_hits: int = 0


def _row(row: Any, what: str, names: Tuple[str, ...], defaults: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """A request of a batch as a tuple of len(names), with `defaults` for its optional last items."""
    if not isinstance(row, (tuple, list)):
        raise InvalidError(f"{what}: a request must be a tuple ({', '.join(names)}), not {type(row).__name__}")
    need = len(names) - len(defaults)
    if not need <= len(row) <= len(names):
        raise InvalidError(f"{what}: a request is ({', '.join(names)}), not {len(row)} items")
    return tuple(row) + tuple(defaults[len(row) - need:])


def _strip_request(message: str) -> str:
    """hammer_last_error() of a batch reads "request N: ..."; the detail without that C index."""
    if message.startswith("request "):
        head, sep, rest = message.partition(": ")
        if sep and head[8:].isdigit():
            return rest
    return message


class Hammer:
    """A libhammer handle: one Redis URL, a pool of connections, usable from many threads at once. The URL's
    expiry_ms (the TTL of count_hit's buckets) is needed by count_hit and count_hits only: without it they raise
    InvalidError naming it, and every other call works.

    close() is idempotent and waits for calls in flight on other threads; a call after close raises InvalidError.
    """

    def __init__(self, url: Union[str, bytes]) -> None:
        if isinstance(url, str):
            url = url.encode("utf-8")
        elif not isinstance(url, bytes):
            raise InvalidError(f"url must be str or bytes, not {type(url).__name__}")
        if b"\0" in url:
            raise InvalidError("config: the URL may not contain a NUL byte")
        self._lock = threading.Lock()
        self._busy = 0
        self._handle: Optional[ctypes.c_void_p] = None
        h = ctypes.c_void_p()
        checked.hammer_open(url, ctypes.byref(h))   # raises on failure; the URL (and password) is not kept
        self._handle = h

    # -- lifetime ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Closes the handle and its connections; a no-op when already closed."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            h, self._handle = self._handle, None
        # Calls in flight on other threads still use the C handle: wait until they are out (rare, so polled).
        while True:
            with lock:
                if not self._busy:
                    break
            time.sleep(0.001)
        if h is not None:
            raw.hammer_close(h)

    @property
    def closed(self) -> bool:
        return self._handle is None

    def __enter__(self) -> "Hammer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<hammer.Hammer {'closed' if self.closed else 'open'}>"

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Calls func(handle, *args) with the handle kept alive for the length of the call."""
        with self._lock:
            h = self._handle
            if h is None:
                raise InvalidError("the Hammer handle is closed")
            self._busy += 1
        try:
            return func(h, *args)
        finally:
            with self._lock:
                self._busy -= 1

    # -- core ----------------------------------------------------------------------------------------------------
    def count_hit(self, id: Id, bucket: int, now_ms: int, increment: int = 1) -> int:
        """Adds `increment` hits to bucket `bucket` of `id` stamped `now_ms`; returns the bucket's new count.
        Needs expiry_ms in the URL (else InvalidError)."""
        out = ctypes.c_int64()
        self._fast(_raw_count_hit, _id(id), _int64("bucket", bucket), _int64("now_ms", now_ms),
                   _int64("increment", increment), _byref(out))
        return out.value

    def _fast(self, func: Callable[..., Any], *args: Any) -> None:
        """_call for the hot calls: `func` is a raw function (no ctypes errcheck hook); its status is raised here."""
        status = self._call(func, *args)
        if status:
            raise _error(status)

    def get_bucket(self, id: Id, bucket: int) -> Optional[Bucket]:
        """The bucket `bucket` of `id`, or None when there is none. Changes nothing."""
        out = hammer_bucket()
        self._call(checked.hammer_get_bucket, _id(id), _int64("bucket", bucket), ctypes.byref(out))
        if not out.found:
            return None
        return Bucket(out.bucket, out.count, out.created, out.updated)

    def delete_buckets(self, id: Id) -> int:
        """Deletes every bucket (and limiter state) of exactly `id`; returns the number of keys deleted."""
        out = ctypes.c_int64()
        self._call(checked.hammer_delete_buckets, _id(id), ctypes.byref(out))
        return out.value

    # -- Hammer's rate-limit calls (fixed-window buckets) --------------------------------------------------------
    def check_rate(self, id: Id, scale_ms: int, limit: int, increment: int = 1) -> Decision:
        """Hammer's check_rate / check_rate_inc: counts `increment` hits in bucket now / scale_ms of `id` (even when
        denied) and allows when the count is at most `limit`. The handle's clock (or Redis's with clock=redis)."""
        out = hammer_decision()
        self._fast(_raw_check_rate, _id(id), _int64("scale_ms", scale_ms), _int64("limit", limit),
                   _int64("increment", increment), _byref(out))
        return _decision(out)

    def check_rate_at(self, id: Id, scale_ms: int, limit: int, now_ms: int, increment: int = 1) -> Decision:
        """check_rate at the caller's time now_ms (tests, replays, Hammer's `now`)."""
        out = hammer_decision()
        self._call(checked.hammer_check_rate_at, _id(id), _int64("scale_ms", scale_ms), _int64("limit", limit),
                   _int64("increment", increment), _int64("now_ms", now_ms), ctypes.byref(out))
        return _decision(out)

    def inspect_bucket(self, id: Id, scale_ms: int, limit: int) -> Inspection:
        """Hammer's inspect_bucket: the current window of `id`, without side effect."""
        out = hammer_inspection()
        self._call(checked.hammer_inspect_bucket, _id(id), _int64("scale_ms", scale_ms), _int64("limit", limit),
                   ctypes.byref(out))
        return Inspection(out.count, out.remaining, out.ms_to_next_bucket, out.created or None, out.updated or None)

    # -- five algorithms -----------------------------------------------------------------------------------------
    def hit(self, id: Id, limit: Limits, cost: int = 1, now_ms: Optional[int] = None) -> Decision:
        """Takes `cost` hits from the limiter `limit` of `id` if they fit (a denied hit changes nothing). now_ms None:
        the handle's clock (hammer_hit); else that time (hammer_hit_at).

        `limit` may be a list or tuple of limits (up to 16): then all pass and all are charged, or none is, in one
        atomic step (hammer_hit_all); the Decision is the most restrictive, and decided_by names the limit. A limit
        whose algorithm is alone in the list shares its state with hit(id, that limit); limits of one algorithm
        (hammer.parse("10/second;1000/day", algorithm="sliding_window"); fixed windows: of one period) each keep a
        state of their own, named by their parameters, which delete_buckets deletes too (README: "Several limits, one
        atomic decision")."""
        out = hammer_decision()
        if _several(limit):
            arr, n = _limits(limit)
            if now_ms is None:
                self._call(checked.hammer_hit_all, _id(id), arr, n, _int64("cost", cost), ctypes.byref(out))
            else:
                self._call(checked.hammer_hit_all_at, _id(id), arr, n, _int64("cost", cost), _int64("now_ms", now_ms),
                           ctypes.byref(out))
            return _decision(out)
        lim = _limit(limit)
        if now_ms is None:
            self._fast(_raw_hit, _id(id), lim._p, _int64("cost", cost), _byref(out))
        else:
            self._call(checked.hammer_hit_at, _id(id), lim._p, _int64("cost", cost), _int64("now_ms", now_ms),
                       ctypes.byref(out))
        return _decision(out)

    def peek(self, id: Id, limit: Limits, now_ms: Optional[int] = None) -> Decision:
        """Whether a hit of cost 1 would pass now (or at now_ms), without side effect: `allowed` as that hit would
        be, count and remaining as they stand (nothing taken); when denied, the very decision that hit would get.
        Several limits (a list or tuple): whether it would pass them all (hammer_peek_all)."""
        out = hammer_decision()
        if _several(limit):
            arr, n = _limits(limit)
            if now_ms is None:
                self._call(checked.hammer_peek_all, _id(id), arr, n, ctypes.byref(out))
            else:
                self._call(checked.hammer_peek_all_at, _id(id), arr, n, _int64("now_ms", now_ms), ctypes.byref(out))
            return _decision(out)
        lim = _limit(limit)
        if now_ms is None:
            self._call(checked.hammer_peek, _id(id), lim._p, ctypes.byref(out))
        else:
            self._call(checked.hammer_peek_at, _id(id), lim._p, _int64("now_ms", now_ms), ctypes.byref(out))
        return _decision(out)

    # -- batches -------------------------------------------------------------------------------------------------
    def _batch(self, func: Any, what: str, requests: Iterable[Any], convert: Callable[[Any], Tuple[Any, Any]],
               ctype: Any, outtype: Any, result: Callable[[Any], Any]) -> List[Any]:
        """One C batch call. convert(row) -> the C request tuple (raising HammerError refuses that row alone);
        result(out[j]) -> the Python result. Returns a list with a result or a HammerError per request."""
        rows = list(requests)
        results: List[Any] = [None] * len(rows)
        sent, creqs, keep = [], [], []
        for i, row in enumerate(rows):
            try:
                creq, alive = convert(row)
            except HammerError as e:
                results[i] = type(e)(f"{what}: request {i}: {e.message}", e.status)
                continue
            sent.append(i)
            creqs.append(creq)
            keep.append(alive)
        if not sent:
            self._call(lambda h: None)  # a closed handle still raises
            return results
        n = len(sent)
        reqs = (ctype * n)(*creqs)
        out = (outtype * n)()
        statuses = (ctypes.c_int * n)()
        detail = ""

        def call(h: Any) -> int:
            nonlocal detail
            rc: int = func(h, reqs, n, out, statuses)
            if rc != OK:
                detail = last_error()
            return rc

        rc = self._call(call)
        first = True
        for j, i in enumerate(sent):
            st = statuses[j]
            if st == OK:
                results[i] = result(out[j])
                continue
            message = _strip_request(detail) if first and detail else strerror(st)
            first = False
            results[i] = ERRORS.get(st, InternalError)(f"{what}: request {i}: {message}", st)
        if rc != OK and first:
            raise ERRORS.get(rc, InternalError)(detail or strerror(rc), rc)  # the whole call was refused
        del keep
        return results

    def hit_many(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """hit for each request (id, limit, cost[, now_ms]) (cost may be left out: 1; now_ms None: the clock), as
        one pipeline on one connection. Returns a Decision, or the HammerError of that request alone, per request.
        In a batch now_ms 0 would mean the clock (a zeroed C request's), so it is refused: hit(now_ms=0) takes it.
        A request's limit may be several limits (a list or tuple), as for hit (then hammer_hit_all_many)."""
        rows = list(requests)
        if any(isinstance(r, (tuple, list)) and len(r) > 1 and _several(r[1]) for r in rows):
            return self._hit_all_many(rows)

        def convert(row: Any) -> Tuple[Any, Any]:
            id, spec, cost, now_ms = _row(row, "hit_many", ("id", "limit", "cost", "now_ms"), (1, None))
            lim = _limit(spec)
            now = -1 if now_ms is None else _int64("now_ms", now_ms)
            if now <= 0 and now_ms is not None:
                raise InvalidError("now_ms must be from 1 to 2^47 in hit_many (None: the clock)")
            return (_id(id), lim._p, _int64("cost", cost), now), lim
        return self._batch(raw.hammer_hit_many, "hit_many", rows, convert, hammer_hit_request, hammer_decision,
                           _decision)

    def _hit_all_many(self, rows: List[Any]) -> List[Union[Decision, HammerError]]:
        """hit_many when some request has several limits: every request as a hammer_multi_request (one limit is a
        set of one, decided as hammer_hit decides it)."""
        def convert(row: Any) -> Tuple[Any, Any]:
            id, spec, cost, now_ms = _row(row, "hit_many", ("id", "limit", "cost", "now_ms"), (1, None))
            arr, n = _limits(spec if _several(spec) else [spec])
            now = 0 if now_ms is None else _int64("now_ms", now_ms)
            if now <= 0 and now_ms is not None:
                raise InvalidError("now_ms must be from 1 to 2^47 (None: the clock)")
            return (_id(id), arr, n, _int64("cost", cost), now), arr
        return self._batch(raw.hammer_hit_all_many, "hit_many", rows, convert, hammer_multi_request, hammer_decision,
                           _decision)

    def count_hits(self, requests: Iterable[Sequence[Any]]) -> List[Union[int, HammerError]]:
        """count_hit for each request (id, bucket, now_ms[, increment]) as one pipeline; the new count, or the
        HammerError of that request alone, per request (InvalidError for each when the URL has no expiry_ms)."""
        def convert(row: Any) -> Tuple[Any, Any]:
            id, bucket, now_ms, inc = _row(row, "count_hits", ("id", "bucket", "now_ms", "increment"), (1,))
            return (_id(id), _int64("bucket", bucket), _int64("now_ms", now_ms), _int64("increment", inc)), None
        return self._batch(raw.hammer_count_hits, "count_hits", requests, convert, hammer_count_request,
                           ctypes.c_int64, int)

    def check_rates(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """check_rate for each request (id, scale_ms, limit[, increment]) as one pipeline; a Decision, or the
        HammerError of that request alone, per request."""
        def convert(row: Any) -> Tuple[Any, Any]:
            id, scale_ms, limit, inc = _row(row, "check_rates", ("id", "scale_ms", "limit", "increment"), (1,))
            return (_id(id), _int64("scale_ms", scale_ms), _int64("limit", limit), _int64("increment", inc)), None
        return self._batch(raw.hammer_check_rates, "check_rates", requests, convert, hammer_check_request,
                           hammer_decision, _decision)

    # -- statistics ----------------------------------------------------------------------------------------------
    def stats(self) -> Stats:
        """The handle's statistics since it was opened."""
        o = hammer_stats_t(size=ctypes.sizeof(hammer_stats_t))
        self._call(checked.hammer_stats, ctypes.byref(o))
        return Stats(o.calls, o.allowed, o.denied, {name: o.errors[st] for st, name in STATUS_NAMES.items()},
                     o.reconnects, o.degraded, o.p50_us, o.p99_us, o.p999_us, o.connections, o.spin_cpus,
                     o.cluster_moved, o.cluster_ask, o.cluster_tryagain, o.cluster_down, o.cluster_map_reads,
                     o.cluster_nodes, o.deny_cache_hits)


