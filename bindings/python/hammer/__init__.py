"""hammer — Python binding of libhammer, the Redis backend of the Hammer rate limiter (standard library only, ctypes).

    import hammer
    with hammer.Hammer("redis://127.0.0.1:6379/?expiry_ms=60000") as h:
        h.count_hit("user:42", bucket=1, now_ms=1000)        # -> 1, the bucket's new count
        h.get_bucket("user:42", 1)                           # -> Bucket(bucket=1, count=1, created=1000, updated=1000)
        h.delete_buckets("user:42")                          # -> 1, the number of keys deleted

The library is found through the environment variable HAMMER_LIBRARY (a path), then the wheel's own copy
(hammer/_lib/), then the system (libhammer.so.1 as the dynamic loader finds it, e.g. after `make install`), then a
source checkout's build/lib/libhammer.so (built by `make lib`). LIBRARY_PATH is the file loaded, LIBRARY_SOURCE
where it came from ("HAMMER_LIBRARY", "wheel", "system" or "checkout").

Exceptions are the built-in ones callers already catch: InvalidError is a ValueError, HammerTimeout a
TimeoutError, ConnectError a ConnectionError (NoMemoryError a MemoryError); all are HammerError.

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
                                                                # (None, not a number, when it never can)
        h.peek("user:42", per_second)                           # what a hit would get, without taking it
        h.hit_many([("a", per_second, 1), ("b", per_second, 2, 1_700_000_000_000)])   # one pipeline
        h.stats().allowed                                       # counters and latency percentiles of the handle

Limits may also be written in the notation of the `limits` package (Flask-Limiter, slowapi):
hammer.parse("10/second;1000/day") is [Limit.fixed_window(10, 1000), Limit.fixed_window(1000, 86_400_000)], and
parse(s, algorithm="sliding_window") picks the algorithm (hammer._parse says the whole notation).

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
        if e.retry_after is not None:                           # None: this cost can never pass
            time.sleep(e.retry_after)

hammer.aio has the same calls as coroutines and an async Limiter; hammer.asgi and hammer.wsgi hold middleware;
`python -m hammer URL inspect|reset|stats|bench` is the operator's command line.

Integers only: every count, time and limit must be an int (bool, float and str are refused with InvalidError, never
rounded or parsed), and every value the C library refuses (unknown algorithm, limit < 1, period < 1, burst < 0,
cost < 0, now_ms outside 0 .. 2^47) is an InvalidError too; so a bad limit is always InvalidError, never TypeError,
and a Limit is checked when it is made (a bad one fails at start-up, not at the first request).

Layout of the package: errors.py (statuses, exceptions), _loader.py (finding the library), _native.py (the ctypes
mirror of every struct of include/hammer.h and one table SIGNATURES of every C function), _api.py (Hammer and its
results), _parse.py (limit strings), limiter.py, aio.py, asgi.py / wsgi.py / _http.py (middleware), cli.py
(python -m hammer).
"""
from ._api import (ALGORITHMS, FIXED_WINDOW, GCRA, LEAKY_BUCKET, SLIDING_COUNTER, SLIDING_WINDOW, TOKEN_BUCKET, Bucket,
                   Decision, Hammer, Id, Inspection, Limit, Limits, LimitSpec, Stats)
# The ctypes layer stays reachable (hammer.raw, hammer.checked, the structs) for tests and callers of the C API.
from ._native import (LIBRARY_PATH, LIBRARY_SOURCE, MAX_LIMITS, SIGNATURES, STATUS_LIMIT, checked,  # noqa: F401
                      hammer_bucket, hammer_check_request, hammer_count_request, hammer_decision, hammer_hit_request,
                      hammer_completion, hammer_inspection, hammer_limit, hammer_multi_request, hammer_op,
                      hammer_stats_t, last_error, raw,
                      strerror, version, version_number)
from ._native import _check  # noqa: F401
from ._native import error as _error  # noqa: F401
from ._version import __version__
from .errors import (ERR_CONNECT, ERR_INTERNAL, ERR_INVALID, ERR_NOMEM, ERR_PROTOCOL, ERR_REDIS, ERR_TIMEOUT, OK,
                     STATUS_NAMES, ConnectError, HammerError, HammerTimeout, InternalError, InvalidError,
                     NoMemoryError, ProtocolError, RedisError)
from ._parse import parse, parse_one
from .limiter import Limiter, RateLimited

_SIGNATURES = SIGNATURES  # the name of earlier releases

__all__ = [
    "__version__", "Hammer", "Bucket", "version", "version_number", "strerror", "last_error", "LIBRARY_PATH",
    "LIBRARY_SOURCE",
    "MAX_LIMITS", "Limit", "LimitSpec", "Limits", "parse", "parse_one", "Id", "Decision", "Inspection", "Stats",
    "Limiter", "RateLimited",
    "FIXED_WINDOW", "SLIDING_WINDOW", "TOKEN_BUCKET", "LEAKY_BUCKET", "GCRA", "SLIDING_COUNTER", "ALGORITHMS",
    "HammerError", "InvalidError", "ConnectError", "HammerTimeout", "RedisError", "ProtocolError", "NoMemoryError",
    "InternalError", "STATUS_NAMES",
    "OK", "ERR_INVALID", "ERR_CONNECT", "ERR_TIMEOUT", "ERR_REDIS", "ERR_PROTOCOL", "ERR_NOMEM", "ERR_INTERNAL",
]
