"""ASGI middleware: a Limit per client address (or per key of your function) in front of any ASGI app.

    import hammer, hammer.aio, hammer.asgi
    app = hammer.asgi.RateLimitMiddleware(app, hammer.aio.Hammer(URL), hammer.Limit.token_bucket(10, 1000),
                                          key=lambda scope: dict(scope["headers"]).get(b"x-api-key"))

Each HTTP request takes `cost` from the limiter `prefix + key`. The key is the client address by default
(hammer.keys.client_address; a request without one, as on a unix socket, raises hammer.keys.NoClientAddress rather
than sharing one key); behind a proxy give key=hammer.keys.forwarded_address(trusted_proxies=N). A key function gets
the ASGI scope and returns str, bytes, or None to let the request through unlimited. `limit` is a Limit or one limit
in `limits`' notation ("100/minute": hammer.parse). A denied request gets 429 with Retry-After; every limited
response carries RateLimit-Policy and RateLimit (hammer._http says what they hold per algorithm). The call to Redis
runs off the event loop (hammer.aio). Given a URL, the middleware opens its handle at once (a bad URL raises then),
and when Redis cannot be reached then, at a later request, so the app starts while Redis is down.

When Redis fails, the request is answered all the same, never with an exception into the server: decided by the URL's
on_error= or fallback= policy when it has one (a Decision with degraded=True), else 503 Service Unavailable with
Retry-After: 1 and a plain-text body, the error logged on the "hammer" logger. Other scope types (websocket,
lifespan) pass through.
"""
from typing import Any, Awaitable, Callable, List, MutableMapping, Optional, Tuple, Union

from . import _api, aio, keys
from ._api import LimitSpec
from ._http import Policy, log, unavailable
from .errors import ConnectError, HammerError, HammerTimeout, InvalidError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyFunc = Callable[[Scope], Union[str, bytes, None]]

__all__ = ["RateLimitMiddleware"]


def client_address(scope: Scope) -> str:
    """The client's address of an ASGI scope (hammer.keys.client_address): NoClientAddress when it has none."""
    return keys.client_address(scope)


def _encode(headers: List[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _open(url: str) -> "aio.Hammer":
    """The handle of a URL, opened now so that a bad URL fails at start-up (InvalidError); when Redis cannot be reached
    (ConnectError, a timeout), a hammer.aio.Hammer that opens at a later request instead."""
    try:
        return aio.Hammer(_api.Hammer(url))
    except (ConnectError, HammerTimeout) as e:
        log.warning("hammer asgi: cannot reach Redis at start-up (%s: %s); will try again at each request",
                    type(e).__name__, e)
        return aio.Hammer(url)


class RateLimitMiddleware:
    """Limits the HTTP requests of an ASGI app (see the module's docstring). `hammer` is a hammer.aio.Hammer, a
    hammer.Hammer (used through a hammer.aio.Hammer) or a URL. `limit` is a
    hammer.Limit, a tuple (algorithm, limit, period_ms[, burst]) or one limit string ("100/minute", hammer.parse_one).

    Keywords:
      key     a function of the request returning the limiter's key (str or bytes), or None to let the request through
              unlimited; default: the client's address (hammer.keys.client_address), which raises
              hammer.keys.NoClientAddress on a unix-socket server; behind proxies use
              hammer.keys.forwarded_address(trusted_proxies=N)
      prefix  put before every key in Redis (default "http:"), so that several middleware or apps do not share state
      cost    what each request takes from the limiter (default 1)
      policy  the name of the policy in the RateLimit-Policy and RateLimit fields (default "default"; 1 to 64 letters,
              digits, space and _.:-/)

    Responses: an allowed request goes to the app, with RateLimit-Policy: "<policy>";q=Q;w=W and
    RateLimit: "<policy>";r=R;t=T added; a denied one gets 429 Too Many Requests, text/plain, with the same fields
    and Retry-After (seconds; absent when the cost can never pass). Per algorithm:
      fixed_window, sliding_window, sliding_counter   Q = limit, W = the period in seconds
      token_bucket, leaky_bucket, gcra                Q = the capacity (burst, or limit), W = the seconds to refill it
                                                      (capacity x period / limit): rate 10/s, burst 20 is q=20;w=2
    R (remaining) is never above Q; T is the seconds until the limiter is full again (rounded up).
    When Redis fails: the URL's on_error=allow|deny or fallback=local decides if set (without RateLimit fields), else
    503 Service Unavailable, Retry-After: 1, logged on the "hammer" logger; never an exception into the server.
    """

    def __init__(self, app: ASGIApp, hammer: Union["aio.Hammer", "_api.Hammer", str],
                 limit: Union[LimitSpec, str], *,
                 key: Optional[KeyFunc] = None, prefix: str = "http:", cost: int = 1,
                 policy: str = "default") -> None:
        if isinstance(hammer, str):
            hammer = _open(hammer)
        elif isinstance(hammer, _api.Hammer):
            hammer = aio.Hammer(hammer)
        if not isinstance(hammer, aio.Hammer):
            raise InvalidError(f"hammer must be a hammer.aio.Hammer, hammer.Hammer or URL, not {type(hammer).__name__}")
        if key is not None and not callable(key):
            raise InvalidError("key must be a function of the ASGI scope")
        self.app = app
        self.hammer = hammer
        self.policy = Policy(limit, prefix, cost, policy)
        self.key_func: KeyFunc = key or client_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        key = self.key_func(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        p = self.policy
        id = p.key(key)
        try:
            d = await self.hammer.hit(id, p.limit, p.cost)
        except HammerError as e:   # ConnectError is an OSError: servers take those for a broken client socket
            headers, body = unavailable(e, "asgi")
            await send({"type": "http.response.start", "status": 503, "headers": _encode(headers)})
            await send({"type": "http.response.body", "body": body})
            return
        if not d.allowed:
            headers, body = p.denied(d)
            await send({"type": "http.response.start", "status": 429, "headers": _encode(headers)})
            await send({"type": "http.response.body", "body": body})
            return
        extra = _encode(p.headers(d))

        async def send_with_headers(message: Message) -> None:
            if message.get("type") == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", ())) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
