"""ASGI middleware: a Limit per client address (or per key of your function) in front of any ASGI app.

    import hammer, hammer.aio, hammer.asgi
    app = hammer.asgi.RateLimitMiddleware(app, hammer.aio.Hammer(URL), hammer.Limit.token_bucket(10, 1000),
                                          key=lambda scope: dict(scope["headers"]).get(b"x-api-key"))

Each HTTP request takes `cost` from the limiter `prefix + key`; the key is the client address by default (behind a
proxy, give a key function that reads the header your proxy sets). A key function gets the ASGI scope and returns
str, bytes, or None to let the request through unlimited. A denied request gets 429 with Retry-After; every limited
response carries RateLimit-Policy and RateLimit (hammer._http says which draft). The call to Redis runs off the event
loop (hammer.aio). A Redis failure raises (a 500) unless the URL's on_error= or fallback= policy decides. Other scope
types (websocket, lifespan) pass through.
"""
from typing import Any, Awaitable, Callable, List, MutableMapping, Optional, Tuple, Union

from . import _api, aio
from ._api import LimitSpec
from ._http import Policy, address_key
from .errors import InvalidError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
KeyFunc = Callable[[Scope], Union[str, bytes, None]]

__all__ = ["RateLimitMiddleware"]


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return address_key(client[0] if client else None)


def _encode(headers: List[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class RateLimitMiddleware:
    """Limits the HTTP requests of an ASGI app (see the module's docstring). `hammer` is a hammer.aio.Hammer, a
    hammer.Hammer (used through a hammer.aio.Hammer) or a URL."""

    def __init__(self, app: ASGIApp, hammer: Union["aio.Hammer", "_api.Hammer", str], limit: LimitSpec, *,
                 key: Optional[KeyFunc] = None, prefix: str = "http:", cost: int = 1,
                 policy: str = "default") -> None:
        if isinstance(hammer, (str, _api.Hammer)):
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
        d = await self.hammer.hit(p.key(key), p.limit, p.cost)
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
