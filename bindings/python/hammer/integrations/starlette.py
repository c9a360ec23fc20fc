"""Per-route rate limits for Starlette and FastAPI, declared as with slowapi.

    from fastapi import FastAPI, Request
    from hammer.integrations.starlette import Limiter, get_remote_address

    limiter = Limiter("redis://127.0.0.1:6379/", key_func=get_remote_address, default_limits=["100/minute"])
    app = FastAPI()
    limiter.init_app(app)                       # adds the middleware that checks every HTTP request

    @app.get("/search")
    @limiter.limit("10/second;1000/day")        # several limits: all pass and all are charged, or none
    async def search(q: str): ...

    @app.get("/health")
    @limiter.exempt
    async def health(): ...

The checks run in a pure ASGI middleware, before the endpoint: it finds the route the router will pick (the same
`route.matches`, first full match else first partial one), takes the limits declared on its endpoint (or the
defaults), and asks Redis through hammer.aio, off the event loop. So an endpoint needs no `request` parameter, and
any response (a dict, a model, a Response) gets the headers. The hits of concurrent requests go to Redis together
(one pipeline while another call is in flight: see _batch.py), each its own decision. A denied request never reaches the endpoint: it gets a
429 from `on_breach(request, exc)` when given and it returns a Response (or an awaitable of one; None leaves the
request to what follows), else from an exception handler the app registered for RateLimitExceeded or 429
(`app.add_exception_handler(RateLimitExceeded, handler)`, as with slowapi), else breach_response(exc): "Too Many
Requests" as text. Every answer of a limited route carries the RateLimit headers (and/or
X-RateLimit-*, see `headers=`). When Redis fails and the URL's on_error= / fallback= did not decide, the request gets
a 503 and the error is logged: no exception of the library reaches the server.
Websocket and lifespan traffic passes through.
"""
import inspect
from typing import Any, Awaitable, Callable, Dict, Iterable, List, MutableMapping, Optional, Sequence, Tuple, TypeVar, Union

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Host, Match

from .. import _api, aio
from .._api import Decision, Limit
from ..asgi import _open, client_address
from ..errors import HammerError, InvalidError
from . import _core
from ._batch import Batcher
from ._core import Cost, Group, LimitValue, Outcome, Plan

__all__ = ["Limiter", "HammerMiddleware", "RateLimitExceeded", "breach_response", "get_remote_address"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])
OnBreach = Callable[[Request, "RateLimitExceeded"], Union[Optional[Response], Awaitable[Optional[Response]]]]


def get_remote_address(request: Request) -> str:
    """The client's address (slowapi's get_remote_address): hammer.asgi's client_address of the request's scope."""
    return client_address(request.scope)


class RateLimitExceeded(Exception):
    """A request was denied. `.decision` is the Decision, `.limit` the Limit that denied it, `.retry_after` the wait
    in seconds (None: it can never pass), `.headers` the rate-limit headers (added to whatever response answers it),
    `.detail` a short text such as "10 per 1 second"."""

    status_code = 429

    def __init__(self, decision: Decision, limit: Limit, headers: List[Tuple[str, str]]) -> None:
        self.decision = decision
        self.limit = limit
        self.retry_after = decision.retry_after
        self.headers = dict(headers)
        self.detail = f"{limit.limit} per {limit.period_ms} ms"
        super().__init__(f"rate limit exceeded: {self.detail}")


def _encode(headers: Iterable[Tuple[str, str]]) -> List[Tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def _find_endpoint(routes: Sequence[Any], scope: Scope) -> Any:
    """The endpoint Starlette's router will call for `scope` (None for a 404): the first route that matches fully,
    else the first partial match (405), descending into mounts and hosts."""
    partial = None
    partial_scope: Any = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return _endpoint_of(route, scope, child)
        if match is Match.PARTIAL and partial is None:
            partial, partial_scope = route, child
    return None if partial is None else _endpoint_of(partial, scope, partial_scope)


def _endpoint_of(route: Any, scope: Scope, child: Any) -> Any:
    endpoint = getattr(route, "endpoint", None)
    if endpoint is not None:
        return endpoint
    sub = getattr(route, "routes", None)
    if sub:
        inner = dict(scope)
        inner.update(child)
        return _find_endpoint(sub, inner)
    return None


def _has_host(routes: Sequence[Any]) -> bool:
    """Whether a Host route is among `routes` (at any depth): the route then depends on the Host header too."""
    return any(isinstance(r, Host) or _has_host(getattr(r, "routes", None) or ()) for r in routes)


class _Routes:
    """The endpoint of each (method, path) as the router resolves it, remembered: a dict read per request instead of
    matching every route again. Forgotten when the app's routes change (another list or length), bounded in size
    (cleared when full: paths with parameters are many), and not used when a Host route makes the answer depend on
    more than the method and path."""

    SIZE = 4096

    def __init__(self) -> None:
        self.sig: Any = None
        self.cache: Dict[Tuple[str, str, str], Any] = {}
        self.usable = False
        self.names: Dict[Any, str] = {}

    def endpoint(self, routes: Sequence[Any], scope: Scope) -> Any:
        sig = (id(routes), len(routes))
        if sig != self.sig:
            self.sig, self.cache, self.usable = sig, {}, not _has_host(routes)
            self.names = _names(routes)
        if not self.usable:
            return _find_endpoint(routes, scope)
        k = (scope["method"], scope["path"], scope.get("root_path", ""))
        try:
            return self.cache[k]
        except KeyError:
            pass
        endpoint = _find_endpoint(routes, scope)
        if len(self.cache) >= self.SIZE:
            self.cache.clear()
        self.cache[k] = endpoint
        return endpoint


def _names(routes: Sequence[Any]) -> Dict[Any, str]:
    """Each endpoint's name in its keys: module.qualname, and for other endpoints of a name already taken (made by
    one factory, say) "#2", "#3"... in the order of the app's routes, so that each has counters of its own and every
    worker process names them alike."""
    names: Dict[Any, str] = {}
    taken: Dict[str, int] = {}

    def walk(rs: Sequence[Any]) -> None:
        for r in rs:
            endpoint = getattr(r, "endpoint", None)
            if endpoint is not None and endpoint not in names:
                base = _base_name(endpoint)
                n = taken[base] = taken.get(base, 0) + 1
                names[endpoint] = base if n == 1 else f"{base}#{n}"
            walk(getattr(r, "routes", None) or ())
    walk(routes)
    return names


def _base_name(endpoint: Any) -> str:
    return f"{getattr(endpoint, '__module__', '')}.{getattr(endpoint, '__qualname__', repr(endpoint))}"


class Limiter:
    """Rate limits for a Starlette or FastAPI app (see the module's docstring).

    hammer: a URL (opened now, so that a bad one fails at start-up; while Redis is down, at a later request), a
    hammer.Hammer or a hammer.aio.Hammer. key_func(request) -> str, bytes, or None (not limited);
    default: the client address. default_limits apply to each route that declares none (each route its own
    counter); application_limits to every request, one counter per key for the whole app. algorithm: fixed_window
    (as slowapi / limits), sliding_window, token_bucket, leaky_bucket, gcra, or limits' strategy names.
    headers: "ietf" (RateLimit-Policy and RateLimit, the default), "x-ratelimit" (X-RateLimit-Limit, -Remaining,
    -Reset as slowapi's headers_enabled), "both" or "none"; Retry-After on every denial that can pass later.
    key_prefix starts every Redis id. enabled=False turns every check off.
    """

    def __init__(self, hammer: Union[str, "aio.Hammer", "_api.Hammer"], *,
                 key_func: Callable[[Request], Any] = get_remote_address,
                 default_limits: Iterable[LimitValue] = (), application_limits: Iterable[LimitValue] = (),
                 algorithm: str = "fixed_window", headers: str = "ietf", key_prefix: str = "rl:",
                 on_breach: Optional[OnBreach] = None, enabled: bool = True) -> None:
        if isinstance(hammer, str):
            hammer = _open(hammer)   # as hammer.asgi's: a bad URL fails here; Redis down, at a later request
        elif isinstance(hammer, _api.Hammer):
            hammer = aio.Hammer(hammer)
        if not isinstance(hammer, aio.Hammer):
            raise InvalidError(f"hammer must be a URL, hammer.Hammer or hammer.aio.Hammer, not {type(hammer).__name__}")
        if on_breach is not None and not callable(on_breach):
            raise InvalidError("on_breach must be a function of (request, RateLimitExceeded)")
        self.hammer = hammer
        self.decl = _core.Declarations(algorithm, default_limits, application_limits, key_func, key_prefix, headers)
        self.on_breach = on_breach
        self.enabled = bool(enabled)
        self._batcher = Batcher(hammer)
        self._routes = _Routes()

    # -- declarations ----------------------------------------------------------------------------------------------
    def limit(self, limit_value: LimitValue, *, key_func: Optional[Callable[[Request], Any]] = None,
              per_method: bool = False, methods: Optional[Iterable[str]] = None, cost: Cost = 1,
              exempt_when: Optional[Callable[[Request], bool]] = None,
              override_defaults: bool = True) -> Callable[[F], F]:
        """Limits the decorated endpoint: a string of one or several limits ("10/second;1000/day"), a Limit or a
        list of Limits. cost: an int or a function of the request. exempt_when(request) -> True skips this limit.
        methods: only these HTTP methods count; per_method: one counter per method. The endpoint is returned as is."""
        group = _core.route_group(self.decl, limit_value, shared_scope=None, key_func=key_func, per_method=per_method,
                                  methods=methods, cost=cost, exempt_when=exempt_when,
                                  override_defaults=override_defaults)
        return self._register(group)

    def shared_limit(self, limit_value: LimitValue, scope: str, *,
                     key_func: Optional[Callable[[Request], Any]] = None, cost: Cost = 1,
                     exempt_when: Optional[Callable[[Request], bool]] = None,
                     override_defaults: bool = True) -> Callable[[F], F]:
        """A limit shared by every endpoint decorated with the same `scope` name: one counter per key for them all."""
        group = _core.route_group(self.decl, limit_value, shared_scope=scope, key_func=key_func, per_method=False,
                                  methods=None, cost=cost, exempt_when=exempt_when,
                                  override_defaults=override_defaults)
        return self._register(group)

    def _register(self, group: Group) -> Callable[[F], F]:
        def decorate(func: F) -> F:
            self.decl.add(func, group)
            return func
        return decorate

    def exempt(self, func: F) -> F:
        """No limit applies to the decorated endpoint (neither defaults nor application limits)."""
        self.decl.add_exempt(func)
        return func

    def init_app(self, app: Any) -> None:
        """Adds the middleware to `app` (app.add_middleware) and sets app.state.limiter."""
        app.state.limiter = self
        app.add_middleware(HammerMiddleware, limiter=self)

    async def reset(self, key: Any, endpoint: Optional[Callable[..., Any]] = None) -> int:
        """Deletes the counters of `key` (what key_func returned) on `endpoint` (its own limits or the defaults it
        gets, and the shared limits it is part of), or on the application limits when endpoint is None; returns the
        number of Redis keys deleted. Call it once the app has served a request (the names of endpoints that share
        one come from its routes)."""
        n = 0
        name = self._name(endpoint) if endpoint is not None else ""
        for rid in self.decl.reset_ids(endpoint, name, key):
            n += await self.hammer.delete_buckets(rid)
        return n

    # -- the check -----------------------------------------------------------------------------------------------
    def _plan(self, scope: Scope) -> Optional[Plan]:
        app = scope.get("app")
        routes = getattr(getattr(app, "router", None), "routes", None)
        endpoint = self._routes.endpoint(routes, scope) if routes else None
        if endpoint is None:
            return self.decl.plan(None, "", ()) if self.decl.app else None
        return self.decl.plan(endpoint, self._name(endpoint))

    def _name(self, endpoint: Any) -> str:
        """The endpoint's name in its keys (see _Routes.names)."""
        return self._routes.names.get(endpoint) or _base_name(endpoint)

    async def check(self, plan: Plan, request: Request) -> Union[Outcome, Tuple[int, Any, bytes], None]:
        """Decides the request's groups: the Outcome to report, None when no group counted it, or the failure answer."""
        scope = request.scope
        method = scope["method"]
        best: Optional[Outcome] = None
        for g in plan.groups:
            if g.methods is not None and method not in g.methods:
                continue
            if g.exempt_when is not None and g.exempt_when(request):
                continue
            key_func = g.key_func or self.decl.key_func
            key = client_address(scope) if key_func is get_remote_address else key_func(request)
            if key is None:
                continue
            try:
                cost = g.cost(request) if callable(g.cost) else g.cost
                d = await self._batcher.hit(self.decl.key(g, key, method), g.spec, cost)
            except HammerError as e:
                return _core.failure(e, "starlette limiter")
            best = _core.outcome_of(g, d, best)
            if not d.allowed:
                break
        return best

    async def _breach(self, request: Request, exc: RateLimitExceeded, handler: Any) -> Response:
        """The 429: on_breach's response, else the app's exception handler's, else breach_response(exc)."""
        if self.on_breach is not None:
            response = await _maybe_await(self.on_breach(request, exc))
            if response is not None:
                return _response(response, "on_breach")
        if handler is not None:
            return _response(await _maybe_await(handler(request, exc)), "the exception handler")
        return breach_response(exc)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _response(value: Any, what: str) -> Response:
    if not isinstance(value, Response):
        raise InvalidError(f"{what} must return a starlette Response, not {type(value).__name__}")
    return value


def breach_response(exc: RateLimitExceeded) -> Response:
    """The default 429: "Too Many Requests" as text, with the rate-limit headers (for a handler that shapes only some
    of the 429s)."""
    return Response(_core.BREACH_BODY, 429, headers=exc.headers, media_type="text/plain")


class HammerMiddleware:
    """The ASGI middleware of a Limiter: `app.add_middleware(HammerMiddleware, limiter=limiter)` (or
    limiter.init_app(app)); without `limiter`, the app's `app.state.limiter`, as slowapi's SlowAPIMiddleware."""

    def __init__(self, app: ASGIApp, limiter: Optional[Limiter] = None) -> None:
        if limiter is not None and not isinstance(limiter, Limiter):
            raise InvalidError(f"limiter must be a hammer.integrations.starlette.Limiter, not {type(limiter).__name__}")
        self.app = app
        self.limiter = limiter

    def _limiter(self, scope: Scope) -> Limiter:
        lim = getattr(getattr(scope.get("app"), "state", None), "limiter", None)
        if not isinstance(lim, Limiter):
            raise InvalidError("HammerMiddleware needs limiter= or app.state.limiter, a "
                               "hammer.integrations.starlette.Limiter")
        self.limiter = lim
        return lim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lim = self.limiter or self._limiter(scope)
        if not lim.enabled:
            await self.app(scope, receive, send)
            return
        plan = lim._plan(scope)
        if plan is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        outcome = await lim.check(plan, request)
        if outcome is None:
            await self.app(scope, receive, send)
            return
        if not isinstance(outcome, Outcome):
            status, headers, body = outcome
            await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
            await send({"type": "http.response.body", "body": body})
            return
        extra = _encode(_core.rate_headers(lim.decl.headers, plan, outcome))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                have = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = list(message.get("headers", ())) + [h for h in extra if h[0] not in have]
            await send(message)

        if outcome.allowed:
            await self.app(scope, receive, send_with_headers)
            return
        handlers = getattr(scope.get("app"), "exception_handlers", None) or {}
        handler = handlers.get(RateLimitExceeded) or handlers.get(429)
        if lim.on_breach is None and handler is None:   # the default 429, without building objects
            await send({"type": "http.response.start", "status": 429,
                        "headers": _encode(_core.breach_headers()) + extra})
            await send({"type": "http.response.body", "body": _core.BREACH_BODY})
            return
        exc = RateLimitExceeded(outcome.decision, outcome.limit, _core.rate_headers(lim.decl.headers, plan, outcome))
        response = await lim._breach(request, exc, handler)
        await response(scope, receive, send_with_headers)
