"""Per-route rate limits for Flask, declared as with Flask-Limiter.

    from flask import Flask
    from hammer.integrations.flask import Limiter, get_remote_address

    app = Flask(__name__)
    limiter = Limiter("redis://127.0.0.1:6379/", app=app, key_func=get_remote_address,
                      default_limits=["200 per day", "50 per hour"])

    @app.route("/slow")
    @limiter.limit("1 per day")
    def slow(): ...

    @app.route("/ping")
    @limiter.exempt
    def ping(): ...

The checks run in a before_request hook, after Flask's routing: the limits declared on the view (or on its blueprint,
`limiter.limit("...")(blueprint)`; else the defaults) plus the application limits, one Redis call per declaration
through the thread handle hammer.Hammer. Static files are exempt. A denied request never reaches the view: it gets the
Response `on_breach(exc)` returns when given, else RateLimitExceeded (werkzeug's TooManyRequests, 429) is raised, so
`@app.errorhandler(429)` or `@app.errorhandler(RateLimitExceeded)` shapes it; without a handler the answer is
"Too Many Requests" as text. Every answer of a limited route carries the RateLimit headers (and/or X-RateLimit-*, see
`headers=`), added by an after_request hook. When Redis fails and the URL's on_error= / fallback= did not decide, the
request gets a 503 and the error is logged: no exception of the library reaches the server (gunicorn would take an
OSError for a broken client socket and close it without an answer).
As Flask-Limiter's, key_func, cost and exempt_when take no argument and read flask.request.
"""
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

import flask
from werkzeug.exceptions import TooManyRequests

from .. import _api
from .._api import Decision, Limit
from ..errors import ConnectError, HammerError, HammerTimeout, InvalidError
from ..wsgi import client_address
from . import _core
from ._core import Cost, Group, LimitValue, Outcome, Plan

__all__ = ["Limiter", "RateLimitExceeded", "get_remote_address"]

F = TypeVar("F", bound=Callable[..., Any])
_G_KEY = "hammer.rate_limit_headers"   # in the request's environ: the headers after_request adds


def get_remote_address() -> str:
    """The client's address (Flask-Limiter's get_remote_address): hammer.wsgi's client_address of the environ."""
    return client_address(flask.request.environ)


class RateLimitExceeded(TooManyRequests):
    """A request was denied (werkzeug's TooManyRequests, 429). `.decision` is the Decision, `.limit` the Limit that
    denied it, `.retry_after` the wait in seconds (None: it can never pass), `.headers` the rate-limit headers (added
    to whatever response answers it). Unhandled, it answers "Too Many Requests" as text."""

    def __init__(self, decision: Decision, limit: Limit, headers: List[Tuple[str, str]]) -> None:
        super().__init__(description=f"{limit.limit} per {limit.period_ms} ms")
        self.decision = decision
        self.limit = limit
        self.retry_after = decision.retry_after  # type: ignore[assignment]  # werkzeug's (int | datetime), set by its
        # __init__: ours is the seconds as float (or None), as RateLimited's
        self.headers = dict(headers)

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return _core.BREACH_BODY.decode()

    def get_headers(self, environ: Any = None, scope: Any = None) -> List[Tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8")] + list(self.headers.items())


def _handles_429(app: flask.Flask) -> bool:
    """Whether an error handler of the app or a blueprint would take a RateLimitExceeded: one registered for 429 (or
    RateLimitExceeded), or for a class it derives from (HTTPException, Exception)."""
    for by_code in app.error_handler_spec.values():
        if by_code.get(429):
            return True
        any_code = by_code.get(None)
        if any_code and any(c in any_code for c in RateLimitExceeded.__mro__):
            return True
    return False


def _is_blueprint(obj: Any) -> bool:
    return isinstance(obj, flask.Blueprint)


class Limiter:
    """Rate limits for a Flask app (see the module's docstring).

    hammer: a URL or a hammer.Hammer (given a URL while Redis is down, the Limiter opens it at a later request, so
    the app starts all the same). key_func() -> str, bytes, or None (not limited); default: the client address.
    default_limits apply to each route that declares none (each route its own counter); application_limits to every
    request, one counter per key for the whole app. algorithm: fixed_window (as Flask-Limiter / limits),
    sliding_window, token_bucket, leaky_bucket, gcra, or limits' strategy names. headers: "ietf" (RateLimit-Policy
    and RateLimit, the default), "x-ratelimit" (X-RateLimit-Limit, -Remaining, -Reset, as Flask-Limiter's
    headers_enabled), "both" or "none"; Retry-After on every denial that can pass later. on_breach(exc) may return a
    Response for the 429. key_prefix starts every Redis id. enabled=False turns every check off.
    """

    def __init__(self, hammer: Union[str, "_api.Hammer"], *, app: Optional[flask.Flask] = None,
                 key_func: Callable[[], Any] = get_remote_address, default_limits: Iterable[LimitValue] = (),
                 application_limits: Iterable[LimitValue] = (), algorithm: str = "fixed_window",
                 headers: str = "ietf", key_prefix: str = "rl:",
                 on_breach: Optional[Callable[[RateLimitExceeded], Optional[flask.Response]]] = None,
                 enabled: bool = True) -> None:
        if not isinstance(hammer, (str, _api.Hammer)):
            raise InvalidError(f"hammer must be a URL or a hammer.Hammer, not {type(hammer).__name__}")
        if on_breach is not None and not callable(on_breach):
            raise InvalidError("on_breach must be a function of the RateLimitExceeded")
        self.hammer: Optional[_api.Hammer] = None
        self._url: Optional[str] = None
        self._lock = threading.Lock()
        if isinstance(hammer, _api.Hammer):
            self.hammer = hammer
        else:
            try:
                self.hammer = _api.Hammer(hammer)
            except (ConnectError, HammerTimeout) as e:   # Redis down: open at a later request; a bad URL raises
                _core.log.warning("hammer flask limiter: cannot reach Redis at start-up (%s: %s); will try again at "
                                  "each request", type(e).__name__, e)
                self._url = hammer
        self.decl = _core.Declarations(algorithm, default_limits, application_limits, key_func, key_prefix, headers)
        self.on_breach = on_breach
        self.enabled = bool(enabled)
        self._plans: Dict[Tuple[int, str], Optional[Plan]] = {}   # per (app, endpoint name), while decl.version holds
        self._version = -1
        if app is not None:
            self.init_app(app)

    def _handle(self) -> "_api.Hammer":
        """The handle, opened now if Redis was down when the Limiter was made (no lock held while connecting: two
        requests may both open one, and the second is closed)."""
        h = self.hammer
        if h is not None:
            return h
        assert self._url is not None
        opened = _api.Hammer(self._url)
        with self._lock:
            kept = self.hammer
            if kept is None:
                self.hammer = kept = opened
        if kept is not opened:
            opened.close()
        return kept

    def init_app(self, app: flask.Flask) -> None:
        """Installs the hooks on `app` (app.extensions["hammer_limiter"] is this Limiter)."""
        app.extensions["hammer_limiter"] = self
        app.before_request(self._before)
        app.after_request(self._after)

    # -- declarations ----------------------------------------------------------------------------------------------
    def limit(self, limit_value: LimitValue, *, key_func: Optional[Callable[[], Any]] = None,
              per_method: bool = False, methods: Optional[Iterable[str]] = None, cost: Cost = 1,
              exempt_when: Optional[Callable[[], bool]] = None, override_defaults: bool = True) -> Callable[[F], F]:
        """Limits the decorated view, or every view of a blueprint (`limiter.limit("...")(bp)`): a string of one or
        several limits ("10/second;1000/day"), a Limit or a list of Limits. cost: an int or a function. exempt_when()
        -> True skips this limit. methods: only these HTTP methods count; per_method: one counter per method."""
        group = _core.route_group(self.decl, limit_value, shared_scope=None, key_func=key_func, per_method=per_method,
                                  methods=methods, cost=cost, exempt_when=exempt_when,
                                  override_defaults=override_defaults)
        return self._register(group)

    def shared_limit(self, limit_value: LimitValue, scope: str, *, key_func: Optional[Callable[[], Any]] = None,
                     cost: Cost = 1, exempt_when: Optional[Callable[[], bool]] = None,
                     override_defaults: bool = True) -> Callable[[F], F]:
        """A limit shared by every view decorated with the same `scope` name: one counter per key for them all."""
        group = _core.route_group(self.decl, limit_value, shared_scope=scope, key_func=key_func, per_method=False,
                                  methods=None, cost=cost, exempt_when=exempt_when,
                                  override_defaults=override_defaults)
        return self._register(group)

    def _register(self, group: Group) -> Callable[[F], F]:
        def decorate(obj: F) -> F:
            self.decl.add(("blueprint", getattr(obj, "name")) if _is_blueprint(obj) else obj, group)
            return obj
        return decorate

    def exempt(self, obj: F) -> F:
        """No limit applies to the decorated view, or to any view of a blueprint (`limiter.exempt(bp)`)."""
        self.decl.add_exempt(("blueprint", getattr(obj, "name")) if _is_blueprint(obj) else obj)
        return obj

    def reset(self, key: Any, view: Optional[Callable[..., Any]] = None, endpoint: str = "") -> int:
        """Deletes the counters of `key` (what key_func returned) on `view` (its own limits, its blueprint's or the
        defaults it gets, and the shared limits it is part of; `endpoint` is its name as Flask knows it, by default
        the view's __name__, "blueprint.name" for a blueprint's view), or on the application limits when view is
        None; returns the number of Redis keys deleted."""
        name = endpoint or getattr(view, "__name__", "")
        parts = name.split(".")[:-1]   # a blueprint's endpoint: its blueprints, innermost first, as request.blueprints
        containers = [("blueprint", ".".join(parts[:i])) for i in range(len(parts), 0, -1)]
        h = self._handle()
        return sum(h.delete_buckets(rid) for rid in self.decl.reset_ids(view, name, key, containers))

    # -- the hooks -----------------------------------------------------------------------------------------------
    def _plan(self, request: Any) -> Optional[Plan]:
        endpoint = request.endpoint
        if endpoint is None:
            return self.decl.plan(None, "")
        app = flask.current_app._get_current_object()   # type: ignore[attr-defined]
        k = (id(app), endpoint)
        cached = self._plans.get(k, self)
        if cached is not self and self._version == self.decl.version:
            return cached   # type: ignore[return-value]
        if self._version != self.decl.version:
            self._plans, self._version = {}, self.decl.version
        if endpoint.rsplit(".", 1)[-1] == "static":
            plan = None
        else:
            view = app.view_functions.get(endpoint)
            plan = self.decl.plan(None, "") if view is None else self.decl.plan(
                view, endpoint, [("blueprint", b) for b in request.blueprints])
        self._plans[k] = plan
        return plan

    def _before(self) -> Optional[flask.Response]:
        if not self.enabled:
            return None
        request = flask.request._get_current_object()   # type: ignore[attr-defined]  # once, not per attribute
        plan = self._plan(request)
        if plan is None:
            return None
        method = request.method
        best: Optional[Outcome] = None
        try:
            h = self._handle()
        except HammerError as e:
            status, headers, body = _core.failure(e, "flask limiter")
            return flask.Response(body, status, headers)
        for g in plan.groups:
            if g.methods is not None and method not in g.methods:
                continue
            if g.exempt_when is not None and g.exempt_when():
                continue
            key_func = g.key_func or self.decl.key_func
            key = client_address(request.environ) if key_func is get_remote_address else key_func()
            if key is None:
                continue
            try:
                cost = g.cost() if callable(g.cost) else g.cost
                d = h.hit(self.decl.key(g, key, method), g.spec, cost)
            except HammerError as e:
                status, headers, body = _core.failure(e, "flask limiter")
                return flask.Response(body, status, headers)
            best = _core.outcome_of(g, d, best)
            if not d.allowed:
                break
        if best is None:
            return None
        headers = _core.rate_headers(self.decl.headers, plan, best)
        if headers:
            request.environ[_G_KEY] = headers
        if best.allowed:
            return None
        exc = RateLimitExceeded(best.decision, best.limit, headers)
        if self.on_breach is not None:
            response = self.on_breach(exc)
            if response is not None:
                return response
        if not _handles_429(flask.current_app):   # what raising would give, without Flask's exception path
            return flask.Response(_core.BREACH_BODY, 429, _core.breach_headers())
        raise exc

    def _after(self, response: flask.Response) -> flask.Response:
        headers = flask.request.environ.get(_G_KEY)
        if headers:
            for k, v in headers:
                if k not in response.headers:
                    response.headers[k] = v
        return response
