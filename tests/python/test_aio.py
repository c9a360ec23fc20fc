"""hammer.aio against real redis-server processes: the same answers as the thread API, the event loop keeps running
while Redis is frozen (SIGSTOP), concurrent coroutines are all counted, and the async Limiter guards coroutines."""
import asyncio
import inspect
import time

import pytest

import hammer
import hammer.aio
from redis_server import free_port


def run(coro):
    return asyncio.run(coro)


async def ticker(ticks, stop, period=0.01):
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(period)


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_same_answers_as_the_thread_api(redis_server, uid, transport, whole_minute):
    lim = hammer.Limit.token_bucket(3, 1000)
    url = redis_server.url() if transport == "tcp" else redis_server.tls_url()

    async def main():
        async with hammer.aio.Hammer(url) as h:
            assert await h.count_hit(uid, 1, 1_000) == 1
            assert await h.count_hit(uid, 1, 1_001, 4) == 5
            assert await h.get_bucket(uid, 1) == hammer.Bucket(1, 5, 1_000, 1_001)
            assert await h.get_bucket(uid, 2) is None
            d = await h.check_rate_at(uid + ":cr", 60_000, 2, 1_000)
            assert d.allowed and d.count == 1 and d.remaining == 1
            assert (await h.inspect_bucket(uid + ":cr2", 60_000, 2)).count == 0
            assert (await h.check_rate(uid + ":cr2", 60_000, 2)).allowed
            ds = [await h.hit(uid + ":tb", lim, now_ms=5_000) for _ in range(4)]
            assert [d.allowed for d in ds] == [True, True, True, False] and ds[3].retry_after_ms == 334
            assert not (await h.peek(uid + ":tb", lim, now_ms=5_000)).allowed
            assert (await h.peek(uid + ":tb", lim, now_ms=5_334)).allowed
            batch = await h.hit_many([(uid + ":b", lim, 1, 5_000), (uid + ":b", lim, 9, 5_000), ("x\0", lim)])
            assert batch[0].allowed and batch[1].retry_after_ms == -1 and batch[1].retry_after is None
            assert isinstance(batch[2], hammer.InvalidError)
            assert await h.count_hits(iter([(uid + ":c", 1, 1), (uid + ":c", 1, 2, 2)])) == [1, 3]
            assert [d.allowed for d in await h.check_rates([(uid + ":r", 60_000, 1)] * 2)] == [True, False]
            st = await h.stats()
            assert st.calls >= 15 and st.denied >= 3 and sum(st.errors.values()) == 0, st  # refused here: not counted
            assert await h.delete_buckets(uid) >= 1
            assert await h.get_bucket(uid, 1) is None
            with pytest.raises(hammer.InvalidError):
                await h.hit(uid, lim, cost=1.5)
            return h

    h = run(main())
    assert h.closed and h.sync is None


def test_errors_are_the_thread_api_exceptions():
    port = free_port()

    async def main():
        h = hammer.aio.Hammer(f"redis://127.0.0.1:{port}/?expiry_ms=1000")
        with pytest.raises(hammer.ConnectError):
            await h.hit("x", hammer.Limit.gcra(1, 1000))
        with pytest.raises(ConnectionError):   # the built-in a caller already catches; the next call tries again
            await h.open()
        await h.aclose()
        with pytest.raises(hammer.InvalidError):
            await h.hit("x", hammer.Limit.gcra(1, 1000))
        with pytest.raises(hammer.InvalidError):
            hammer.aio.Hammer("redis://127.0.0.1:1/?expiry_ms=1", max_workers=0)
        with pytest.raises(hammer.InvalidError):
            hammer.aio.Hammer(42)
        bad = hammer.aio.Hammer("redis://127.0.0.1:1/?expiry_ms=0")
        with pytest.raises(ValueError):
            await bad.open()
        await bad.aclose()

    run(main())


def test_the_loop_keeps_ticking_while_redis_is_frozen(own_redis, uid):
    """SIGSTOP'd Redis: every call waits for its timeout (1 s) in the library's I/O thread (its op submitted, its
    future awaited), while a ticker task on the loop keeps its 10 ms period."""
    s = own_redis()
    lim = hammer.Limit.sliding_window(100, 60_000)

    async def main():
        async with hammer.aio.Hammer(s.url(timeout_ms=1000, connect_timeout_ms=1000), max_workers=4) as h:
            assert (await h.hit(uid, lim)).allowed
            ticks, stop = [], asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            await asyncio.sleep(0.05)
            s.pause()
            try:
                t0 = time.monotonic()
                results = await asyncio.gather(*(h.hit(uid, lim) for _ in range(4)), return_exceptions=True)
                elapsed = time.monotonic() - t0
                during = [t for t in ticks if t0 <= t <= t0 + elapsed]
            finally:
                s.resume()
                stop.set()
                await tick_task
            assert all(isinstance(r, (hammer.HammerTimeout, hammer.ConnectError)) for r in results), results
            assert elapsed >= 0.9, "the calls did wait for Redis"
            gaps = [b - a for a, b in zip(during, during[1:])]
            assert len(during) >= elapsed / 0.01 * 0.25, (len(during), elapsed)  # blocked, it would be 0 or 1
            assert max(gaps) < 0.5, f"the loop stalled for {max(gaps):.3f} s"
            for _ in range(100):   # the same handle recovers
                try:
                    d = await h.hit(uid, lim)
                    break
                except (hammer.HammerTimeout, hammer.ConnectError):
                    await asyncio.sleep(0.05)
            assert d.allowed and d.count >= 2

    run(main())


def test_thread_limiter_on_a_coroutine_does_not_block_the_loop(own_redis, uid):
    """hammer.Limiter decorating a coroutine function makes its check in a thread (it used to block the loop)."""
    s = own_redis()

    async def main():
        with hammer.Hammer(s.url(timeout_ms=600, connect_timeout_ms=600)) as h:
            lim = hammer.Limiter(h, hammer.Limit.gcra(100, 1000), key=uid)

            @lim
            async def job():
                return 1

            assert await job() == 1
            ticks, stop = [], asyncio.Event()
            tick_task = asyncio.create_task(ticker(ticks, stop))
            await asyncio.sleep(0.03)
            s.pause()
            try:
                t0 = time.monotonic()
                with pytest.raises((hammer.HammerTimeout, hammer.ConnectError)):
                    await job()
                elapsed = time.monotonic() - t0
            finally:
                s.resume()
                stop.set()
                await tick_task
            during = [t for t in ticks if t0 <= t <= t0 + elapsed]
            assert elapsed >= 0.5 and len(during) >= elapsed / 0.01 * 0.25, (len(during), elapsed)

    run(main())


def test_concurrent_coroutines_are_all_counted(redis_server, uid, whole_minute):
    async def main():
        async with hammer.aio.Hammer(redis_server.url(), max_workers=8) as h:
            counts = await asyncio.gather(*(h.count_hit(uid, 7, 1_000) for _ in range(300)))
            assert sorted(counts) == list(range(1, 301)), "each hit counted once"
            lim = hammer.Limit.fixed_window(50, 60_000)
            ds = await asyncio.gather(*(h.hit(uid + ":fw", lim) for _ in range(120)))
            assert sum(d.allowed for d in ds) == 50

    run(main())


def test_shares_a_thread_handle_and_leaves_it_open(redis_server, uid):
    with hammer.Hammer(redis_server.url()) as sync:
        sync.count_hit(uid, 1, 5)

        async def main():
            h = hammer.aio.Hammer(sync)
            assert h.sync is sync
            assert (await h.get_bucket(uid, 1)).count == 1
            await h.aclose()
            await h.aclose()  # idempotent

        run(main())
        assert not sync.closed and sync.get_bucket(uid, 1).count == 1


def test_async_limiter(redis_server, uid, whole_minute):
    async def main():
        async with hammer.aio.Hammer(redis_server.url()) as h:
            lim = hammer.aio.Limiter(h, hammer.Limit.fixed_window(2, 60_000), key=uid)

            @lim
            async def job(x: int, *, y: str = "a") -> str:
                """Job's doc."""
                return f"{x}{y}"

            assert job.__name__ == "job" and job.__doc__ == "Job's doc."
            assert str(inspect.signature(job)) == "(x: int, *, y: str = 'a') -> str"
            assert await job(1) == "1a" and await job(2, y="b") == "2b"
            with pytest.raises(hammer.RateLimited) as e:
                await job(3)
            assert e.value.key == uid and 0 < e.value.retry_after <= 60 and not e.value.decision.allowed

            per_user = hammer.aio.Limiter(h, hammer.Limit.gcra(1, 60_000))

            @per_user.limit(key=lambda user: f"{uid}:{user}", cost=1)
            async def fetch(user):
                return user

            assert await fetch("ann") == "ann" and await fetch("bob") == "bob"
            with pytest.raises(hammer.RateLimited):
                await fetch("ann")

            guard = hammer.aio.Limiter(h, hammer.Limit.token_bucket(1, 60_000), key=uid + ":g")
            ran = []
            async with guard as d:
                ran.append(1)
            assert d.allowed and d.remaining == 0
            with pytest.raises(hammer.RateLimited):
                async with guard:
                    ran.append(2)
            assert ran == [1] and not (await guard.peek()).allowed
            assert await guard.reset() == 1 and (await guard.check()).allowed
            big = await guard.check(cost=0)
            assert big.allowed
            with pytest.raises(hammer.RateLimited) as e:
                await guard.check(cost=5)
            assert e.value.retry_after is None, "never: not inf"

            with pytest.raises(TypeError):
                @lim
                def plain():
                    pass
            with pytest.raises(hammer.InvalidError):
                hammer.aio.Limiter(h.sync, hammer.Limit.gcra(1, 1000), key=uid)

    run(main())
