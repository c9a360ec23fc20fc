"""The C side: the ctypes mirror of every struct in include/hammer.h, then one table `SIGNATURES` giving restype and
argtypes of every C function (status-returning ones get `_check` as errcheck in the `checked` table)."""
import ctypes
from typing import Any, Dict, List, Optional, Tuple

from . import _loader
from .errors import OK, HammerError, error_for

lib, LIBRARY_PATH, LIBRARY_SOURCE = _loader.load()

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
                ("retry_after_ms", _i64), ("reset_after_ms", _i64), ("degraded", _i32), ("decided_by", _i32),
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


MAX_LIMITS = 16   # HAMMER_MAX_LIMITS


class hammer_multi_request(ctypes.Structure):
    _fields_ = [("id", ctypes.c_char_p), ("lims", ctypes.POINTER(hammer_limit)), ("n_lims", ctypes.c_size_t),
                ("cost", _i64), ("now_ms", _i64), ("reserved", _reserved2)]


class hammer_op(ctypes.Structure):
    _fields_ = [("kind", _i32), ("reserved32", _i32), ("tag", _u64), ("id", ctypes.c_char_p),
                ("lims", ctypes.POINTER(hammer_limit)), ("n_lims", ctypes.c_size_t), ("bucket", _i64),
                ("scale_ms", _i64), ("limit", _i64), ("amount", _i64), ("now_ms", _i64), ("reserved", _i64 * 4)]


MESSAGE_BYTES = 256   # HAMMER_MESSAGE_BYTES


class hammer_completion(ctypes.Structure):
    _fields_ = [("tag", _u64), ("status", _i32), ("kind", _i32), ("value", _i64), ("decision", hammer_decision),
                ("bucket", hammer_bucket), ("inspection", hammer_inspection), ("reserved", _i64 * 4),
                ("message", ctypes.c_char * MESSAGE_BYTES)]


# HAMMER_OP_* (include/hammer.h)
OP_COUNT_HIT, OP_GET_BUCKET, OP_DELETE_BUCKETS, OP_CHECK_RATE, OP_CHECK_RATE_AT, OP_INSPECT_BUCKET = 1, 2, 3, 4, 5, 6
OP_HIT, OP_HIT_AT, OP_PEEK, OP_PEEK_AT, OP_HIT_ALL, OP_HIT_ALL_AT, OP_PEEK_ALL, OP_PEEK_ALL_AT = range(7, 15)


class hammer_stats_t(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("spin_cpus", ctypes.c_uint32), ("calls", _u64), ("allowed", _u64),
                ("denied", _u64), ("errors", _u64 * STATUS_LIMIT), ("reconnects", _u64), ("degraded", _u64),
                ("p50_us", _i64), ("p99_us", _i64), ("p999_us", _i64), ("connections", _i64),
                ("cluster_moved", _u64), ("cluster_ask", _u64), ("cluster_tryagain", _u64), ("cluster_down", _u64),
                ("cluster_map_reads", _u64), ("cluster_nodes", _u64), ("deny_cache_hits", _u64)]


# ---------------------------------------------------------------------------------------------------------------------
# Functions: every declaration of include/hammer.h. STATUS marks an int status return (checked by _check).
# ---------------------------------------------------------------------------------------------------------------------
STATUS = object()
_h = ctypes.c_void_p          # hammer_t *
_s = ctypes.c_char_p          # const char *
_P = ctypes.POINTER
_size = ctypes.c_size_t
_int_p = _P(ctypes.c_int)

SIGNATURES: Dict[str, Tuple[Any, List[Any]]] = {
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
    # several limits, one decision (issue 19)
    "hammer_hit_all": (STATUS, [_h, _s, _P(hammer_limit), _size, _i64, _P(hammer_decision)]),
    "hammer_hit_all_at": (STATUS, [_h, _s, _P(hammer_limit), _size, _i64, _i64, _P(hammer_decision)]),
    "hammer_peek_all": (STATUS, [_h, _s, _P(hammer_limit), _size, _P(hammer_decision)]),
    "hammer_peek_all_at": (STATUS, [_h, _s, _P(hammer_limit), _size, _i64, _P(hammer_decision)]),
    # batches and statistics
    "hammer_count_hits": (STATUS, [_h, _P(hammer_count_request), _size, _P(_i64), _int_p]),
    "hammer_hit_many": (STATUS, [_h, _P(hammer_hit_request), _size, _P(hammer_decision), _int_p]),
    "hammer_check_rates": (STATUS, [_h, _P(hammer_check_request), _size, _P(hammer_decision), _int_p]),
    "hammer_hit_all_many": (STATUS, [_h, _P(hammer_multi_request), _size, _P(hammer_decision), _int_p]),
    "hammer_stats": (STATUS, [_h, _P(hammer_stats_t)]),
    # non-blocking calls (issue 17)
    "hammer_submit": (STATUS, [_h, _P(hammer_op), _size]),
    "hammer_fd": (ctypes.c_int, [_h]),
    "hammer_drain": (_size, [_h, _P(hammer_completion), _size]),
    "hammer_pending": (_size, [_h]),
    "hammer_shutdown": (STATUS, [_h]),
}


class _Functions:
    """The C functions, declared. `raw.<name>` returns the C status as is; `checked.<name>` raises on failure."""

    def __getattr__(self, name: str) -> Any:  # for type checkers: every attribute is a declared C function
        raise AttributeError(name)


raw = _Functions()
checked = _Functions()


def strerror(status: int) -> str:
    """Static text for a status (also for unknown values)."""
    if not isinstance(status, int) or not -(1 << 31) <= status < (1 << 31):
        return "unknown hammer status"
    text: Optional[bytes] = raw.hammer_strerror(status)
    return text.decode("utf-8", "replace") if text else "unknown hammer status"


def last_error() -> str:
    """The calling thread's latest failure text ("" if none)."""
    text: Optional[bytes] = raw.hammer_last_error()
    return text.decode("utf-8", "replace") if text else ""


def error(status: int) -> HammerError:
    """The exception for a failed call, with the calling thread's hammer_last_error() (read at once)."""
    return error_for(status, last_error() or strerror(status))


def _check(result: int, func: Any, args: Any) -> int:
    if result != OK:
        raise error(result)
    return result


for _name, (_restype, _argtypes) in SIGNATURES.items():
    for _table, _errcheck in ((raw, None), (checked, _check)):
        _f = lib[_name]            # a new function object each time, so raw and checked do not share errcheck
        _f.restype = ctypes.c_int if _restype is STATUS else _restype
        _f.argtypes = _argtypes
        if _errcheck is not None and _restype is STATUS:
            _f.errcheck = _errcheck  # type: ignore[assignment]  # typeshed's errcheck type is narrower
        setattr(_table, _name, _f)
del _name, _restype, _argtypes, _table, _errcheck, _f


def version() -> str:
    """The loaded library's "MAJOR.MINOR.PATCH"."""
    text: bytes = raw.hammer_version()
    return text.decode()


def version_number() -> int:
    """The library's MAJOR * 10000 + MINOR * 100 + PATCH (HAMMER_VERSION_NUMBER)."""
    number: int = raw.hammer_version_number()
    return number
