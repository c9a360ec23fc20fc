"""What the ASGI and WSGI middleware share: the rate-limit response headers, the 429 response, argument checks.

Headers follow the IETF draft "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-09):
    RateLimit-Policy: "default";q=100;w=60      the policy: q units per window of w seconds
    RateLimit: "default";r=42;t=17              what remains (r) and the seconds until the quota is full again (t)
and, on a 429, Retry-After: the seconds after which this same request passes (absent when it never can).
"""
import re
from typing import Any, List, Optional, Tuple

from ._api import Decision, Limit, LimitSpec, _int64, _limit
from .errors import InvalidError

Headers = List[Tuple[str, str]]
BODY = b"Too Many Requests\n"
_POLICY_NAME = re.compile(r"^[A-Za-z0-9_.:\-/ ]{1,64}$")


def _ceil_seconds(ms: int) -> int:
    return max(0, -(-ms // 1000))


class Policy:
    """The limit, cost, key prefix and policy name of a middleware, checked once at start-up."""

    def __init__(self, limit: LimitSpec, prefix: str, cost: int, policy: str) -> None:
        self.limit: Limit = _limit(limit)
        if not isinstance(prefix, str):
            raise InvalidError(f"prefix must be a str, not {type(prefix).__name__}")
        self.prefix = prefix
        self.cost = _int64("cost", cost)
        if not isinstance(policy, str) or not _POLICY_NAME.match(policy):
            raise InvalidError("policy must be 1 to 64 characters of letters, digits, space and _.:-/")
        self.name = policy
        self.window_s = max(1, _ceil_seconds(self.limit.period_ms))

    def key(self, key: Any) -> str:
        if not isinstance(key, (str, bytes)):
            raise InvalidError(f"a key function must return str, bytes or None, not {type(key).__name__}")
        return self.prefix + (key.decode("utf-8", "replace") if isinstance(key, bytes) else key)

    def headers(self, d: Decision) -> Headers:
        out = [("RateLimit-Policy", f'"{self.name}";q={d.limit};w={self.window_s}'),
               ("RateLimit", f'"{self.name}";r={max(0, d.remaining)};t={_ceil_seconds(d.reset_after_ms)}')]
        if not d.allowed and d.retry_after_ms >= 0:
            out.append(("Retry-After", str(max(1, _ceil_seconds(d.retry_after_ms)))))
        return out

    def denied(self, d: Decision) -> Tuple[Headers, bytes]:
        """The headers and body of the 429 response."""
        return ([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]
                + self.headers(d), BODY)


def address_key(host: Optional[str]) -> str:
    """The client address as a key; "" (one key shared by all) when the server gives none (a unix socket)."""
    return host or ""
