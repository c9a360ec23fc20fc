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

Layout of this module, for whoever adds functions: the ctypes mirror of every struct in include/hammer.h, then one
table `_SIGNATURES` giving restype and argtypes of every C function (status-returning ones get `_check` as errcheck),
then the Python API. A new method on Hammer is "convert the arguments, self._call(C function, ...), build the result".
"""
import ctypes
import ctypes.util
import os
import threading
from typing import NamedTuple, Optional, Union

__all__ = [
    "Hammer", "Bucket", "version", "strerror", "last_error", "LIBRARY_PATH",
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


class hammer_bucket(ctypes.Structure):
    _fields_ = [("bucket", _i64), ("count", _i64), ("created", _i64), ("updated", _i64), ("found", _i32)]


class hammer_decision(ctypes.Structure):
    _fields_ = [("allowed", _i32), ("count", _i64), ("limit", _i64), ("remaining", _i64),
                ("retry_after_ms", _i64), ("reset_after_ms", _i64), ("degraded", _i32)]


class hammer_inspection(ctypes.Structure):
    _fields_ = [("count", _i64), ("remaining", _i64), ("ms_to_next_bucket", _i64), ("created", _i64),
                ("updated", _i64)]


class hammer_limit(ctypes.Structure):
    _fields_ = [("algorithm", _i32), ("limit", _i64), ("period_ms", _i64), ("burst", _i64)]


class hammer_count_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("bucket", _i64), ("now_ms", _i64), ("increment", _i64)]


class hammer_hit_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("lim", ctypes.POINTER(hammer_limit)), ("cost", _i64), ("now_ms", _i64)]


class hammer_check_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("scale_ms", _i64), ("limit", _i64), ("increment", _i64)]


class hammer_stats_t(ctypes.Structure):
    _fields_ = [("calls", _u64), ("allowed", _u64), ("denied", _u64), ("errors", _u64 * 8), ("reconnects", _u64),
                ("degraded", _u64), ("p50_us", _i64), ("p99_us", _i64), ("p999_us", _i64), ("connections", _i64)]


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
        self._lock = threading.Condition(threading.Lock())
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
            while self._busy:
                lock.wait()
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
                if not self._busy:
                    self._lock.notify_all()

    # -- core ----------------------------------------------------------------------------------------------------
    def count_hit(self, id: Id, bucket: int, now_ms: int, increment: int = 1) -> int:
        """Adds `increment` hits to bucket `bucket` of `id` stamped `now_ms`; returns the bucket's new count."""
        out = ctypes.c_int64()
        self._call(checked.hammer_count_hit, _id(id), _int64("bucket", bucket), _int64("now_ms", now_ms),
                   _int64("increment", increment), ctypes.byref(out))
        return out.value

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
