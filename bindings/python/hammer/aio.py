"""hammer for asyncio: the calls of hammer.Hammer as coroutines that never block the event loop, and an async Limiter.

    import hammer, hammer.aio

    async with hammer.aio.Hammer("redis://127.0.0.1:6379/?expiry_ms=60000") as h:
        d = await h.hit("user:42", hammer.Limit.token_bucket(10, 1000))
        limiter = hammer.aio.Limiter(h, hammer.Limit.gcra(5, 1000), key="api")
        async with limiter:                  # raises hammer.RateLimited when denied
            ...

        @limiter.limit(key=lambda user: f"user:{user}")
        async def fetch(user): ...

Each call runs the C call in the handle's own bounded thread pool (ctypes releases the GIL for the call), so the loop
keeps running while Redis is slow or frozen; a call takes no longer than the URL's timeouts allow. max_workers bounds
the calls in flight per handle: give it the URL's pool_size (default 8), as more threads would only wait for a
connection. A cancelled call stops being awaited, but the C call it started runs to its end (a hit may be counted).
"""
import asyncio
import concurrent.futures
import functools
import inspect
from typing import Any, Callable, Iterable, List, Optional, Sequence, TypeVar, Union

from . import _api
from ._api import Bucket, Decision, Id, Inspection, Limits, LimitSpec, Stats
from .errors import HammerError, InvalidError
from .limiter import Key, LimiterBase, allowed_or_raise

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Hammer", "Limiter"]


class Hammer:
    """An asyncio handle: hammer.Hammer's calls as coroutines.

    `url` is a URL (the handle is opened by the first call, by open() or by `async with`, in a worker thread, since
    opening connects once), or an open hammer.Hammer to share with thread code (then aclose() leaves it open).
    `.sync` is the thread handle underneath once open.
    """

    def __init__(self, url: Union[str, bytes, "_api.Hammer"], *, max_workers: int = 8) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not 1 <= max_workers <= 1024:
            raise InvalidError("max_workers must be an int from 1 to 1024")
        if isinstance(url, _api.Hammer):
            self._url: Optional[Union[str, bytes]] = None
            self._sync: Optional[_api.Hammer] = url
            self._owned = False
        elif isinstance(url, (str, bytes)):
            self._url, self._sync, self._owned = url, None, True
        else:
            raise InvalidError(f"url must be str, bytes or a hammer.Hammer, not {type(url).__name__}")
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="hammer-aio")
        self._opening: Optional["asyncio.Future[_api.Hammer]"] = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._sync is not None else "not yet open"
        return f"<hammer.aio.Hammer {state}>"

    @property
    def sync(self) -> Optional["_api.Hammer"]:
        """The thread handle underneath (None until opened)."""
        return self._sync

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> "Hammer":
        """Opens the handle now (connecting once), rather than at the first call; returns self."""
        await self._handle()
        return self

    async def _handle(self) -> "_api.Hammer":
        if self._closed:
            raise InvalidError("the Hammer handle is closed")
        if self._sync is not None:
            return self._sync
        if self._opening is None:  # one open shared by every call that comes before it ends
            url = self._url
            assert url is not None
            self._opening = asyncio.ensure_future(self._in_pool(_api.Hammer, url))
        opening = self._opening
        try:
            handle = await asyncio.shield(opening)
        except HammerError:
            if self._opening is opening:
                self._opening = None  # the next call tries again
            raise
        if self._closed:  # closed while opening
            await self._in_pool(handle.close)
            raise InvalidError("the Hammer handle is closed")
        self._sync = handle
        return handle

    async def _in_pool(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, functools.partial(func, *args))
        except RuntimeError:  # the pool was shut down by aclose() since this call began
            raise InvalidError("the Hammer handle is closed") from None
        return await future

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        handle = await self._handle()
        return await self._in_pool(functools.partial(getattr(handle, method), *args, **kwargs))

    async def aclose(self) -> None:
        """Closes the handle (after the calls in flight) and its threads; idempotent."""
        if self._closed:
            return
        self._closed = True
        handle, self._sync = self._sync, None
        if handle is not None and self._owned:
            await asyncio.get_running_loop().run_in_executor(None, handle.close)
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> "Hammer":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- the calls of hammer.Hammer ------------------------------------------------------------------------------
    async def count_hit(self, id: Id, bucket: int, now_ms: int, increment: int = 1) -> int:
        """hammer.Hammer.count_hit."""
        result: int = await self._run("count_hit", id, bucket, now_ms, increment)
        return result

    async def get_bucket(self, id: Id, bucket: int) -> Optional[Bucket]:
        """hammer.Hammer.get_bucket."""
        result: Optional[Bucket] = await self._run("get_bucket", id, bucket)
        return result

    async def delete_buckets(self, id: Id) -> int:
        """hammer.Hammer.delete_buckets."""
        result: int = await self._run("delete_buckets", id)
        return result

    async def check_rate(self, id: Id, scale_ms: int, limit: int, increment: int = 1) -> Decision:
        """hammer.Hammer.check_rate."""
        result: Decision = await self._run("check_rate", id, scale_ms, limit, increment)
        return result

    async def check_rate_at(self, id: Id, scale_ms: int, limit: int, now_ms: int, increment: int = 1) -> Decision:
        """hammer.Hammer.check_rate_at."""
        result: Decision = await self._run("check_rate_at", id, scale_ms, limit, now_ms, increment)
        return result

    async def inspect_bucket(self, id: Id, scale_ms: int, limit: int) -> Inspection:
        """hammer.Hammer.inspect_bucket."""
        result: Inspection = await self._run("inspect_bucket", id, scale_ms, limit)
        return result

    async def hit(self, id: Id, limit: Limits, cost: int = 1, now_ms: Optional[int] = None) -> Decision:
        """hammer.Hammer.hit."""
        result: Decision = await self._run("hit", id, limit, cost, now_ms)
        return result

    async def peek(self, id: Id, limit: Limits, now_ms: Optional[int] = None) -> Decision:
        """hammer.Hammer.peek."""
        result: Decision = await self._run("peek", id, limit, now_ms)
        return result

    async def hit_many(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """hammer.Hammer.hit_many (the requests are read before the call)."""
        result: List[Union[Decision, HammerError]] = await self._run("hit_many", list(requests))
        return result

    async def count_hits(self, requests: Iterable[Sequence[Any]]) -> List[Union[int, HammerError]]:
        """hammer.Hammer.count_hits."""
        result: List[Union[int, HammerError]] = await self._run("count_hits", list(requests))
        return result

    async def check_rates(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """hammer.Hammer.check_rates."""
        result: List[Union[Decision, HammerError]] = await self._run("check_rates", list(requests))
        return result

    async def stats(self) -> Stats:
        """hammer.Hammer.stats."""
        result: Stats = await self._run("stats")
        return result


class Limiter(LimiterBase):
    """hammer.Limiter for asyncio, on a hammer.aio.Hammer: `await check()`, `async with`, and a decorator of
    coroutine functions (functools.wraps keeps their name and signature).

        limiter = hammer.aio.Limiter(h, hammer.Limit.sliding_window(100, 60_000), key="api")
        async with limiter: ...                          # raises hammer.RateLimited when denied
        @limiter.limit(key=lambda user, *a, **k: f"user:{user}")
        async def fetch(user, item): ...
    """

    def __init__(self, hammer: Hammer, limit: Union[LimitSpec, str], key: Key = None, cost: int = 1) -> None:
        if not isinstance(hammer, Hammer):
            raise InvalidError(f"hammer.aio.Limiter needs a hammer.aio.Hammer, not {type(hammer).__name__}")
        super().__init__(limit, key, cost)
        self.hammer = hammer

    async def check(self, cost: Optional[int] = None, key: Key = None) -> Decision:
        """Takes `cost` from the key's limiter: the Decision when allowed, else raises RateLimited."""
        k = self._key(key)
        return allowed_or_raise(await self.hammer.hit(k, self.limit_spec, self._cost(cost)), k)

    async def peek(self, key: Key = None) -> Decision:
        """The Decision a check of cost 1 would get now, without taking anything."""
        return await self.hammer.peek(self._key(key), self.limit_spec)

    async def reset(self, key: Key = None) -> int:
        """Deletes the key's state; returns the number of keys deleted."""
        return await self.hammer.delete_buckets(self._key(key))

    async def __aenter__(self) -> Decision:
        return await self.check()

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def limit(self, key: Key = None, cost: Optional[int] = None) -> Callable[[F], F]:
        """A decorator of coroutine functions that checks before each call, with this key (or the Limiter's)."""
        use_key, use_cost = self._decorator_args(key, cost)

        def decorate(func: F) -> F:
            if not inspect.iscoroutinefunction(func):
                raise TypeError(f"hammer.aio.Limiter decorates coroutine functions; {func!r} is not one "
                                "(use hammer.Limiter for plain functions)")

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                k = self._key(use_key, args, kwargs)
                allowed_or_raise(await self.hammer.hit(k, self.limit_spec, use_cost), k)
                return await func(*args, **kwargs)
            return wrapper  # type: ignore[return-value]
        return decorate

    def __call__(self, func: F) -> F:
        """`@limiter`: limit() with the Limiter's own key and cost."""
        return self.limit()(func)
