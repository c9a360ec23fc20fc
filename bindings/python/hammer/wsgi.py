"""WSGI middleware: a Limit per client address (or per key of your function) in front of any WSGI app.

    import hammer, hammer.wsgi
    app = hammer.wsgi.RateLimitMiddleware(app, hammer.Hammer(URL), hammer.Limit.sliding_window(100, 60_000))

As hammer.asgi's middleware, on the WSGI environ: the key is REMOTE_ADDR by default; a key function gets the environ
and returns str, bytes, or None to let the request through unlimited. A denied request gets 429 with Retry-After;
every limited response carries RateLimit-Policy and RateLimit. A Redis failure raises (a 500) unless the URL's
on_error= or fallback= policy decides.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _api
from ._api import LimitSpec
from ._http import Policy, address_key
from .errors import InvalidError

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
KeyFunc = Callable[[Environ], Union[str, bytes, None]]

__all__ = ["RateLimitMiddleware"]


def client_address(environ: Environ) -> str:
    return address_key(environ.get("REMOTE_ADDR"))


class RateLimitMiddleware:
    """Limits the requests of a WSGI app (see the module's docstring). `hammer` is a hammer.Hammer or a URL."""

    def __init__(self, app: WSGIApp, hammer: Union["_api.Hammer", str], limit: LimitSpec, *,
                 key: Optional[KeyFunc] = None, prefix: str = "http:", cost: int = 1,
                 policy: str = "default") -> None:
        if isinstance(hammer, str):
            hammer = _api.Hammer(hammer)
        if not isinstance(hammer, _api.Hammer):
            raise InvalidError(f"hammer must be a hammer.Hammer or a URL, not {type(hammer).__name__}")
        if key is not None and not callable(key):
            raise InvalidError("key must be a function of the WSGI environ")
        self.app = app
        self.hammer = hammer
        self.policy = Policy(limit, prefix, cost, policy)
        self.key_func: KeyFunc = key or client_address

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        key = self.key_func(environ)
        if key is None:
            return self.app(environ, start_response)
        p = self.policy
        d = self.hammer.hit(p.key(key), p.limit, p.cost)
        if not d.allowed:
            headers, body = p.denied(d)
            start_response("429 Too Many Requests", headers)
            return [body]
        extra = p.headers(d)

        def start_with_headers(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + extra, exc_info)

        return self.app(environ, start_with_headers)
