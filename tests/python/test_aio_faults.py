"""Faults through hammer.aio, twins of test_core's and test_tls's blocking ones: a restart (the scripts flushed, every
connection gone), a server stopped then started, every connection killed, a client pause, a restart in the middle of
a storm of concurrent calls, and SCRIPT FLUSH under pipelined bursts on the lanes. Calls fail only while a fault
lasts, with the blocking calls' exceptions; the same handle recovers after it; no hit is lost or counted twice."""
import asyncio
import time

import pytest

import hammer
import hammer.aio
from test_tls import wait_for_aof_rewrite

NOW = 1_700_000_000_000


def run(coro):
    return asyncio.run(coro)


async def retry(make, errors, deadline_s=10.0, pause_s=0.05):
    """Awaits make() until it returns; `errors` are the exceptions allowed meanwhile. Returns (result, failures)."""
    failures = []
    end = time.monotonic() + deadline_s
    while True:
        try:
            return await make(), failures
        except errors as e:
            failures.append(e)
            if time.monotonic() > end:
                raise AssertionError(f"no recovery within {deadline_s} s; last failures: {failures[-3:]}") from e
            await asyncio.sleep(pause_s)


def test_restart_recovery_through_aio(own_redis, uid):
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(pool_size=2)) as h:
            assert await h.count_hit(uid, 1, 1_000, 5) == 5
            s.restart()  # same port, empty dataset, no scripts
            count, failures = await retry(lambda: h.count_hit(uid, 1, 2_000), (hammer.ConnectError,))
            assert count == 1, "the restarted server is empty; no failed attempt counted"
            assert len(failures) <= 10
            assert all(isinstance(f, hammer.ConnectError) and f.status == 2 and f.message for f in failures)
            assert await h.get_bucket(uid, 1) == (1, 1, 2_000, 2_000)

    run(main())


def test_server_down_then_up_through_aio(own_redis, uid):
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(connect_timeout_ms=500)) as h:
            assert await h.count_hit(uid, 1, 1_000) == 1
            s.stop()
            for _ in range(3):
                with pytest.raises(hammer.ConnectError) as e:
                    await h.count_hit(uid, 1, 2_000)
                assert e.value.message
            s.start()
            count, _ = await retry(lambda: h.count_hit(uid, 1, 3_000), (hammer.ConnectError,))
            assert count == 1
            assert await h.delete_buckets(uid) == 1

    run(main())


def test_killed_connections_are_replaced_through_aio(own_redis, uid):
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(pool_size=3)) as h:
            assert await h.count_hit(uid, 1, 1_000) == 1
            # A burst beyond a lane's depth: the pool's other connections open too.
            burst = await asyncio.gather(*(h.count_hit(uid, 2, 1_000) for _ in range(50)))
            assert sorted(burst) == list(range(1, 51))
            s.cli("CLIENT", "KILL", "TYPE", "normal")
            count, failures = await retry(lambda: h.count_hit(uid, 1, 2_000), (hammer.ConnectError,))
            assert count == 2 and len(failures) <= 3, (count, failures)
            burst = await asyncio.gather(*(h.count_hit(uid, 2, 1_000) for _ in range(50)))
            assert sorted(burst) == list(range(51, 101)), "a hit lost or counted twice after the kill"

    run(main())


@pytest.mark.parametrize("mode", ["ALL", "WRITE"])
def test_command_timeout_during_client_pause_through_aio(own_redis, uid, mode):
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(timeout_ms=200, pool_size=2)) as h:
            assert await h.count_hit(uid, 1, 1_000) == 1
            assert s.cli("CLIENT", "PAUSE", "3000", mode) == "OK"
            t0 = time.monotonic()
            with pytest.raises(hammer.HammerTimeout) as e:
                await h.count_hit(uid, 1, 2_000)
            elapsed = time.monotonic() - t0
            assert e.value.status == 3 and e.value.message
            assert elapsed < 2.5, f"gave up after {elapsed:.2f} s, before the 3 s pause ended"
            count, _ = await retry(lambda: h.count_hit(uid, 1, 3_000), (hammer.HammerTimeout, hammer.ConnectError),
                                   deadline_s=15, pause_s=0.1)
            assert count in (2, 3), "the timed-out hit counted at most once"
            assert (await h.get_bucket(uid, 1)).updated == 3_000

    run(main())


def test_a_restart_in_a_storm_of_aio_calls_loses_and_doubles_nothing(own_redis, uid):
    s = own_redis(extra=["appendonly yes", "appendfsync always"])
    wait_for_aof_rewrite(s)

    async def main():
        async with hammer.aio.Hammer(s.url(connect_timeout_ms=300, timeout_ms=300, pool_size=4)) as h:
            ok, failed = [], {}
            stop = time.monotonic() + 1.5

            async def worker():
                while time.monotonic() < stop:
                    try:
                        ok.append(await h.count_hit(uid, 1, NOW))
                    except hammer.HammerError as e:
                        failed[type(e).__name__] = failed.get(type(e).__name__, 0) + 1
                        await asyncio.sleep(0.005)

            tasks = [asyncio.ensure_future(worker()) for _ in range(16)]
            await asyncio.sleep(0.5)
            await asyncio.get_running_loop().run_in_executor(None, s.restart)
            await asyncio.gather(*tasks)
            assert failed, "the restart failed no call: the storm did not span it"
            # Refused while it restarts, LOADING while it reads its AOF back.
            assert set(failed) <= {"ConnectError", "HammerTimeout", "RedisError"}, failed
            assert len(ok) == len(set(ok)), "a count returned twice"
            total = int(s.cli("HGET", f"Hammer:Redis:{uid}:1", "count"))
            # Every count that returned is in Redis; a failed call may have run (its reply lost), never twice.
            assert max(ok) <= total <= len(ok) + sum(failed.values()), (max(ok), total, len(ok), failed)
            assert await h.count_hit(uid, 1, NOW) == total + 1

    run(main())


def test_script_flush_under_pipelined_bursts_counts_every_hit_once(own_redis, uid):
    """NOSCRIPT on a lane with ops in flight: each is sent again by EVAL (Redis did not run it), once."""
    s = own_redis()
    lim = hammer.Limit.fixed_window(1_000_000, 60_000)

    async def main():
        async with hammer.aio.Hammer(s.url()) as h:
            assert await h.count_hit(uid, 1, NOW) == 1
            counts, remaining = [], []
            for _ in range(3):
                assert s.cli("SCRIPT", "FLUSH") == "OK"
                got = await asyncio.gather(*(h.count_hit(uid, 1, NOW) for _ in range(100)),
                                           *(h.hit(uid + ":lim", lim) for _ in range(100)))
                counts += got[:100]
                remaining += [d.remaining for d in got[100:]]
            assert sorted(counts) == list(range(2, 302)), "a hit lost or counted twice"
            assert sorted(remaining, reverse=True) == list(range(1_000_000 - 1, 1_000_000 - 301, -1))
            assert (await h.get_bucket(uid, 1)).count == 301

    run(main())
