"""What the Starlette and Flask integrations share, free of any framework: limit declarations (limit, shared_limit,
exempt, defaults, application limits), the plan of limit groups an endpoint gets, the keys, the response headers and
the answers for a breach and for a failure of the limiter.

A *group* is the limits of one declaration ("10/second;1000/day" is one group of two limits). A group is decided by one
call: hammer's several-limit hit, all its limits pass and are charged, or none is. The groups of a request (the
application's, then the route's or the defaults) are decided in that order, and the first that denies answers the
request (the groups before it stay charged, as with slowapi and Flask-Limiter).
"""
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, Union

from .. import _api, _http
from .._api import Decision, Limit
from .._http import UNAVAILABLE_BODY as FAILURE_BODY
from .._http import quota as quota_window
from .._http import unavailable
from .._parse import parse
from ..errors import HammerError, InvalidError

log = _http.log   # the "hammer" logger, as the middleware's

LimitValue = Union[str, Limit, Sequence[Limit]]
Cost = Union[int, Callable[..., int]]
Headers = List[Tuple[str, str]]

HEADER_STYLES = ("ietf", "x-ratelimit", "both", "none")
METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")   # reset of per_method
BREACH_BODY = _http.BODY
_NAME = re.compile(r"^[A-Za-z0-9_.:\-/ ]{1,64}$")   # a scope or policy name: sent in headers and in keys

# limits' strategy names (slowapi's and Flask-Limiter's strategy=), for users who copy their settings.
STRATEGIES = {"fixed-window": "fixed_window", "moving-window": "sliding_window",
              "sliding-window-counter": "sliding_counter"}


def parse_limits(value: Any, algorithm: str) -> Tuple[Limit, ...]:
    """A limit declaration as Limits: a string in limits' notation ("10/second;1000 per day"), a Limit, or a
    sequence of Limits."""
    if isinstance(value, Limit):
        return (value,)
    if isinstance(value, str):
        limits = tuple(parse(value, algorithm=algorithm))
    elif isinstance(value, (list, tuple)) and all(isinstance(v, Limit) for v in value):
        limits = tuple(value)
    else:
        raise InvalidError(f"a limit must be a string such as \"10/second;1000/day\", a hammer.Limit or a list of "
                           f"them, not {value!r}")
    if not limits:
        raise InvalidError(f"no limit in {value!r}")
    return limits


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidError(f"{what} must be 1 to 64 characters of letters, digits, space and _.:-/, not {name!r}")
    return name


@dataclass(frozen=True)
class Group:
    """One declaration: its limits and how a request is counted against them."""
    limits: Tuple[Limit, ...]
    names: Tuple[str, ...]            # the policy name of each limit (RateLimit / RateLimit-Policy)
    scope: str                        # the part of the key that says which declaration: "app", "route:<endpoint>"...
    key_func: Optional[Callable[..., Any]]
    per_method: bool
    methods: Optional[FrozenSet[str]]
    cost: Cost
    exempt_when: Optional[Callable[..., bool]]
    override_defaults: bool
    policies: Tuple[str, ...]         # `"name";q=..;w=..` of each limit
    quotas: Tuple[int, ...]           # the q of each limit

    @property
    def spec(self) -> Any:
        """What hit() takes: the Limit itself when alone (the single-limit call), else all of them (the several-limit
        call: all pass and are charged, or none)."""
        return self.limits[0] if len(self.limits) == 1 else self.limits


def make_group(value: LimitValue, algorithm: str, label: str, scope: str, *, key_func: Optional[Callable[..., Any]],
               per_method: bool = False, methods: Optional[Iterable[str]] = None, cost: Cost = 1,
               exempt_when: Optional[Callable[..., bool]] = None, override_defaults: bool = True) -> Group:
    limits = parse_limits(value, algorithm)
    if len(limits) > 1 and "decided_by" not in Decision._fields:
        raise InvalidError(f"{value!r}: several limits in one declaration need the library's several-limit hit, "
                           f"which this version lacks: declare them one by one")
    names = tuple(label if len(limits) == 1 else f"{label}.{i}" for i in range(len(limits)))
    if key_func is not None and not callable(key_func):
        raise InvalidError("key_func must be a function of the request")
    if exempt_when is not None and not callable(exempt_when):
        raise InvalidError("exempt_when must be a function")
    if not callable(cost):
        _api._int64("cost", cost)
        if cost < 0:
            raise InvalidError("cost must be at least 0")
    method_set = None
    if methods is not None:
        if isinstance(methods, str):
            raise InvalidError("methods must be a list of HTTP methods, such as [\"POST\"]")
        method_set = frozenset(m.upper() for m in methods)
    qw = [quota_window(lim) for lim in limits]
    policies = tuple(f'"{n}";q={q};w={w}' for n, (q, w) in zip(names, qw))
    return Group(limits, names, scope, key_func, bool(per_method), method_set, cost, exempt_when,
                 bool(override_defaults), policies, tuple(q for q, _ in qw))


@dataclass(frozen=True)
class Plan:
    """The groups an endpoint is checked against, in order, and its RateLimit-Policy value."""
    groups: Tuple[Group, ...]
    policy: str


class Declarations:
    """The limits a Limiter knows: defaults, application limits, per target (a view function, or a blueprint's name
    in Flask) its groups, and the exempt targets. Plans are cached per endpoint (a dict read per request)."""

    def __init__(self, algorithm: str, default_limits: Iterable[LimitValue], application_limits: Iterable[LimitValue],
                 key_func: Callable[..., Any], prefix: str, headers: str) -> None:
        algorithm = STRATEGIES.get(algorithm, algorithm)
        if not isinstance(algorithm, str) or algorithm.startswith("_") or not hasattr(Limit, algorithm):
            raise InvalidError(f"unknown algorithm {algorithm!r}: one of fixed_window, sliding_window, token_bucket, "
                               f"leaky_bucket, gcra, or limits' {', '.join(STRATEGIES)}")
        if not callable(key_func):
            raise InvalidError("key_func must be a function of the request")
        if not isinstance(prefix, str):
            raise InvalidError(f"key_prefix must be a str, not {type(prefix).__name__}")
        if headers not in HEADER_STYLES:
            raise InvalidError(f"headers must be one of {', '.join(HEADER_STYLES)}, not {headers!r}")
        self.algorithm = algorithm
        self.key_func = key_func
        self.prefix = prefix
        self.headers = headers
        if isinstance(default_limits, (str, Limit)) or isinstance(application_limits, (str, Limit)):
            raise InvalidError("default_limits and application_limits are lists, e.g. [\"100/minute\"]")
        self.defaults = [make_group(v, algorithm, "default", "default:", key_func=None) for v in default_limits]
        self.app = [make_group(v, algorithm, "app", "app", key_func=None) for v in application_limits]
        self.routes: Dict[Any, List[Group]] = {}
        self.exempt: Set[Any] = set()
        self.plans: Dict[Any, Optional[Plan]] = {}
        self.version = 0   # changes with every declaration: caches of plans outside compare it

    def add(self, target: Any, group: Group) -> None:
        self.routes.setdefault(target, []).append(group)
        self.plans.clear()
        self.version += 1

    def add_exempt(self, target: Any) -> None:
        self.exempt.add(target)
        self.plans.clear()
        self.version += 1

    def plan(self, endpoint: Any, name: str, containers: Sequence[Any] = ()) -> Optional[Plan]:
        """The plan of `endpoint` (named `name` in keys), inside `containers` (Flask's blueprints): None when nothing
        applies. Declarations on a container apply to its endpoints unless they have their own."""
        try:
            return self.plans[endpoint]
        except (KeyError, TypeError):
            pass
        plan = self._make_plan(endpoint, name, containers)
        try:
            self.plans[endpoint] = plan
        except TypeError:
            pass
        return plan

    def _make_plan(self, endpoint: Any, name: str, containers: Sequence[Any]) -> Optional[Plan]:
        if endpoint is None:   # no route (a 404): only the application's limits
            return Plan(tuple(self.app), ", ".join(p for g in self.app for p in g.policies)) if self.app else None
        if endpoint in self.exempt:
            return None
        own = self.routes.get(endpoint)
        if own is None:
            for c in containers:
                if c in self.exempt:
                    return None
                own = self.routes.get(c)
                if own is not None:
                    break
        groups = list(self.app)
        route = [g if g.scope else _scoped(g, "route:" + name) for g in (own or ())]
        groups += route
        if not route or all(not g.override_defaults for g in route):
            groups += [_scoped(g, "default:" + name) for g in self.defaults]
        if not groups:
            return None
        return Plan(tuple(groups), ", ".join(p for g in groups for p in g.policies))

    def reset_ids(self, endpoint: Any, name: str, key: Any, containers: Sequence[Any] = ()) -> List[str]:
        """The Redis ids of `key`'s counters on `endpoint` (its own limits, or the defaults it gets; the shared
        limits it is part of), or on the application limits when endpoint is None: what reset() deletes."""
        plan = self._make_plan(endpoint, name, containers) if endpoint is not None else None   # not cached
        groups = self.app if endpoint is None else [g for g in (plan.groups if plan else ()) if g.scope != "app"]
        ids = []
        for g in groups:
            for method in (sorted(g.methods or METHODS) if g.per_method else ("",)):
                ids.append(self.key(g, key, method))
        return ids

    def key(self, group: Group, key: Any, method: str) -> str:
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        elif not isinstance(key, str):
            raise InvalidError(f"a key function must return str, bytes or None, not {type(key).__name__}")
        if group.per_method:
            return f"{self.prefix}{group.scope}:{method}|{key}"
        return f"{self.prefix}{group.scope}|{key}"


def _scoped(g: Group, scope: str) -> Group:
    return Group(g.limits, g.names, scope, g.key_func, g.per_method, g.methods, g.cost, g.exempt_when,
                 g.override_defaults, g.policies, g.quotas)


def route_group(decl: Declarations, value: LimitValue, *, shared_scope: Optional[str], key_func: Any,
                per_method: bool, methods: Any, cost: Cost, exempt_when: Any, override_defaults: bool) -> Group:
    """A group for limit() (scope "" until the plan names it after the endpoint) or shared_limit()."""
    if shared_scope is None:
        label, scope = "route", ""
    else:
        label = _check_name("scope", shared_scope)
        scope = "shared:" + shared_scope
    return make_group(value, decl.algorithm, label, scope, key_func=key_func, per_method=per_method,
                      methods=methods, cost=cost, exempt_when=exempt_when, override_defaults=override_defaults)


@dataclass
class Outcome:
    """What the groups of one request decided: the decision shown in the headers and which limit it is about."""
    decision: Decision
    group: Group
    index: int           # the deciding limit within the group (Decision.decided_by when several)

    @property
    def limit(self) -> Limit:
        return self.group.limits[self.index]

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


def outcome_of(group: Group, d: Decision, best: Optional[Outcome]) -> Outcome:
    """The outcome to report after `group` decided `d`: a denial, else the tightest allow so far."""
    index = getattr(d, "decided_by", 0) if len(group.limits) > 1 else 0
    if not 0 <= index < len(group.limits):
        index = 0
    if best is not None and d.allowed and best.decision.remaining <= d.remaining:
        return best
    return Outcome(d, group, index)


def _ceil_s(ms: int) -> int:
    return max(0, -(-ms // 1000))


def rate_headers(style: str, plan: Plan, o: Outcome) -> Headers:
    """The rate-limit headers of a response: the IETF draft's RateLimit-Policy (every limit of the plan) and
    RateLimit (the deciding one), and/or X-RateLimit-Limit/-Remaining/-Reset (Reset as epoch seconds, as slowapi and
    Flask-Limiter send it); Retry-After on a denial that can pass later."""
    d = o.decision
    out: Headers = []
    if d.degraded:   # decided without Redis (the URL's on_error / fallback): no store holds what the fields would say
        style = "none"
    if style != "none":
        q = o.group.quotas[o.index]
        remaining = min(max(0, d.remaining), q)
    if style in ("ietf", "both"):
        out.append(("RateLimit-Policy", plan.policy))
        out.append(("RateLimit", f'"{o.group.names[o.index]}";r={remaining};t={_ceil_s(d.reset_after_ms)}'))
    if style in ("x-ratelimit", "both"):
        out.append(("X-RateLimit-Limit", str(q)))
        out.append(("X-RateLimit-Remaining", str(remaining)))
        out.append(("X-RateLimit-Reset", str(math.ceil(time.time() + d.reset_after_ms / 1000.0))))
    if not d.allowed and d.retry_after_ms >= 0:
        out.append(("Retry-After", str(max(1, _ceil_s(d.retry_after_ms)))))
    return out


def breach_headers() -> Headers:
    return [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BREACH_BODY)))]


def failure(e: HammerError, where: str) -> Tuple[int, Headers, bytes]:
    """The answer when the limiter fails and the URL's on_error / fallback did not decide: hammer._http's 503,
    logged; the library's exception never reaches the server (gunicorn takes an OSError for a broken client
    socket)."""
    headers, body = unavailable(e, where)
    return 503, headers, body
