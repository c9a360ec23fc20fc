"""hammer for asyncio: the calls of hammer.Hammer as coroutines that never block the event loop, and an async Limiter.

    import hammer, hammer.aio

    async with hammer.aio.Hammer("redis://127.0.0.1:6379/?expiry_ms=60000") as h:
        d = await h.hit("user:42", hammer.Limit.token_bucket(10, 1000))
        limiter = hammer.aio.Limiter(h, hammer.Limit.gcra(5, 1000), key="api")
        async with limiter:                  # raises hammer.RateLimited when denied
            ...

        @limiter.limit(key=lambda user: f"user:{user}")
        async def fetch(user): ...

Each call is submitted to the library without blocking (hammer_submit: include/hammer.h's non-blocking calls) and
awaits a future; the handle's completion descriptor is watched with loop.add_reader, and each completion resolves
its future by tag. No thread per call and no executor (only opening, which connects once, runs in the loop's
default executor): a call is written on the loop's thread on an idle pooled connection (a lane) and its reply
read when the descriptor says it came; calls beyond a lane's depth go to the library's I/O thread of their pool
(one per cluster node), which sends them together as pipelines, so many coroutines share round trips. A call takes no longer than the URL's connect_timeout_ms + timeout_ms (a call
still queued then fails with HammerTimeout unsent). A cancelled call stops being awaited, but the op it submitted
runs to its end unobserved (a hit may be counted). One handle serves one event loop at a time.
"""
import asyncio
import ctypes
import functools
import inspect
import itertools
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

from . import _api, _native
from ._api import (Bucket, Decision, Id, Inspection, Limits, LimitSpec, Stats, _decision, _id, _int64, _limit,
                   _limits, _row, _several)
from ._native import hammer_completion, hammer_op, raw
from .errors import ERR_INTERNAL, HammerError, InvalidError, error_for
from .limiter import Key, LimiterBase, allowed_or_raise

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Hammer", "Limiter"]

_submit = raw.hammer_submit
_drain = raw.hammer_drain
_byref = ctypes.byref
_DRAIN = 256
_SHUTDOWN_CAP_S = 120.0   # aclose's wait for the ops in flight (each has connect_timeout_ms + timeout_ms at most)
_clock = time.perf_counter
_tags = itertools.count(1)   # process-wide: aio handles sharing one thread handle never share a tag

Convert = Callable[[hammer_completion], Any]


def _value(c: hammer_completion) -> int:
    value: int = c.value
    return value


def _bucket(c: hammer_completion) -> Optional[Bucket]:
    b = c.bucket
    return Bucket(b.bucket, b.count, b.created, b.updated) if b.found else None


def _inspection(c: hammer_completion) -> Inspection:
    i = c.inspection
    return Inspection(i.count, i.remaining, i.ms_to_next_bucket, i.created or None, i.updated or None)


def _dec(c: hammer_completion) -> Decision:
    return _decision(c.decision)


def _error(c: hammer_completion) -> HammerError:
    return error_for(c.status, c.message.decode("utf-8", "replace") or _native.strerror(c.status))


class _Completions:
    """The futures of one thread handle's submitted ops, keyed by tag, and its descriptor watched on one loop.
    Kept on the thread handle, so that every hammer.aio.Hammer sharing it shares this too."""

    def __init__(self, sync: "_api.Hammer") -> None:
        self.sync = sync
        self.futures: Dict[int, Tuple["asyncio.Future[Any]", Convert]] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.fd = -1
        self.buf = (hammer_completion * _DRAIN)()
        # Ops made while other callbacks were ready to run: submitted together at the end of this pass of the loop
        # (one call into the library, one write per connection).
        self.backlog: List[hammer_op] = []

    @staticmethod
    def of(sync: "_api.Hammer") -> "_Completions":
        c: Optional[_Completions] = getattr(sync, "_aio", None)
        if c is None:
            c = _Completions(sync)
            sync._aio = c  # type: ignore[attr-defined]
        return c

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watches the descriptor on `loop` (moved there from an earlier loop once nothing is pending)."""
        if self.loop is loop:
            return
        if self.loop is not None:
            if any(not f.done() for f, _ in self.futures.values()):
                raise InvalidError("hammer.aio: the handle has calls pending on another event loop")
            self.unwatch()
        fd = self.sync._call(raw.hammer_fd)
        if fd < 0:
            raise _native.error(ERR_INTERNAL)
        loop.add_reader(fd, self.ready)
        self.loop, self.fd = loop, fd

    def unwatch(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None and self.fd >= 0 and not loop.is_closed():
            try:
                loop.remove_reader(self.fd)
            except (RuntimeError, ValueError, OSError):
                pass
        self.fd = -1

    def submit(self, ops: Any, n: int, converts: Sequence[Convert]) -> List["asyncio.Future[Any]"]:
        """Submits n ops (their tags set here) and returns a future for each."""
        loop = asyncio.get_running_loop()
        self.watch(loop)
        futs = []
        for i in range(n):
            tag = next(_tags)
            ops[i].tag = tag
            fut = loop.create_future()
            self.futures[tag] = (fut, converts[i])
            futs.append(fut)
        status = self.sync._call(_submit, ops, n)
        if status:
            for i in range(n):
                self.futures.pop(ops[i].tag, None)
            raise _native.error(status)
        return futs

    def submit_one(self, op: hammer_op, convert: Convert) -> "asyncio.Future[Any]":
        """submit() of one op: the hot path of every single call."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.watch(loop)
        tag = op.tag = next(_tags)
        fut = loop.create_future()
        self.futures[tag] = (fut, convert)
        if getattr(loop, "_ready", None):   # asyncio's own loop, with callbacks ready to run after this one
            if not self.backlog:
                loop.call_soon(self.submit_backlog)
            self.backlog.append(op)
            return fut
        status = self.sync._call(_submit, _byref(op), 1)
        if status:
            del self.futures[tag]
            raise _native.error(status)
        return fut

    def submit_backlog(self) -> None:
        ops, self.backlog = self.backlog, []
        if not ops or self.sync._handle is None:
            return
        try:
            status = self.sync._call(_submit, (hammer_op * len(ops))(*ops), len(ops))
            error: Optional[HammerError] = _native.error(status) if status else None
        except HammerError as e:
            error = e
        if error is not None:
            for op in ops:
                entry = self.futures.pop(op.tag, None)
                if entry is not None and not entry[0].done():
                    entry[0].set_exception(error)

    def ready(self) -> None:
        """The descriptor is readable: every waiting completion resolves its future (a cancelled one: dropped)."""
        h = self.sync._handle
        if h is None:
            self.unwatch()
            return
        buf, futures = self.buf, self.futures
        while True:
            n = _drain(h, buf, _DRAIN)
            for i in range(n):
                c = buf[i]
                entry = futures.pop(c.tag, None)
                if entry is None:
                    continue
                fut, convert = entry
                if fut.done():
                    continue
                if c.status == 0:
                    fut.set_result(convert(c))
                else:
                    fut.set_exception(_error(c))
            if n < _DRAIN:
                return

    async def shut_down(self) -> None:
        """hammer_shutdown, then drains until nothing is pending: each op sent completes with its result (the
        library completes every op within its deadline), each op queued or not yet submitted as InvalidError."""
        closed = InvalidError("the Hammer handle is closed")
        for op in self.backlog:
            entry = self.futures.pop(op.tag, None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(closed)
        self.backlog = []
        if self.sync._handle is None:
            return
        self.sync._call(raw.hammer_shutdown)
        if self.loop is not asyncio.get_running_loop():
            return   # watched on another loop (or none): whatever is pending fails as closed
        # The library completes every op within its deadline; the cap only guards against a handle that never does.
        end = time.monotonic() + _SHUTDOWN_CAP_S
        while True:
            self.ready()
            if not self.futures or self.sync._call(raw.hammer_pending) == 0 or time.monotonic() > end:
                return
            await asyncio.sleep(0.002)

    def fail_all(self, e: HammerError) -> None:
        self.backlog = []
        futures, self.futures = self.futures, {}
        for fut, _ in futures.values():
            if not fut.done():
                fut.set_exception(e)


def _op(kind: int, id: Id) -> hammer_op:
    op = hammer_op()
    op.kind = kind
    op.id = _id(id)
    op.amount = 1
    return op


def _count_hit_op(id: Id, bucket: int, now_ms: int, increment: int) -> hammer_op:
    op = _op(_native.OP_COUNT_HIT, id)
    op.bucket = _int64("bucket", bucket)
    op.now_ms = _int64("now_ms", now_ms)
    op.amount = _int64("increment", increment)
    return op


def _check_rate_op(kind: int, id: Id, scale_ms: int, limit: int, increment: int) -> hammer_op:
    op = _op(kind, id)
    op.scale_ms = _int64("scale_ms", scale_ms)
    op.limit = _int64("limit", limit)
    op.amount = _int64("increment", increment)
    return op


class Hammer:
    """An asyncio handle: hammer.Hammer's calls as coroutines.

    `url` is a URL (the handle is opened by the first call, by open() or by `async with`, in the loop's default
    executor, since opening connects once), or an open hammer.Hammer to share with thread code (then aclose() leaves
    it open). `.sync` is the thread handle underneath once open. max_workers is accepted for compatibility and no
    longer used (calls take no thread).
    spin_us: when a call finds nothing else ready to run on the loop (asyncio's own loop), it polls for its reply
    up to that many microseconds before the loop sleeps (0: never), as a blocking call's URL option spin_us does: a
    loop's wake-up costs more than a reply's round trip on loopback.
    """

    def __init__(self, url: Union[str, bytes, "_api.Hammer"], *, max_workers: int = 8, spin_us: int = 100) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or not 1 <= max_workers <= 1024:
            raise InvalidError("max_workers must be an int from 1 to 1024")
        if isinstance(spin_us, bool) or not isinstance(spin_us, int) or not 0 <= spin_us <= 1000:
            raise InvalidError("spin_us must be an int from 0 to 1000")
        self._spin = spin_us / 1e6
        if isinstance(url, _api.Hammer):
            self._url: Optional[Union[str, bytes]] = None
            self._sync: Optional[_api.Hammer] = url
            self._owned = False
        elif isinstance(url, (str, bytes)):
            self._url, self._sync, self._owned = url, None, True
        else:
            raise InvalidError(f"url must be str, bytes or a hammer.Hammer, not {type(url).__name__}")
        self._opening: Optional["asyncio.Future[_api.Hammer]"] = None
        self._closed = False
        self._done: Optional[_Completions] = None

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
            self._opening = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, _api.Hammer, url))
        opening = self._opening
        try:
            handle = await asyncio.shield(opening)
        except HammerError:
            if self._opening is opening:
                self._opening = None  # the next call tries again
            raise
        if self._closed:  # closed while opening
            await asyncio.get_running_loop().run_in_executor(None, handle.close)
            raise InvalidError("the Hammer handle is closed")
        self._sync = handle
        return handle

    def _completions(self) -> _Completions:
        if self._closed:
            raise InvalidError("the Hammer handle is closed")
        sync = self._sync
        assert sync is not None
        if self._done is None or self._done.sync is not sync:
            self._done = _Completions.of(sync)
        return self._done

    async def _one(self, op: hammer_op, convert: Convert) -> Any:
        """Submits one op and awaits its completion."""
        if self._sync is None or self._closed:
            await self._handle()
        done = self._completions()
        fut = done.submit_one(op, convert)
        if self._spin and not getattr(done.loop, "_ready", True):
            # Nothing else is ready to run (asyncio's own loop: its queue of ready callbacks is empty): the loop
            # would only sleep until the reply, and its wake-up costs more than a reply's round trip on loopback.
            # Poll for it a little first, as the blocking calls do (spin_us).
            end = _clock() + self._spin
            ready = done.ready
            while not fut.done() and _clock() < end:
                ready()
        return await fut

    async def _many(self, what: str, rows: List[Any], make: Callable[[Any], Tuple[hammer_op, Convert, Any]]
                    ) -> List[Any]:
        """A batch as ops: make(row) -> (op, convert, what to keep alive) (a HammerError refuses that row alone);
        every op in one submit; a result or the HammerError of that request alone per row."""
        await self._handle()
        results: List[Any] = [None] * len(rows)
        sent: List[int] = []
        ops: List[hammer_op] = []
        converts: List[Convert] = []
        keep: List[Any] = []
        for i, row in enumerate(rows):
            try:
                op, convert, alive = make(row)
            except HammerError as e:
                results[i] = type(e)(f"{what}: request {i}: {e.message}", e.status)
                continue
            sent.append(i)
            ops.append(op)
            converts.append(convert)
            keep.append(alive)
        if not sent:
            self._completions()  # a closed handle still raises
            return results
        arr = (hammer_op * len(ops))(*ops)
        futs = self._completions().submit(arr, len(ops), converts)
        del keep
        for i, r in zip(sent, await asyncio.gather(*futs, return_exceptions=True)):
            if isinstance(r, HammerError):
                r = type(r)(f"{what}: request {i}: {r.message}", r.status)
            elif isinstance(r, BaseException):
                raise r
            results[i] = r
        return results

    async def aclose(self) -> None:
        """Closes the handle; idempotent. The calls in flight complete first, with their results (within their
        deadlines: hammer_shutdown); those not sent yet fail with InvalidError."""
        if self._closed:
            return
        self._closed = True
        handle, self._sync = self._sync, None
        done, self._done = self._done, None
        if handle is not None and self._owned:
            try:
                if done is not None:
                    await done.shut_down()
            finally:   # cancelled meanwhile too: the handle is closed all the same
                if done is not None:
                    done.unwatch()
                    done.fail_all(InvalidError("the Hammer handle is closed"))
                await asyncio.get_running_loop().run_in_executor(None, handle.close)

    async def __aenter__(self) -> "Hammer":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- the calls of hammer.Hammer ------------------------------------------------------------------------------
    async def count_hit(self, id: Id, bucket: int, now_ms: int, increment: int = 1) -> int:
        """hammer.Hammer.count_hit."""
        result: int = await self._one(_count_hit_op(id, bucket, now_ms, increment), _value)
        return result

    async def get_bucket(self, id: Id, bucket: int) -> Optional[Bucket]:
        """hammer.Hammer.get_bucket."""
        op = _op(_native.OP_GET_BUCKET, id)
        op.bucket = _int64("bucket", bucket)
        result: Optional[Bucket] = await self._one(op, _bucket)
        return result

    async def delete_buckets(self, id: Id) -> int:
        """hammer.Hammer.delete_buckets."""
        result: int = await self._one(_op(_native.OP_DELETE_BUCKETS, id), _value)
        return result

    async def check_rate(self, id: Id, scale_ms: int, limit: int, increment: int = 1) -> Decision:
        """hammer.Hammer.check_rate."""
        result: Decision = await self._one(_check_rate_op(_native.OP_CHECK_RATE, id, scale_ms, limit, increment), _dec)
        return result

    async def check_rate_at(self, id: Id, scale_ms: int, limit: int, now_ms: int, increment: int = 1) -> Decision:
        """hammer.Hammer.check_rate_at."""
        op = _check_rate_op(_native.OP_CHECK_RATE_AT, id, scale_ms, limit, increment)
        op.now_ms = _int64("now_ms", now_ms)
        result: Decision = await self._one(op, _dec)
        return result

    async def inspect_bucket(self, id: Id, scale_ms: int, limit: int) -> Inspection:
        """hammer.Hammer.inspect_bucket."""
        op = _op(_native.OP_INSPECT_BUCKET, id)
        op.scale_ms = _int64("scale_ms", scale_ms)
        op.limit = _int64("limit", limit)
        result: Inspection = await self._one(op, _inspection)
        return result

    @staticmethod
    def _limit_op(id: Id, limit: Limits, cost: int, now_ms: Optional[int], peek: bool) -> Tuple[hammer_op, Any]:
        """The op of hit / peek (one limit or several) and the limits' C memory, kept until submitted."""
        several = _several(limit)
        if several:
            kinds = (_native.OP_PEEK_ALL, _native.OP_PEEK_ALL_AT) if peek else (_native.OP_HIT_ALL, _native.OP_HIT_ALL_AT)
        else:
            kinds = (_native.OP_PEEK, _native.OP_PEEK_AT) if peek else (_native.OP_HIT, _native.OP_HIT_AT)
        op = _op(kinds[0] if now_ms is None else kinds[1], id)
        if several:
            arr, n = _limits(limit)
            op.lims = ctypes.cast(arr, ctypes.POINTER(_native.hammer_limit))
            op.n_lims = n
            alive: Any = arr
        else:
            lim = _limit(limit)
            op.lims = lim._p
            alive = lim
        if not peek:
            op.amount = _int64("cost", cost)
        if now_ms is not None:
            op.now_ms = _int64("now_ms", now_ms)
        return op, alive

    async def hit(self, id: Id, limit: Limits, cost: int = 1, now_ms: Optional[int] = None) -> Decision:
        """hammer.Hammer.hit."""
        op, alive = self._limit_op(id, limit, cost, now_ms, peek=False)
        result: Decision = await self._one(op, _dec)
        del alive
        return result

    async def peek(self, id: Id, limit: Limits, now_ms: Optional[int] = None) -> Decision:
        """hammer.Hammer.peek."""
        op, alive = self._limit_op(id, limit, 1, now_ms, peek=True)
        result: Decision = await self._one(op, _dec)
        del alive
        return result

    async def hit_many(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """hammer.Hammer.hit_many (the requests are read before the call)."""
        def make(row: Any) -> Tuple[hammer_op, Convert, Any]:
            id, spec, cost, now_ms = _row(row, "hit_many", ("id", "limit", "cost", "now_ms"), (1, None))
            if now_ms is not None and _int64("now_ms", now_ms) <= 0:
                raise InvalidError("now_ms must be from 1 to 2^47 in hit_many (None: the clock)")
            op, alive = self._limit_op(id, spec, cost, now_ms, peek=False)
            return op, _dec, alive
        return await self._many("hit_many", list(requests), make)

    async def count_hits(self, requests: Iterable[Sequence[Any]]) -> List[Union[int, HammerError]]:
        """hammer.Hammer.count_hits."""
        def make(row: Any) -> Tuple[hammer_op, Convert, Any]:
            id, bucket, now_ms, inc = _row(row, "count_hits", ("id", "bucket", "now_ms", "increment"), (1,))
            return _count_hit_op(id, bucket, now_ms, inc), _value, None
        return await self._many("count_hits", list(requests), make)

    async def check_rates(self, requests: Iterable[Sequence[Any]]) -> List[Union[Decision, HammerError]]:
        """hammer.Hammer.check_rates."""
        def make(row: Any) -> Tuple[hammer_op, Convert, Any]:
            id, scale_ms, limit, inc = _row(row, "check_rates", ("id", "scale_ms", "limit", "increment"), (1,))
            return _check_rate_op(_native.OP_CHECK_RATE, id, scale_ms, limit, inc), _dec, None
        return await self._many("check_rates", list(requests), make)

    async def stats(self) -> Stats:
        """hammer.Hammer.stats (a copy of counters: no I/O, so it runs on the loop)."""
        handle = await self._handle()
        return handle.stats()


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
