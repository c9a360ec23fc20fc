"""The non-blocking calls (hammer_submit / hammer_fd / hammer_drain) through hammer.aio, against real redis-server
processes and the misbehaving fake server: thousands of ops in flight each completed once with Redis's count;
each op's deadline (connect_timeout_ms + timeout_ms from its submit) held against a SIGSTOP'd Redis, for ops in
flight and ops queued behind them; a cancelled await leaves its op to run; close with ops pending; a storm of
pipelined ops against a server that sends stray and broken replies never hands an op another op's value; and
test_connection's out-of-step cases and its stray 0.3 ms after a reply, through the non-blocking calls; and idle
connections watched once the engine runs (a stray or the server's close on one closes it before any call)."""
import asyncio
import random
import threading
import time

import pytest

import hammer
import hammer.aio
from fake_redis import FakeRedis, honest
from test_connection import BROKEN_REPLIES, CALLS, LIM, NOW, bulk, honest_reply, int_reply, misbehave_first


def run(coro):
    return asyncio.run(coro)


def test_thousands_in_flight_each_completed_once_with_redis_counts(redis_server, uid):
    ids = [f"{uid}:{k}" for k in range(50)]
    per = 80

    async def main():
        async with hammer.aio.Hammer(redis_server.url()) as h:
            calls = [h.count_hit(ids[n % len(ids)], 3, NOW) for n in range(len(ids) * per)]
            counts = await asyncio.gather(*calls)
            for k, i in enumerate(ids):
                mine = sorted(counts[k::len(ids)])
                assert mine == list(range(1, per + 1)), (i, mine[:5])   # every hit counted, no reply crossed
                assert h.sync.get_bucket(i, 3).count == per
            assert h.sync._call(hammer._native.raw.hammer_pending) == 0
            return h.sync.stats()

    st = run(main())
    assert st.calls >= len(ids) * per


def test_deadlines_hold_against_a_frozen_redis_for_ops_in_flight_and_queued(own_redis, uid):
    s = own_redis()
    timeout, connect = 400, 400
    bound = (timeout + connect) / 1000

    async def main():
        async with hammer.aio.Hammer(s.url(timeout_ms=timeout, connect_timeout_ms=connect)) as h:
            assert await h.count_hit(uid, 1, NOW) == 1
            s.pause()
            try:
                async def timed(delay):
                    await asyncio.sleep(delay)
                    t0 = time.monotonic()
                    try:
                        await h.count_hit(uid, 1, NOW)
                        return "ok", time.monotonic() - t0
                    except hammer.HammerError as e:
                        return e, time.monotonic() - t0
                # The first wave goes out and waits on the frozen server; the later ones queue behind it (the I/O
                # thread is inside the first wave's round trip) and must not wait for it past their own deadline.
                results = await asyncio.gather(*(timed(d) for d in [0] * 5 + [0.1] * 5 + [0.3] * 5))
            finally:
                s.resume()
            for r, took in results:
                assert isinstance(r, hammer.HammerTimeout), r
                assert took <= bound + 0.3, f"an op took {took:.3f} s, its deadline is {bound} s from submit"
            # The handle recovers.
            for _ in range(100):
                try:
                    return await h.count_hit(uid, 2, NOW)
                except (hammer.HammerTimeout, hammer.ConnectError):
                    await asyncio.sleep(0.05)

    assert run(main()) == 1


def test_a_cancelled_await_leaves_its_op_to_run(redis_server, uid):
    async def main():
        async with hammer.aio.Hammer(redis_server.url()) as h:
            tasks = [asyncio.ensure_future(h.count_hit(uid, 1, NOW)) for _ in range(200)]
            await asyncio.sleep(0)   # every op submitted
            for t in tasks[::2]:
                t.cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            kept = [d for d in done if not isinstance(d, BaseException)]
            assert len(kept) == 100 and len(set(kept)) == 100 and all(1 <= d <= 200 for d in kept)
            # The cancelled ones ran all the same: their completions were dropped, not handed to later calls.
            for _ in range(50):
                if h.sync.get_bucket(uid, 1).count == 200:
                    break
                await asyncio.sleep(0.02)
            assert h.sync.get_bucket(uid, 1).count == 200
            assert await h.count_hit(uid, 1, NOW) == 201

    run(main())


def test_close_with_ops_pending(redis_server, uid):
    async def main():
        h = hammer.aio.Hammer(redis_server.url())
        await h.open()
        sync = h.sync
        tasks = [asyncio.ensure_future(h.count_hit(uid, 1, NOW)) for _ in range(3000)]
        await asyncio.sleep(0)
        await h.aclose()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        ok = [d for d in done if isinstance(d, int)]
        closed = [d for d in done if isinstance(d, hammer.InvalidError)]
        assert len(ok) + len(closed) == 3000, [d for d in done if not isinstance(d, (int, hammer.InvalidError))][:3]
        assert sync.closed
        with hammer.Hammer(redis_server.url()) as check:
            b = check.get_bucket(uid, 1)
            n = b.count if b else 0
        # Closing shuts the engine down first: what was sent completed with its result, what was queued failed
        # unsent, so Redis holds exactly the calls that answered.
        assert n == len(ok), (n, len(ok), len(closed))

    run(main())


def test_a_storm_of_pipelined_ops_on_a_misbehaving_server_never_gets_a_crossed_reply():
    rng = random.Random(17)
    rng_lock = threading.Lock()
    faults = [
        lambda a: [honest_reply(a) + int_reply(honest(b"stray"))],   # one reply too many
        lambda a: [bulk(b"abc") + honest_reply(a)],                   # a reply of the wrong shape first
        lambda a: [b"$6\r\n999999" + honest_reply(a)],                # a bulk without its CRLF
        lambda a: [b"*1\r\n" + honest_reply(a)],                      # the reply nested one level down
        lambda a: [honest_reply(a)[:3], 0.001, honest_reply(a)[3:] + int_reply(7)],   # split, then a stray
        lambda a: [honest_reply(a), 0.0003, int_reply(999999)],       # a stray 0.3 ms later
    ]

    def answer(conn_no, cmd_no, args):
        with rng_lock:
            r = rng.random()
            f = rng.choice(faults)
        return f(args) if r < 0.3 else [honest_reply(args)]

    async def main(url):
        wrong, protocol, other, ok = [], 0, [], 0
        async with hammer.aio.Hammer(url) as h:
            for wave in range(20):
                ids = [f"storm:{wave}:{n}" for n in range(100)]
                res = await asyncio.gather(*(h.count_hit(i, 1, NOW) for i in ids), return_exceptions=True)
                for i, v in zip(ids, res):
                    if isinstance(v, hammer.ProtocolError):
                        protocol += 1
                    elif isinstance(v, BaseException):
                        other.append(repr(v))
                    elif v != honest(i.encode()):
                        wrong.append((i, v))
                    else:
                        ok += 1
        return wrong, protocol, other, ok

    with FakeRedis(answer) as fake:
        wrong, protocol, other, ok = run(main(fake.url(pool_size=2, timeout_ms=2000)))
        assert not wrong, f"ops completed with another op's value: {wrong[:5]}"
        assert not other, other[:5]
        assert ok > 200 and protocol > 20, (ok, protocol)


async def acall(call, h, i):
    """CALLS[call] through hammer.aio."""
    if call == "count_hit":
        return await h.count_hit(i, 1, NOW)
    if call == "hit":
        return (await h.hit(i, LIM, now_ms=NOW)).count
    return (await h.get_bucket(i, 1)).count


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("case", sorted(BROKEN_REPLIES))
def test_a_lane_out_of_step_is_dropped_and_no_op_gets_another_ops_reply(case, call):
    """test_connection's out-of-step cases through the non-blocking calls: the op that met the broken reply fails
    with ProtocolError, its connection is closed and never written again, and every later op gets its own reply."""
    async def main(url):
        async with hammer.aio.Hammer(url) as h:
            with pytest.raises(hammer.ProtocolError):
                await acall(call, h, "first")
            for n in range(5):
                assert await acall(call, h, f"later:{n}") == honest(f"later:{n}".encode())

    with FakeRedis(misbehave_first(BROKEN_REPLIES[case])) as fake:
        run(main(fake.url(pool_size=1)))
        assert fake.connections == 2
        assert [c for c, _ in fake.commands] == [0] + [1] * 5
        assert fake.wait_closed_by_client(1) >= 1


def test_a_stray_reply_that_arrives_just_after_an_op_never_reaches_the_next_op():
    """test_connection's stray 0.3 ms after a reply, through the non-blocking calls: the next op, made once the stray
    is sent, never gets it; the lane's connection is dropped before its next command."""
    stray_sent, stray_due = threading.Event(), threading.Event()

    def answer(conn_no, cmd_no, args):
        if cmd_no == 0:
            stray_due.set()
            return [honest_reply(args), 0.0003, int_reply(999999), stray_sent.set]
        return [honest_reply(args)]

    async def main(url):
        wrong, protocol = [], 0
        async with hammer.aio.Hammer(url) as h:
            for n in range(40):
                i = f"stray:{n}"
                stray_sent.clear()
                stray_due.clear()
                try:
                    v = await h.count_hit(i, 1, NOW)
                    if v != honest(i.encode()):
                        wrong.append((i, v))
                except hammer.ProtocolError:
                    protocol += 1
                if stray_due.is_set():
                    assert stray_sent.wait(5)
        return wrong, protocol

    with FakeRedis(answer) as fake:
        wrong, protocol = run(main(fake.url(pool_size=1, timeout_ms=2000)))
        assert not wrong, f"ops completed with another reply: {wrong[:5]}"
        assert fake.connections == 40 and len(fake.commands) == 40, (fake.connections, len(fake.commands), protocol)


def test_bytes_on_an_idle_connection_close_it_at_once_once_the_engine_runs():
    """Once the engine runs, the pools' idle connections are watched: a reply nobody asked for, arriving while the
    connection rests in the pool, closes it at once (no call made meanwhile), and the next call goes on a new one.
    A blocking-only handle checks it at the next lend instead (test_connection's idle stray)."""
    def answer(conn_no, cmd_no, args):
        if conn_no == 0 and cmd_no == 0:
            return [honest_reply(args), 0.05, int_reply(501007)]   # a stray, 50 ms after the reply
        return [honest_reply(args)]

    async def main(fake):
        async with hammer.aio.Hammer(fake.url(pool_size=1)) as h:
            assert await h.count_hit("a", 1, NOW) == honest(b"a")
            assert h.sync.stats().connections == 1
            end = time.monotonic() + 5
            while h.sync.stats().connections > 0 and time.monotonic() < end:
                await asyncio.sleep(0.01)
            # (Closed with the stray unread, so the server sees a reset rather than an end.)
            assert h.sync.stats().connections == 0, "the idle connection that got a stray is still open"
            assert len(fake.commands) == 1, "a command was written meanwhile"
            assert await h.count_hit("b", 1, NOW) == honest(b"b")
            assert fake.connections == 2 and [c for c, _ in fake.commands] == [0, 1]

    with FakeRedis(answer) as fake:
        run(main(fake))


def test_a_server_closing_an_idle_connection_is_seen_at_once(own_redis, uid):
    """Redis closing a resting connection (CLIENT KILL here; its idle timeout alike): the watched pool closes its
    end at once, so the server's client list loses it before any call, and the next call needs no retry."""
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(pool_size=2)) as h:
            assert await h.count_hit(uid, 1, NOW) == 1
            st = h.sync.stats()
            assert st.connections >= 1
            s.cli("CLIENT", "KILL", "TYPE", "normal")
            end = time.monotonic() + 5
            while h.sync.stats().connections > 0 and time.monotonic() < end:
                await asyncio.sleep(0.01)
            assert h.sync.stats().connections == 0, "the killed idle connections are still counted open"
            assert await h.count_hit(uid, 1, NOW) == 2   # no call failed on a dead connection

    run(main())


def test_an_aclose_cancelled_while_ops_are_in_flight_still_closes_the_handle(own_redis, uid):
    """aclose waits for the ops in flight (hammer_shutdown); cancelled meanwhile, it still closes the handle and
    fails every call still pending, so nothing is left open or unresolved."""
    s = own_redis()

    async def main():
        h = await hammer.aio.Hammer(s.url(timeout_ms=3000, connect_timeout_ms=300)).open()
        sync = h.sync
        assert await h.count_hit(uid, 1, NOW) == 1
        s.pause()
        try:
            tasks = [asyncio.ensure_future(h.count_hit(uid, 1, NOW)) for _ in range(50)]
            await asyncio.sleep(0.05)   # written, waiting on the frozen server
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(h.aclose(), 0.2)
            assert sync.closed, "the cancelled aclose left the handle open"
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(d, hammer.InvalidError) for d in done), done[:3]
            await h.aclose()   # idempotent
        finally:
            s.resume()

    run(main())


def test_replies_a_blocking_call_reads_for_the_loops_ops_still_wake_the_loop(own_redis, uid):
    """A blocking call alone on its pool's lane, ops of the loop joining the lane behind it, and Redis answering
    them all in one write (it slept meanwhile): the blocking call's thread reads the loop's replies too, and the
    loop must hear of them at once. Before the fix nothing told it (the socket had nothing left): the await hung
    until some other op happened to complete."""
    s = own_redis()

    async def main():
        async with hammer.aio.Hammer(s.url(pool_size=1, timeout_ms=20000)) as h:
            assert await h.count_hit(uid, 1, NOW) == 1
            loop = asyncio.get_running_loop()
            for k in range(1, 6):
                sleeper = threading.Thread(target=s.cli, args=("DEBUG", "SLEEP", "0.3"))
                sleeper.start()
                await asyncio.sleep(0.05)   # Redis sleeps
                blocking = loop.run_in_executor(None, h.sync.count_hit, f"{uid}:b", 1, NOW)
                await asyncio.sleep(0.05)   # the blocking call is on the lane, its command sent
                t0 = time.monotonic()
                counts = await asyncio.wait_for(
                    asyncio.gather(*(h.count_hit(f"{uid}:a", 1, NOW) for _ in range(3))), 5)
                took = time.monotonic() - t0
                assert sorted(counts) == [3 * k - 2, 3 * k - 1, 3 * k]
                assert await blocking == k
                sleeper.join()
                assert took < 2, f"the loop heard of its replies {took:.2f} s after submitting (Redis slept 0.3 s)"

    run(main())
