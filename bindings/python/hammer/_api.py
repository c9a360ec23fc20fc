"""hammer — Python binding of libhammer, the Redis backend of the Hammer rate limiter (pure stdlib, ctypes).

    import hammer
    with hammer.Hammer("redis://127.0.0.1:6379/?expiry_ms=60000") as h:
        h.count_hit("user:42", bucket=1, now_ms=1000)        # -> 1, the bucket's new count
        h.get_bucket("user:42", 1)                           # -> Bucket(bucket=1, count=1, created=1000, updated=1000)
        h.delete_buckets("user:42")                          # -> 1, the number of keys deleted

The library is found through the environment variable HAMMER_LIBRARY (a path), then the system's library path
(ctypes.util.find_library("hammer")), then the repository's build/lib/libhammer.so (built by `make lib`).

Every C status other than HAMMER_OK becomes a HammerError subclass chosen by the status, carrying `.status` and the
calling thread's hammer_last_error() text (which never contains a password). Ids are `str` (sent as UTF-8) or
`bytes`; they may hold any byte but NUL.

Rate limiting (include/hammer.h, "Rate limiting"): Hammer's own check_rate / inspect_bucket on the fixed-window
buckets, and five algorithms through a `Limit`. A denied decision is a `Decision` with allowed=False, not an error:

    with hammer.Hammer("redis://127.0.0.1:6379/?expiry_ms=60000") as h:
        h.check_rate("user:42", scale_ms=60000, limit=100)      # Hammer's check_rate -> Decision(allowed=True, ...)
        per_second = hammer.Limit.token_bucket(10, 1000, burst=20)   # 10 per second, bursts of 20
        d = h.hit("user:42", per_second)                        # takes 1 token -> Decision
        if not d.allowed:
            time.sleep(d.retry_after)                           # seconds (float); this same hit then passes
        h.peek("user:42", per_second)                           # what a hit would get, without taking it
        h.hit_many([("a", per_second, 1), ("b", per_second, 2, 1_700_000_000_000)])   # one pipeline
        h.stats().allowed                                       # counters and latency percentiles of the handle

A `Limiter` guards code with one Limit, raising `RateLimited` (an Exception, not a HammerError: being limited is
not a failure of the library) that carries `.retry_after` in seconds and the `.decision`:

    limiter = hammer.Limiter(h, hammer.Limit.sliding_window(100, 60_000), key="api")
    @limiter                                                    # one shared key for every call
    def call_api(): ...
    @limiter.limit(key=lambda user, *a, **k: f"user:{user}")    # a key per call, from the arguments
    def fetch(user, item): ...
    with limiter:                                               # a guard around any block
        ...
    try:
        call_api()
    except hammer.RateLimited as e:
        time.sleep(e.retry_after)

Integers only: every count, time and limit must be an int (bool, float and str are refused with InvalidError, never
rounded or parsed), and every value the C library refuses (unknown algorithm, limit < 1, period < 1, burst < 0,
cost < 0, now_ms outside 0 .. 2^47) is an InvalidError too; so a bad limit is always InvalidError, never TypeError.

Layout of this module, for whoever adds functions: the ctypes mirror of every struct in include/hammer.h, then one
table `_SIGNATURES` giving restype and argtypes of every C function (status-returning ones get `_check` as errcheck),
then the Python API. A new method on Hammer is "convert the arguments, self._call(C function, ...), build the result".
"""
import ctypes
import ctypes.util
import functools
import inspect
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Union

__all__ = [
    "Hammer", "Bucket", "version", "strerror", "last_error", "LIBRARY_PATH",
    "Limit", "Decision", "Inspection", "Stats", "Limiter", "RateLimited",
    "FIXED_WINDOW", "SLIDING_WINDOW", "TOKEN_BUCKET", "LEAKY_BUCKET", "GCRA", "ALGORITHMS",
    "HammerError", "InvalidError", "ConnectError", "HammerTimeout", "RedisError", "ProtocolError", "NoMemoryError",
    "InternalError",
    "OK", "ERR_INVALID", "ERR_CONNECT", "ERR_TIMEOUT", "ERR_REDIS", "ERR_PROTOCOL", "ERR_NOMEM", "ERR_INTERNAL",
]

# ---------------------------------------------------------------------------------------------------------------------
# Statuses (include/hammer.h: values pinned, append only)
# ---------------------------------------------------------------------------------------------------------------------
OK = 0
ERR_INVALID = 1
ERR_CONNECT = 2
ERR_TIMEOUT = 3
ERR_REDIS = 4
ERR_PROTOCOL = 5
ERR_NOMEM = 6
ERR_INTERNAL = 7

# Algorithms (include/hammer.h: values pinned, append only)
FIXED_WINDOW = 0
SLIDING_WINDOW = 1
TOKEN_BUCKET = 2
LEAKY_BUCKET = 3
GCRA = 4
ALGORITHMS = {FIXED_WINDOW: "fixed_window", SLIDING_WINDOW: "sliding_window", TOKEN_BUCKET: "token_bucket",
              LEAKY_BUCKET: "leaky_bucket", GCRA: "gcra"}

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


# ---------------------------------------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------------------------------------
class HammerError(Exception):
    """A libhammer call failed. `.status` is the C status, `.message` the detail (never a password)."""

    status = None  # set on each subclass; an instance may carry an unknown status of its own

    def __init__(self, message, status=None):
        if status is None:
            status = type(self).status
        self.status = status
        self.message = message
        super().__init__(message)

    def __str__(self):
        return self.message


class InvalidError(HammerError):
    """HAMMER_ERR_INVALID: bad argument or configuration."""
    status = ERR_INVALID


class ConnectError(HammerError):
    """HAMMER_ERR_CONNECT: Redis unreachable, refused, or the connection was lost."""
    status = ERR_CONNECT


class HammerTimeout(HammerError):
    """HAMMER_ERR_TIMEOUT: connect or command timed out."""
    status = ERR_TIMEOUT


class RedisError(HammerError):
    """HAMMER_ERR_REDIS: Redis answered with an error (NOAUTH, WRONGTYPE, OOM, ...)."""
    status = ERR_REDIS


class ProtocolError(HammerError):
    """HAMMER_ERR_PROTOCOL: a Redis reply of an unexpected shape."""
    status = ERR_PROTOCOL


class NoMemoryError(HammerError):
    """HAMMER_ERR_NOMEM."""
    status = ERR_NOMEM


class InternalError(HammerError):
    """HAMMER_ERR_INTERNAL, and any status this module does not know."""
    status = ERR_INTERNAL


_ERRORS = {cls.status: cls for cls in
           (InvalidError, ConnectError, HammerTimeout, RedisError, ProtocolError, NoMemoryError, InternalError)}
# Names of the statuses, as Stats.errors spells them ("INVALID" for HAMMER_ERR_INVALID, ...).
STATUS_NAMES = {ERR_INVALID: "INVALID", ERR_CONNECT: "CONNECT", ERR_TIMEOUT: "TIMEOUT", ERR_REDIS: "REDIS",
                ERR_PROTOCOL: "PROTOCOL", ERR_NOMEM: "NOMEM", ERR_INTERNAL: "INTERNAL"}


# ---------------------------------------------------------------------------------------------------------------------
# The library
# ---------------------------------------------------------------------------------------------------------------------
def _candidates():
    env = os.environ.get("HAMMER_LIBRARY")
    if env:
        return [("HAMMER_LIBRARY", env)]
    out = []
    found = ctypes.util.find_library("hammer")
    if found:
        out.append(("the system library path", found))
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, os.pardir, os.pardir, "build", "lib", "libhammer.so")
    out.append(("the build folder", os.path.normpath(built)))
    return out


def _load():
    tried = []
    for where, path in _candidates():
        if where == "the build folder" and not os.path.exists(path):
            tried.append(f"{path} (from {where}): no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            if where == "HAMMER_LIBRARY":
                raise ImportError(f"hammer: cannot load HAMMER_LIBRARY={path}: {e}") from None
            tried.append(f"{path} (from {where}): {e}")
    raise ImportError("hammer: libhammer not found; run `make lib` in the hammer repository, or set HAMMER_LIBRARY "
                      "to the path of libhammer.so (tried: " + "; ".join(tried) + ")")


_lib, LIBRARY_PATH = _load()

# ---------------------------------------------------------------------------------------------------------------------
# Structs (include/hammer.h; ctypes lays them out as the C compiler does)
# ---------------------------------------------------------------------------------------------------------------------
_i32, _i64, _u64 = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64


STATUS_LIMIT = 16   # HAMMER_STATUS_LIMIT
_reserved2 = _i64 * 2   # reserved fields: 0 in requests, cleared by the library in results


class hammer_bucket(ctypes.Structure):
    _fields_ = [("bucket", _i64), ("count", _i64), ("created", _i64), ("updated", _i64), ("found", _i32),
                ("reserved32", _i32), ("reserved", _reserved2)]


class hammer_decision(ctypes.Structure):
    _fields_ = [("allowed", _i32), ("count", _i64), ("limit", _i64), ("remaining", _i64),
                ("retry_after_ms", _i64), ("reset_after_ms", _i64), ("degraded", _i32), ("reserved32", _i32),
                ("reserved", _i64 * 4)]


class hammer_inspection(ctypes.Structure):
    _fields_ = [("count", _i64), ("remaining", _i64), ("ms_to_next_bucket", _i64), ("created", _i64),
                ("updated", _i64), ("reserved", _i64 * 3)]


class hammer_limit(ctypes.Structure):
    _fields_ = [("algorithm", _i32), ("limit", _i64), ("period_ms", _i64), ("burst", _i64), ("reserved", _reserved2)]


class hammer_count_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("bucket", _i64), ("now_ms", _i64), ("increment", _i64),
                ("reserved", _reserved2)]


class hammer_hit_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("lim", ctypes.POINTER(hammer_limit)), ("cost", _i64), ("now_ms", _i64),
                ("reserved", _reserved2)]


class hammer_check_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("scale_ms", _i64), ("limit", _i64), ("increment", _i64),
                ("reserved", _reserved2)]


class hammer_stats_t(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("spin_cpus", ctypes.c_uint32), ("calls", _u64), ("allowed", _u64),
                ("denied", _u64), ("errors", _u64 * STATUS_LIMIT), ("reconnects", _u64), ("degraded", _u64),
                ("p50_us", _i64), ("p99_us", _i64), ("p999_us", _i64), ("connections", _i64)]


# ---------------------------------------------------------------------------------------------------------------------
# Functions: every declaration of include/hammer.h. STATUS marks an int status return (checked by _check).
# ---------------------------------------------------------------------------------------------------------------------
STATUS = object()
_h = ctypes.c_void_p          # hammer_t *
_s = ctypes.c_char_p          # const char *
_P = ctypes.POINTER
_size = ctypes.c_size_t
_int_p = _P(ctypes.c_int)

_SIGNATURES = {
    # core (issue 2)
    "hammer_open": (STATUS, [_s, _P(ctypes.c_void_p)]),
    "hammer_count_hit": (STATUS, [_h, _s, _i64, _i64, _i64, _P(_i64)]),
    "hammer_get_bucket": (STATUS, [_h, _s, _i64, _P(hammer_bucket)]),
    "hammer_delete_buckets": (STATUS, [_h, _s, _P(_i64)]),
    "hammer_close": (None, [_h]),
    "hammer_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "hammer_last_error": (ctypes.c_char_p, []),
    "hammer_version": (ctypes.c_char_p, []),
    "hammer_version_number": (ctypes.c_uint, []),
    # rate limiting (issue 3)
    "hammer_check_rate": (STATUS, [_h, _s, _i64, _i64, _i64, _P(hammer_decision)]),
    "hammer_check_rate_at": (STATUS, [_h, _s, _i64, _i64, _i64, _i64, _P(hammer_decision)]),
    "hammer_inspect_bucket": (STATUS, [_h, _s, _i64, _i64, _P(hammer_inspection)]),
    "hammer_hit": (STATUS, [_h, _s, _P(hammer_limit), _i64, _P(hammer_decision)]),
    "hammer_peek": (STATUS, [_h, _s, _P(hammer_limit), _P(hammer_decision)]),
    "hammer_hit_at": (STATUS, [_h, _s, _P(hammer_limit), _i64, _i64, _P(hammer_decision)]),
    "hammer_peek_at": (STATUS, [_h, _s, _P(hammer_limit), _i64, _P(hammer_decision)]),
    # batches and statistics
    "hammer_count_hits": (STATUS, [_h, _P(hammer_count_request), _size, _P(_i64), _int_p]),
    "hammer_hit_many": (STATUS, [_h, _P(hammer_hit_request), _size, _P(hammer_decision), _int_p]),
    "hammer_check_rates": (STATUS, [_h, _P(hammer_check_request), _size, _P(hammer_decision), _int_p]),
    "hammer_stats": (STATUS, [_h, _P(hammer_stats_t)]),
}


def _error(status):
    """The exception for a failed call, with the calling thread's hammer_last_error() (read at once)."""
    detail = raw.hammer_last_error()
    message = detail.decode("utf-8", "replace") if detail else ""
    if not message:
        message = strerror(status)
    return _ERRORS.get(status, InternalError)(message, status)


def _check(result, func, args):
    if result != OK:
        raise _error(result)
    return result


class _Functions:
    """The C functions, declared. `raw.<name>` returns the C status as is; `checked.<name>` raises on failure."""


raw = _Functions()
checked = _Functions()
for _name, (_restype, _argtypes) in _SIGNATURES.items():
    for _table, _errcheck in ((raw, None), (checked, _check)):
        _f = _lib[_name]            # a new function object each time, so raw and checked do not share errcheck
        _f.restype = ctypes.c_int if _restype is STATUS else _restype
        _f.argtypes = _argtypes
        if _errcheck is not None and _restype is STATUS:
            _f.errcheck = _errcheck
        setattr(_table, _name, _f)
del _name, _restype, _argtypes, _table, _errcheck, _f


# ---------------------------------------------------------------------------------------------------------------------
# Module functions
# ---------------------------------------------------------------------------------------------------------------------
def version():
    """The library's "MAJOR.MINOR.PATCH"."""
    return raw.hammer_version().decode()


def version_number():
    """The library's MAJOR * 10000 + MINOR * 100 + PATCH (HAMMER_VERSION_NUMBER)."""
    return raw.hammer_version_number()


def strerror(status):
    """Static text for a status (also for unknown values)."""
    if not isinstance(status, int) or not -(1 << 31) <= status < (1 << 31):
        return "unknown hammer status"
    return raw.hammer_strerror(status).decode("utf-8", "replace")


def last_error():
    """The calling thread's latest failure text ("" if none)."""
    return raw.hammer_last_error().decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------------------
# Argument conversion (Python-side checks, so that bad values never reach C as something else)
# ---------------------------------------------------------------------------------------------------------------------
Id = Union[str, bytes, bytearray, memoryview]


def _id(value):
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


def _int64(name, value):
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
    count: int
    created: int
    updated: int


def _int32(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidError(f"{name} must be an int, not {type(value).__name__}")
    if not -(1 << 31) <= value < (1 << 31):
        raise InvalidError(f"{name} is out of the int32 range")
    return value


@dataclass(frozen=True)
class Limit:
    """A limiter description, include/hammer.h's hammer_limit: `limit` hits per `period_ms` with `algorithm`.

    burst is the capacity of the token / leaky bucket and GCRA's burst tolerance (0 means = limit); the windows
    ignore it. Build one with a constructor named after the algorithm, e.g. Limit.token_bucket(10, 1000, burst=20).
    The fields must be ints (InvalidError otherwise); their ranges are checked by the library at the first call.
    A Limit is immutable and may be shared by any number of threads and calls.
    """
    algorithm: int
    limit: int
    period_ms: int
    burst: int = 0
    _c: Any = field(init=False, repr=False, compare=False, hash=False)
    _p: Any = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        c = hammer_limit(_int32("algorithm", self.algorithm), _int64("limit", self.limit),
                         _int64("period_ms", self.period_ms), _int64("burst", self.burst))
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


LimitSpec = Union[Limit, Sequence[int]]


def _limit(spec) -> Limit:
    """A Limit, or a tuple (algorithm, limit, period_ms[, burst]) made into one."""
    if isinstance(spec, Limit):
        return spec
    if isinstance(spec, (tuple, list)) and 3 <= len(spec) <= 4:
        return Limit(*spec)
    raise InvalidError(f"a limit must be a hammer.Limit or (algorithm, limit, period_ms[, burst]), not {spec!r}")


class Decision(NamedTuple):
    """The answer of a rate-limit call (include/hammer.h's hammer_decision). Denied is allowed=False, not an error.

    retry_after_ms is 0 when allowed, the wait after which this same hit can pass when denied, and -1 when it can
    never pass (cost above the limiter's capacity); `retry_after` is the same in seconds (math.inf for -1).
    degraded is True when Redis could not answer and the URL's on_error / fallback policy decided.
    Immutable (a named tuple: the cheapest object Python builds, and a decision is built on every call).
    """
    allowed: bool
    count: int
    limit: int
    remaining: int
    retry_after_ms: int
    reset_after_ms: int
    degraded: bool = False

    @property
    def retry_after(self) -> float:
        """retry_after_ms in seconds; math.inf when the hit can never pass."""
        return math.inf if self.retry_after_ms < 0 else self.retry_after_ms / 1000.0


_byref = ctypes.byref
_raw_count_hit = raw.hammer_count_hit
_raw_check_rate = raw.hammer_check_rate
_raw_hit = raw.hammer_hit


def _decision(d) -> Decision:
    return Decision(d.allowed != 0, d.count, d.limit, d.remaining, d.retry_after_ms, d.reset_after_ms,
                    d.degraded != 0)


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


def _row(row, what, names, defaults):
    """A request of a batch as a tuple of len(names), with `defaults` for its optional last items."""
    if not isinstance(row, (tuple, list)):
        raise InvalidError(f"{what}: a request must be a tuple ({', '.join(names)}), not {type(row).__name__}")
    need = len(names) - len(defaults)
    if not need <= len(row) <= len(names):
        raise InvalidError(f"{what}: a request is ({', '.join(names)}), not {len(row)} items")
    return tuple(row) + tuple(defaults[len(row) - need:])


def _strip_request(message):
    """hammer_last_error() of a batch reads "request N: ..."; the detail without that C index."""
    if message.startswith("request "):
        head, sep, rest = message.partition(": ")
        if sep and head[8:].isdigit():
            return rest
    return message


class Hammer:
    """A libhammer handle: one Redis URL, a pool of connections, usable from many threads at once.

    close() is idempotent and waits for calls in flight on other threads; a call after close raises InvalidError.
    """

    def __init__(self, url):
        if isinstance(url, str):
            url = url.encode("utf-8")
        elif not isinstance(url, bytes):
            raise InvalidError(f"url must be str or bytes, not {type(url).__name__}")
        if b"\0" in url:
            raise InvalidError("config: the URL may not contain a NUL byte")
        self._lock = threading.Lock()
        self._busy = 0
        self._handle = None
        h = ctypes.c_void_p()
        checked.hammer_open(url, ctypes.byref(h))   # raises on failure; the URL (and password) is not kept
        self._handle = h

    # -- lifetime ------------------------------------------------------------------------------------------------
    def close(self):
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
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return f"<hammer.Hammer {'closed' if self.closed else 'open'}>"

    def _call(self, func, *args):
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
        """Adds `increment` hits to bucket `bucket` of `id` stamped `now_ms`; returns the bucket's new count."""
        out = ctypes.c_int64()
        self._fast(_raw_count_hit, _id(id), _int64("bucket", bucket), _int64("now_ms", now_ms),
                   _int64("increment", increment), _byref(out))
        return out.value

    def _fast(self, func, *args):
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
    def hit(self, id: Id, limit: LimitSpec, cost: int = 1, now_ms: Optional[int] = None) -> Decision:
        """Takes `cost` hits from the limiter `limit` of `id` if they fit (a denied hit changes nothing). now_ms None:
        the handle's clock (hammer_hit); else that time (hammer_hit_at)."""
        lim = _limit(limit)
        out = hammer_decision()
        if now_ms is None:
            self._fast(_raw_hit, _id(id), lim._p, _int64("cost", cost), _byref(out))
        else:
            self._call(checked.hammer_hit_at, _id(id), lim._p, _int64("cost", cost), _int64("now_ms", now_ms),
                       ctypes.byref(out))
        return _decision(out)

    def peek(self, id: Id, limit: LimitSpec, now_ms: Optional[int] = None) -> Decision:
        """Whether a hit of cost 1 would pass now (or at now_ms), without side effect: `allowed` as that hit would
        be, count and remaining as they stand (nothing taken); when denied, the very decision that hit would get."""
        lim = _limit(limit)
        out = hammer_decision()
        if now_ms is None:
            self._call(checked.hammer_peek, _id(id), lim._p, ctypes.byref(out))
        else:
            self._call(checked.hammer_peek_at, _id(id), lim._p, _int64("now_ms", now_ms), ctypes.byref(out))
        return _decision(out)

    # -- batches -------------------------------------------------------------------------------------------------
    def _batch(self, func, what, requests, convert, ctype, outtype, result):
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

        def call(h):
            nonlocal detail
            rc = func(h, reqs, n, out, statuses)
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
            results[i] = _ERRORS.get(st, InternalError)(f"{what}: request {i}: {message}", st)
        if rc != OK and first:
            raise _ERRORS.get(rc, InternalError)(detail or strerror(rc), rc)  # the whole call was refused
        del keep
        return results

    def hit_many(self, requests) -> List[Union[Decision, HammerError]]:
        """hit for each request (id, limit, cost[, now_ms]) (cost may be left out: 1; now_ms None: the clock), as
        one pipeline on one connection. Returns a Decision, or the HammerError of that request alone, per request."""
        def convert(row):
            id, spec, cost, now_ms = _row(row, "hit_many", ("id", "limit", "cost", "now_ms"), (1, None))
            lim = _limit(spec)
            now = -1 if now_ms is None else _int64("now_ms", now_ms)
            if now < 0 and now_ms is not None:
                raise InvalidError("now_ms must be from 0 to 2^47")
            return (_id(id), lim._p, _int64("cost", cost), now), lim
        return self._batch(raw.hammer_hit_many, "hit_many", requests, convert, hammer_hit_request, hammer_decision,
                           _decision)

    def count_hits(self, requests) -> List[Union[int, HammerError]]:
        """count_hit for each request (id, bucket, now_ms[, increment]) as one pipeline; the new count, or the
        HammerError of that request alone, per request."""
        def convert(row):
            id, bucket, now_ms, inc = _row(row, "count_hits", ("id", "bucket", "now_ms", "increment"), (1,))
            return (_id(id), _int64("bucket", bucket), _int64("now_ms", now_ms), _int64("increment", inc)), None
        return self._batch(raw.hammer_count_hits, "count_hits", requests, convert, hammer_count_request,
                           ctypes.c_int64, int)

    def check_rates(self, requests) -> List[Union[Decision, HammerError]]:
        """check_rate for each request (id, scale_ms, limit[, increment]) as one pipeline; a Decision, or the
        HammerError of that request alone, per request."""
        def convert(row):
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
                     o.reconnects, o.degraded, o.p50_us, o.p99_us, o.p999_us, o.connections, o.spin_cpus)


# ---------------------------------------------------------------------------------------------------------------------
# Limiter: a Limit bound to a handle and a key, as a decorator or a guard
# ---------------------------------------------------------------------------------------------------------------------
class RateLimited(Exception):
    """A Limiter denied the call. `.retry_after` is the wait in seconds (float; math.inf when the cost can never
    pass), `.decision` the Decision, `.key` the id that was limited. Not a HammerError: nothing failed."""

    def __init__(self, decision: Decision, key=None):
        self.decision = decision
        self.retry_after = decision.retry_after
        self.key = key
        wait = "never" if math.isinf(self.retry_after) else f"retry after {self.retry_after:.3f} s"
        super().__init__(f"rate limited{'' if key is None else f' ({key!r})'}: {wait}")


KeyFunc = Callable[..., Id]


class Limiter:
    """A Limit applied to one key (a fixed id) or to a key per call (a function), on a Hammer handle.

        lim = hammer.Limiter(h, hammer.Limit.token_bucket(10, 1000), key="user:1")
        lim.check()            # -> Decision when allowed, else raises RateLimited
        with lim: ...          # the same check before the block
        @lim                   # the same check before each call of the function
        def f(): ...
        @lim.limit(key=lambda user, *a, **k: f"user:{user}", cost=2)
        def g(user): ...

    A key function is called with the decorated function's arguments, or with none by check() and `with`.
    Coroutine functions are wrapped by coroutine functions (the check itself is one blocking Redis round trip).
    """

    def __init__(self, hammer: Hammer, limit: LimitSpec, key: Union[Id, KeyFunc, None] = None, cost: int = 1):
        if not isinstance(hammer, Hammer):
            raise InvalidError(f"Limiter needs a hammer.Hammer, not {type(hammer).__name__}")
        self.hammer = hammer
        self.limit_spec = _limit(limit)
        self.key = key
        self.cost = _int64("cost", cost)

    def __repr__(self):
        return f"<hammer.Limiter {self.limit_spec!r} key={self.key!r}>"

    def _key(self, key, args, kwargs):
        if key is None:
            raise InvalidError("Limiter: no key (give key= to Limiter, limit() or check())")
        return key(*args, **kwargs) if callable(key) else key

    def check(self, cost: Optional[int] = None, key: Union[Id, KeyFunc, None] = None) -> Decision:
        """Takes `cost` (default: the Limiter's) from the key's limiter: the Decision when allowed, else raises
        RateLimited. `key` overrides the Limiter's key for this call."""
        k = self._key(self.key if key is None else key, (), {})
        d = self.hammer.hit(k, self.limit_spec, self.cost if cost is None else cost)
        if not d.allowed:
            raise RateLimited(d, k)
        return d

    def peek(self, key: Union[Id, KeyFunc, None] = None) -> Decision:
        """The Decision a check of cost 1 would get now, without taking anything."""
        return self.hammer.peek(self._key(self.key if key is None else key, (), {}), self.limit_spec)

    def reset(self, key: Union[Id, KeyFunc, None] = None) -> int:
        """Deletes the key's state (every bucket of that id); returns the number of keys deleted."""
        return self.hammer.delete_buckets(self._key(self.key if key is None else key, (), {}))

    def __enter__(self) -> Decision:
        return self.check()

    def __exit__(self, *exc):
        return False

    def limit(self, key: Union[Id, KeyFunc, None] = None, cost: Optional[int] = None):
        """A decorator that checks before each call, with this key (or the Limiter's) and cost."""
        use_key = self.key if key is None else key
        use_cost = self.cost if cost is None else _int64("cost", cost)
        if use_key is None:
            raise InvalidError("Limiter.limit: no key (give key= to Limiter or limit())")

        def before(args, kwargs):
            k = self._key(use_key, args, kwargs)
            d = self.hammer.hit(k, self.limit_spec, use_cost)
            if not d.allowed:
                raise RateLimited(d, k)

        def decorate(func):
            if inspect.iscoroutinefunction(func):
                @functools.wraps(func)
                async def async_wrapper(*args, **kwargs):
                    before(args, kwargs)
                    return await func(*args, **kwargs)
                return async_wrapper

            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                before(args, kwargs)
                return func(*args, **kwargs)
            return wrapper
        return decorate

    def __call__(self, func):
        """`@limiter`: the decorator of limit() with the Limiter's own key and cost."""
        return self.limit()(func)
