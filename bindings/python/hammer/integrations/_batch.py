"""Hits of concurrent requests sent together: while one call to Redis is in flight, the hits that arrive wait and then
go as one hit_many (one pipeline on one connection, one hop to the handle's thread pool), each still its own decision.

On an event loop the hop to a worker thread and back costs more CPU than the decision itself; with N requests in
flight this pays it once per batch instead of once per request. A lone request goes alone, as a plain hit, at once.
A hit of several limits (one group) goes alone too: hit_many takes one Limit per request.
"""
import asyncio
from typing import Any, List, Optional, Tuple

from .. import aio
from .._api import Decision, Limit
from ..errors import HammerError

MAX_BATCH = 64


class Batcher:
    def __init__(self, hammer: "aio.Hammer") -> None:
        self.hammer = hammer
        self.queue: List[Tuple[str, Limit, int, "asyncio.Future[Decision]"]] = []
        self.busy = False
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    async def hit(self, id: str, spec: Any, cost: int) -> Decision:
        if not isinstance(spec, Limit):
            return await self.hammer.hit(id, spec, cost)
        loop = asyncio.get_running_loop()
        if loop is not self.loop:   # another event loop (a test client's, a restarted server's): start afresh,
            self.loop, self.queue, self.busy = loop, [], False   # what the old one left cannot complete
        if not self.busy:
            self.busy = True
            try:
                return await self.hammer.hit(id, spec, cost)
            finally:
                self._next()
        future: "asyncio.Future[Decision]" = loop.create_future()
        self.queue.append((id, spec, cost, future))
        return await future

    def _next(self) -> None:
        """The call in flight ended: send what waits, or mark the batcher idle."""
        live = [q for q in self.queue[:MAX_BATCH] if not q[3].cancelled()]
        del self.queue[:MAX_BATCH]
        if not live:
            if self.queue:
                self._next()
                return
            self.busy = False
            return
        task = asyncio.ensure_future(self.hammer.hit_many([(i, s, c) for i, s, c, _ in live]))
        task.add_done_callback(lambda t: self._done(live, t))

    def _done(self, batch: List[Tuple[str, Limit, int, "asyncio.Future[Decision]"]], task: "asyncio.Task[Any]") -> None:
        try:
            error: Optional[BaseException] = task.exception()
            results = None if error is not None else task.result()
        except asyncio.CancelledError:
            error, results = HammerError("the batch of hits was cancelled"), None
        for n, (_, _, _, future) in enumerate(batch):
            if future.done():
                continue
            r: Any = results[n] if results is not None else error
            if isinstance(r, BaseException):
                future.set_exception(r)
            else:
                future.set_result(r)
        self._next()
