"""WSGI middleware: a Limit per client address (or per key of your function) in front of any WSGI app.

    import hammer, hammer.wsgi
    app = hammer.wsgi.RateLimitMiddleware(app, hammer.Hammer(URL), hammer.Limit.sliding_window(100, 60_000))

As hammer.asgi's middleware, on the WSGI environ: the key is REMOTE_ADDR by default (hammer.keys.client_address:
NoClientAddress when the server gives none); a key function gets the environ and returns str, bytes, or None to let
the request through unlimited. A denied request gets 429 with Retry-After; every limited response carries
RateLimit-Policy and RateLimit.

When Redis fails, the request is answered all the same, never with an exception into the server (gunicorn takes an
OSError, as hammer.ConnectError is, for a broken client socket and closes the connection without a reply): decided by
the URL's on_error= or fallback= policy when it has one, else 503 Service Unavailable with Retry-After: 1, the error
logged on the "hammer" logger. Given a URL, the middleware opens its handle at once, and when Redis cannot be reached
then (a ConnectError or a timeout; a bad URL still raises) at a later request, so the app starts while Redis is down.
"""
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _api, keys
from ._api import LimitSpec
from ._http import Policy, log, unavailable
from .errors import ConnectError, HammerError, HammerTimeout, InvalidError

Environ = Dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
KeyFunc = Callable[[Environ], Union[str, bytes, None]]

__all__ = ["RateLimitMiddleware"]


def client_address(environ: Environ) -> str:
    """The client's address of a WSGI environ (hammer.keys.client_address): NoClientAddress when it has none."""
    return keys.client_address(environ)


class RateLimitMiddleware:
    """Limits the requests of a WSGI app (see the module's docstring). `hammer` is a hammer.Hammer or a URL.
    `limit` is a hammer.Limit, a tuple (algorithm, limit, period_ms[, burst]) or one limit string ("100/minute",
    hammer.parse_one).

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

    def __init__(self, app: WSGIApp, hammer: Union["_api.Hammer", str], limit: Union[LimitSpec, str], *,
                 key: Optional[KeyFunc] = None, prefix: str = "http:", cost: int = 1,
                 policy: str = "default") -> None:
        if not isinstance(hammer, (str, _api.Hammer)):
            raise InvalidError(f"hammer must be a hammer.Hammer or a URL, not {type(hammer).__name__}")
        if key is not None and not callable(key):
            raise InvalidError("key must be a function of the WSGI environ")
        self.app = app
        self.policy = Policy(limit, prefix, cost, policy)
        self.key_func: KeyFunc = key or client_address
        self._url: Optional[str] = None
        self._lock = threading.Lock()
        self.hammer: Optional[_api.Hammer] = None
        if isinstance(hammer, _api.Hammer):
            self.hammer = hammer
            return
        try:
            self.hammer = _api.Hammer(hammer)
        except (ConnectError, HammerTimeout) as e:   # Redis down: open at a later request; a bad URL raises
            log.warning("hammer wsgi: cannot reach Redis at start-up (%s: %s); will try again at each request",
                        type(e).__name__, e)
            self._url = hammer

    def _handle(self) -> "_api.Hammer":
        h = self.hammer
        if h is not None:
            return h
        with self._lock:   # one open at a time; the others wait for it (bounded by the URL's connect timeout)
            if self.hammer is None:
                assert self._url is not None
                self.hammer = _api.Hammer(self._url)
            return self.hammer

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        key = self.key_func(environ)
        if key is None:
            return self.app(environ, start_response)
        p = self.policy
        id = p.key(key)
        try:
            d = self._handle().hit(id, p.limit, p.cost)
        except HammerError as e:   # ConnectError is an OSError: gunicorn would close the socket without a reply
            headers, body = unavailable(e, "wsgi")
            start_response("503 Service Unavailable", headers)
            return [body]
        if not d.allowed:
            headers, body = p.denied(d)
            start_response("429 Too Many Requests", headers)
            return [body]
        extra = p.headers(d)

        def start_with_headers(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, list(headers) + extra, exc_info)

        return self.app(environ, start_with_headers)
