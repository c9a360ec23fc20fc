"""What the ASGI and WSGI middleware share: the rate-limit response headers, the 429 and 503 responses, argument checks.

Headers follow the IETF draft "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-09):
    RateLimit-Policy: "default";q=100;w=60      the policy: q units per window of w seconds
    RateLimit: "default";r=42;t=17              what remains (r) and the seconds until the quota is full again (t)
and, on a 429, Retry-After: the seconds after which this same request passes (absent when it never can).

q and w per algorithm (quota()), so that r is never above the q it is shown against:
    fixed_window, sliding_window,  q = limit, w = the period
    sliding_counter
    token_bucket, leaky_bucket,    q = the capacity (burst, or limit when burst is 0), w = the seconds the empty
    gcra                           limiter takes to refill it at limit per period (capacity x period / limit): a token
                                   bucket of rate 10 per second and burst 20 is q=20;w=2
r is the Decision's remaining, at most q; t its reset_after_ms in whole seconds, rounded up. A decision made without
Redis (degraded: the URL's on_error= or fallback= policy decided) carries no RateLimit fields: they would describe
a state that no store holds.
"""
import logging
import re
import threading
import time
from typing import Any, List, Tuple, Union

from ._api import FIXED_WINDOW, SLIDING_COUNTER, SLIDING_WINDOW, Decision, Limit, LimitSpec, _int64, _limit
from ._parse import parse_one
from .errors import HammerError, InvalidError

Headers = List[Tuple[str, str]]
BODY = b"Too Many Requests\n"
UNAVAILABLE_BODY = b"Service Unavailable: the rate limiter cannot decide (its Redis failed; see the server's log)\n"
_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.:\-/ ]{1,64}$")
log = logging.getLogger("hammer")


def _ceil_seconds(ms: int) -> int:
    return max(0, -(-ms // 1000))


def quota(limit: Limit) -> Tuple[int, int]:
    """(q, w) of RateLimit-Policy for a Limit: the units a client may take at once and the window in whole seconds
    (at least 1) over which they come back (see the module's docstring, per algorithm)."""
    if limit.algorithm in (FIXED_WINDOW, SLIDING_WINDOW, SLIDING_COUNTER):
        return limit.limit, max(1, _ceil_seconds(limit.period_ms))
    capacity = limit.burst or limit.limit
    return capacity, max(1, _ceil_seconds(-(-capacity * limit.period_ms // limit.limit)))


def remaining(d: Decision, q: int) -> int:
    """The Decision's remaining as RateLimit's r: from 0 to q."""
    return min(max(0, d.remaining), q)


class Policy:
    """The limit, cost, key prefix and policy name of a middleware, checked once at start-up. `limit` is a Limit, a
    tuple, or a string of one limit in `limits`' notation ("100/minute", fixed window: see hammer.parse)."""

    def __init__(self, limit: Union[LimitSpec, str], prefix: str, cost: int, policy: str) -> None:
        self.limit: Limit = parse_one(limit) if isinstance(limit, str) else _limit(limit)
        if not isinstance(prefix, str):
            raise InvalidError(f"prefix must be a str, not {type(prefix).__name__}")
        self.prefix = prefix
        self.cost = _int64("cost", cost)
        if not isinstance(policy, str) or not _POLICY_NAME.match(policy):
            raise InvalidError("policy must be 1 to 64 characters of letters, digits, space and _.:-/")
        self.name = policy
        self.quota, self.window_s = quota(self.limit)

    def key(self, key: Any) -> str:
        if not isinstance(key, (str, bytes)):
            raise InvalidError(f"a key function must return str, bytes or None, not {type(key).__name__}")
        return self.prefix + (key.decode("utf-8", "replace") if isinstance(key, bytes) else key)

    def headers(self, d: Decision) -> Headers:
        out = [] if d.degraded else [
            ("RateLimit-Policy", f'"{self.name}";q={self.quota};w={self.window_s}'),
            ("RateLimit", f'"{self.name}";r={remaining(d, self.quota)};t={_ceil_seconds(d.reset_after_ms)}')]
        if not d.allowed and d.retry_after_ms >= 0:
            out.append(("Retry-After", str(max(1, _ceil_seconds(d.retry_after_ms)))))
        return out

    def denied(self, d: Decision) -> Tuple[Headers, bytes]:
        """The headers and body of the 429 response."""
        return ([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]
                + self.headers(d), BODY)


_LOG_EVERY_S = 10.0
_logged = {"at": -_LOG_EVERY_S, "quiet": 0}
_log_lock = threading.Lock()


def unavailable(error: HammerError, where: str) -> Tuple[Headers, bytes]:
    """The headers and body of the 503 response to a request that the library could not decide (Redis down, a
    timeout, no URL policy set), after logging `error` on the "hammer" logger (at most once per 10 seconds, with the
    number of failures not logged since, so that an outage does not flood the log). Retry-After: 1, since the library
    retries its connections on the next calls."""
    now = time.monotonic()
    with _log_lock:
        quiet = _logged["quiet"]
        if now - _logged["at"] < _LOG_EVERY_S:
            _logged["quiet"] = quiet + 1
            quiet = -1
        else:
            _logged["at"], _logged["quiet"] = now, 0
    if quiet >= 0:
        log.error("hammer %s: rate limit not decided, answering 503: %s: %s%s", where, type(error).__name__, error,
                  f" ({quiet} more since the last message)" if quiet else "")
    return ([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(UNAVAILABLE_BODY))),
             ("Retry-After", "1")], UNAVAILABLE_BODY)

