"""Limiter: a Limit bound to a handle and a key, as a decorator or a guard (hammer.aio.Limiter is its asyncio twin)."""
import functools
import inspect
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union

from ._api import Decision, Hammer, Id, Limit, LimitSpec, _int64, _limit
from ._parse import parse_one
from .errors import InvalidError


class RateLimited(Exception):
    """A Limiter denied the call. `.retry_after` is the wait in seconds (float, ready for time.sleep), or None when the
    cost can never pass; `.decision` is the Decision, `.key` the id that was limited. Not a HammerError: nothing
    failed."""

    def __init__(self, decision: Decision, key: Optional[Id] = None) -> None:
        self.decision = decision
        self.retry_after: Optional[float] = decision.retry_after
        self.key = key
        wait = "never" if self.retry_after is None else f"retry after {self.retry_after:.3f} s"
        super().__init__(f"rate limited{'' if key is None else f' ({key!r})'}: {wait}")


KeyFunc = Callable[..., Id]
Key = Union[Id, KeyFunc, None]
F = TypeVar("F", bound=Callable[..., Any])


class LimiterBase:
    """What the thread and asyncio Limiters share: the limit, the key (fixed or per call) and the cost."""

    def __init__(self, limit: Union[LimitSpec, str], key: Key = None, cost: int = 1) -> None:
        self.limit_spec: Limit = parse_one(limit) if isinstance(limit, str) else _limit(limit)
        self.key = key
        self.cost = _int64("cost", cost)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {self.limit_spec!r} key={self.key!r}>"

    def _key(self, key: Key, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None) -> Id:
        use = self.key if key is None else key
        if use is None:
            raise InvalidError(f"{type(self).__name__}: no key (give key= to the Limiter, limit() or check())")
        return use(*args, **(kwargs or {})) if callable(use) else use

    def _cost(self, cost: Optional[int]) -> int:
        return self.cost if cost is None else _int64("cost", cost)

    def _decorator_args(self, key: Key, cost: Optional[int]) -> Tuple[Key, int]:
        use_key = self.key if key is None else key
        if use_key is None:
            raise InvalidError(f"{type(self).__name__}.limit: no key (give key= to the Limiter or limit())")
        return use_key, self._cost(cost)


def allowed_or_raise(decision: Decision, key: Id) -> Decision:
    if not decision.allowed:
        raise RateLimited(decision, key)
    return decision


class Limiter(LimiterBase):
    """A Limit applied to one key (a fixed id) or to a key per call (a function), on a Hammer handle. The limit is a
    Limit, a tuple, or one limit in `limits`' notation ("5/minute", a fixed window: hammer.parse_one).

        lim = hammer.Limiter(h, hammer.Limit.token_bucket(10, 1000), key="user:1")
        lim.check()            # -> Decision when allowed, else raises RateLimited
        with lim: ...          # the same check before the block
        @lim                   # the same check before each call of the function
        def f(): ...
        @lim.limit(key=lambda user, *a, **k: f"user:{user}", cost=2)
        def g(user): ...

    A key function is called with the decorated function's arguments, or with none by check() and `with`.
    The decorated function keeps its name, docstring and signature (functools.wraps). A coroutine function is
    wrapped by a coroutine function that makes the check in a worker thread (asyncio.to_thread), so the event loop
    never waits on Redis; hammer.aio.Limiter does the same on an asyncio handle.
    """

    def __init__(self, hammer: Hammer, limit: Union[LimitSpec, str], key: Key = None, cost: int = 1) -> None:
        if not isinstance(hammer, Hammer):
            raise InvalidError(f"Limiter needs a hammer.Hammer, not {type(hammer).__name__}")
        super().__init__(limit, key, cost)
        self.hammer = hammer

    def check(self, cost: Optional[int] = None, key: Key = None) -> Decision:
        """Takes `cost` (default: the Limiter's) from the key's limiter: the Decision when allowed, else raises
        RateLimited. `key` overrides the Limiter's key for this call."""
        k = self._key(key)
        return allowed_or_raise(self.hammer.hit(k, self.limit_spec, self._cost(cost)), k)

    def peek(self, key: Key = None) -> Decision:
        """The Decision a check of cost 1 would get now, without taking anything."""
        return self.hammer.peek(self._key(key), self.limit_spec)

    def reset(self, key: Key = None) -> int:
        """Deletes the key's state (every bucket of that id); returns the number of keys deleted."""
        return self.hammer.delete_buckets(self._key(key))

    def __enter__(self) -> Decision:
        return self.check()

    def __exit__(self, *exc: Any) -> None:
        return None

    def limit(self, key: Key = None, cost: Optional[int] = None) -> Callable[[F], F]:
        """A decorator that checks before each call, with this key (or the Limiter's) and cost."""
        use_key, use_cost = self._decorator_args(key, cost)
        hit, spec = self.hammer.hit, self.limit_spec

        def decorate(func: F) -> F:
            if inspect.iscoroutinefunction(func):
                @functools.wraps(func)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    import asyncio  # here: `import hammer` stays free of asyncio's import cost
                    k = self._key(use_key, args, kwargs)
                    allowed_or_raise(await asyncio.to_thread(hit, k, spec, use_cost), k)
                    return await func(*args, **kwargs)
                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(func)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                k = self._key(use_key, args, kwargs)
                allowed_or_raise(hit(k, spec, use_cost), k)
                return func(*args, **kwargs)
            return wrapper  # type: ignore[return-value]
        return decorate

    def __call__(self, func: F) -> F:
        """`@limiter`: the decorator of limit() with the Limiter's own key and cost."""
        return self.limit()(func)
