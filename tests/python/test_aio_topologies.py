"""Issue 17 through the non-blocking API (hammer_submit / hammer_fd / hammer_drain, as hammer.aio uses them): the
deadline and topology tests of the blocking API, each with its twin here, asserting the same bounds and outcomes
while a ticker task shows the event loop was never blocked:
- a silent DNS (a resolver on a port that never answers): test_connection's silent DNS test;
- frozen sentinels, and one Sentinel failover followed on the same handle: test_sentinel's;
- SIGSTOP'd cluster masters (map reads keep a live master's calls in their bound) and a stopped master replaced by
  its replica: test_cluster's;
- every URL kind (redis, unix, rediss, redis+cluster, rediss+cluster) answers as the blocking API does, call by call;
- on_error, fallback and clock=redis decide as the blocking API does, and the statistics count the same."""
import asyncio
import os
import re
import signal
import time

import pytest

import hammer
import hammer.aio
from redis_cluster import RedisCluster, ids_on, key_slot
from test_connection import SLACK, run_under_silent_dns
from test_sentinel import SERVICE, SentinelSet, ask, evalsha_calls

NOW = 1_700_000_000_000
PERIOD = 0.01  # the ticker's period


def run(coro):
    return asyncio.run(coro)


class Ticker:
    """A task on the loop appending time.monotonic() every PERIOD: check(t0, t1) asserts the loop kept running from
    t0 to t1 (a blocked loop gives 0 or 1 ticks there)."""

    async def __aenter__(self):
        self.ticks = []
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())
        await asyncio.sleep(3 * PERIOD)
        return self

    async def _run(self):
        while not self.stop.is_set():
            self.ticks.append(time.monotonic())
            await asyncio.sleep(PERIOD)

    async def __aexit__(self, *exc):
        self.stop.set()
        await self.task

    def check(self, t0, t1):
        during = [t for t in self.ticks if t0 <= t <= t1]
        span = t1 - t0
        if span >= 0.1:
            assert len(during) >= span / PERIOD * 0.25, f"{len(during)} ticks in {span:.3f} s: the loop was blocked"
        edges = [t0] + during + [t1]
        gap = max(b - a for a, b in zip(edges, edges[1:]))
        assert gap < SLACK, f"the loop stalled for {gap:.3f} s"


async def timed(coro):
    """(result or HammerError, seconds taken)."""
    t = time.monotonic()
    try:
        r = await coro
    except hammer.HammerError as e:
        r = e
    return r, time.monotonic() - t


# ---------------------------------------------------------------------------------------------------------------------
# A silent DNS (twin of test_connection's test_a_silent_dns_cannot_stretch_a_call_past_connect_timeout_ms)
# ---------------------------------------------------------------------------------------------------------------------
SILENT_DNS_CHILD = r"""
import asyncio, sys, time
import hammer, hammer.aio
host = sys.argv[1]
base = f"redis://{host}:6379/?expiry_ms=60000&connect_timeout_ms=300&timeout_ms=300"
lazy = base + "&lazy_connect=true"
lim = hammer.Limit.fixed_window(10, 1000)

def name(r):
    if isinstance(r, hammer.HammerError):
        return type(r).__name__
    return ("degraded" if r.degraded else "decided") + (":allowed" if r.allowed else ":denied")

# The blocking API first: what the aio calls must answer alike.
blocking = {}
for kind, url in [("lazy", lazy), ("allow", lazy + "&on_error=allow"), ("local", lazy + "&fallback=local")]:
    t = time.monotonic()
    try:
        r = hammer.Hammer(url).hit("x", lim)
    except hammer.HammerError as e:
        r = e
    blocking[kind] = (name(r), time.monotonic() - t)

async def main():
    ticks, stop = [], asyncio.Event()
    async def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)
    task = asyncio.create_task(tick())
    await asyncio.sleep(0.03)
    out = {}
    async def one(coro):
        t = time.monotonic()
        try:
            r = await coro
        except hammer.HammerError as e:
            r = e
        return name(r) if not isinstance(r, hammer.aio.Hammer) else "opened", time.monotonic() - t
    def loop_ran(t0, t1):
        during = [t for t in ticks if t0 <= t <= t1]
        edges = [t0] + during + [t1]
        return len(during), max(b - a for a, b in zip(edges, edges[1:]))
    # Open (connecting once, in the loop's executor), then lazy handles whose first calls resolve the name through
    # the submitted ops: five at once, each to end within its own deadline.
    t0 = time.monotonic()
    out["open"] = [await one(hammer.aio.Hammer(base).open())], loop_ran(t0, time.monotonic())
    for kind, url in [("lazy", lazy), ("allow", lazy + "&on_error=allow"), ("local", lazy + "&fallback=local")]:
        h = await hammer.aio.Hammer(url).open()
        t0 = time.monotonic()
        res = await asyncio.gather(*(one(h.hit("x", lim)) for _ in range(5)))
        out[kind] = res, loop_ran(t0, time.monotonic())
        t = time.monotonic()
        await h.aclose()
        out[kind + ":close"] = [("closed", time.monotonic() - t)], (0, 0.0)
    stop.set()
    await task
    return out

print(repr((blocking, asyncio.run(main()))))
"""


def test_a_silent_dns_holds_no_aio_call_past_its_bound_and_the_loop_keeps_ticking(tmp_path):
    """A resolver that never answers (a UDP socket on 127.0.0.1:53 that reads nothing, named by /etc/resolv.conf in
    a private mount namespace, 5 s per try): an aio open and the first aio calls of lazy handles end within
    connect_timeout_ms + timeout_ms, answered as the blocking calls are (an error, or on_error / fallback), while a
    ticker keeps running on the loop."""
    bound = 0.3 + 0.3
    blocking, out = run_under_silent_dns(tmp_path, SILENT_DNS_CHILD, "hammer-silent-dns.example")
    print(f"silent DNS: blocking {blocking}; aio {out}")
    assert out["open"][0][0][0] == "HammerTimeout", out["open"]   # as the blocking open
    assert blocking["allow"][0] == "degraded:allowed" and blocking["local"][0] == "degraded:allowed", blocking
    for kind in ("lazy", "allow", "local"):
        got, _ = out[kind]
        assert [g for g, _ in got] == [blocking[kind][0]] * 5, (kind, got, blocking[kind])
    for kind, (got, (ticks, gap)) in out.items():
        assert all(took <= bound + SLACK for _, took in got), (kind, got)
        if not kind.endswith(":close"):
            span = max(took for _, took in got)
            assert ticks >= span / PERIOD * 0.25 and gap < SLACK, (kind, got, ticks, gap)


# ---------------------------------------------------------------------------------------------------------------------
# Sentinel (twins of test_sentinel's frozen sentinels and failover tests)
# ---------------------------------------------------------------------------------------------------------------------
def test_frozen_sentinels_hold_no_aio_call_past_its_bound_and_a_lazy_handle_follows_them_once_back(uid):
    """Every sentinel frozen (SIGSTOP) and no master known yet (lazy_connect): aio calls submitted while the
    sentinels are asked each end within their own bound, answered by on_error (allow); a handle without a policy
    fails within the bound too; the loop keeps ticking; once the sentinels are back the same handles find the
    master."""
    connect_ms, timeout_ms = 200, 200
    bound = (connect_ms + timeout_ms) / 1000
    lim = hammer.Limit.fixed_window(100, 60000)
    with SentinelSet() as ss:
        for p in ss.procs:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            async def main():
                opts = dict(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms, lazy_connect="true", pool_size=8)
                async with hammer.aio.Hammer(ss.url(on_error="allow", **opts)) as h, \
                        hammer.aio.Hammer(ss.url(**opts)) as plain, Ticker() as ticker:
                    async def one(handle, delay):
                        await asyncio.sleep(delay)
                        return await timed(handle.hit(uid, lim))

                    t0 = time.monotonic()
                    got = await asyncio.gather(*(one(h, i * 0.03) for i in range(6)),
                                               *(one(plain, i * 0.03) for i in range(3)))
                    ticker.check(t0, time.monotonic())
                    allowed, failed = got[:6], got[6:]
                    assert all(isinstance(d, hammer.Decision) and d.allowed and d.degraded for d, _ in allowed), got
                    assert all(isinstance(e, (hammer.HammerTimeout, hammer.ConnectError)) for e, _ in failed), got
                    took = sorted(t for _, t in got)
                    assert max(took) <= bound + 0.15, f"calls took {took}, bound {bound}"
                    for p in ss.procs:
                        os.kill(p.pid, signal.SIGCONT)
                    still = 0   # calls answered by on_error until the handle reached the master
                    for _ in range(100):
                        d = await h.hit(uid, lim)
                        if not d.degraded:
                            break
                        still += 1
                        await asyncio.sleep(0.05)
                    assert not d.degraded and d.count == 1
                    for _ in range(100):
                        try:
                            d = await plain.hit(uid, lim)
                            break
                        except (hammer.HammerTimeout, hammer.ConnectError):
                            await asyncio.sleep(0.05)
                    assert not d.degraded and d.count == 2
                    st = h.sync.stats()
                    assert st.calls == 7 + still and st.degraded == 6 + still and st.allowed == 7 + still, st

            run(main())
        finally:
            for p in ss.procs:
                os.kill(p.pid, signal.SIGCONT)


def test_a_sentinel_failover_is_followed_by_the_same_aio_handle(uid):
    """SENTINEL FAILOVER during a storm of aio calls: every failing call ends within its bound, the loop keeps
    ticking, the calls recover on the new master on the same handle, and once the switch is named (plus a grace)
    the old master runs none of them; no acknowledged hit is lost (as test_sentinel's storm test)."""
    connect_ms, timeout_ms = 300, 300
    bound = (connect_ms + timeout_ms) / 1000
    with SentinelSet() as ss:
        assert ss.master_port() == ss.master.port   # and the replica streams the writes (SentinelSet waits)

        async def main():
            loop = asyncio.get_running_loop()
            off = lambda f, *a: loop.run_in_executor(None, f, *a)  # noqa: E731  (blocking helpers off the loop)
            async with hammer.aio.Hammer(ss.url(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms,
                                                pool_size=4)) as h, Ticker() as ticker:
                assert [await h.count_hit(uid, 1, NOW) for _ in range(3)] == [1, 2, 3]
                ok, failed = [], []
                stop = asyncio.Event()

                async def work():
                    while not stop.is_set():
                        c, took = await timed(h.count_hit(uid, 1, NOW))
                        if isinstance(c, hammer.HammerError):
                            failed.append((c, took))
                            await asyncio.sleep(0.01)
                        else:
                            ok.append(c)
                            await asyncio.sleep(0.001)

                workers = [asyncio.create_task(work()) for _ in range(3)]
                t0 = time.monotonic()
                await asyncio.sleep(0.3)
                assert await off(lambda: ask(ss.ports[0], "SENTINEL", "FAILOVER", SERVICE)) == "OK"
                deadline = time.monotonic() + 10
                while await off(ss.master_port) != ss.replica.port:
                    assert time.monotonic() < deadline, "Sentinel did not switch"
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.5)   # the handle asks a sentinel every 0.1 s while calls are made
                old_before = await off(evalsha_calls, ss.master)
                new_before = await off(evalsha_calls, ss.replica)
                ok_at_grace = len(ok)
                await asyncio.sleep(1.5)
                stop.set()
                await asyncio.gather(*workers)
                ticker.check(t0, time.monotonic())
                old_after = await off(evalsha_calls, ss.master)
                new_after = await off(evalsha_calls, ss.replica)
                assert old_after == old_before, f"the old master ran {old_after - old_before} scripts after the grace"
                assert new_after > new_before and len(ok) > ok_at_grace + 20, (new_before, new_after, len(ok))
                assert all(took <= bound + SLACK for _, took in failed), sorted(t for _, t in failed)[-5:]
                after = ok[ok_at_grace:]
                assert len(after) == len(set(after)), "a count was returned twice after the switch"
                total = int(await off(ss.replica.cli, "HGET", f"Hammer:Redis:{uid}:1", "count"))
                assert total >= max(after) and await h.count_hit(uid, 1, NOW) == total + 1
                acked = len(ok) + 3
                assert acked - total <= acked // 100, f"acknowledged hits lost: {acked - total} of {acked}"
                print(f"aio sentinel failover: {acked} OK calls, {len(failed)} failed "
                      f"({sorted({type(e).__name__ for e, _ in failed})}), new master's count {total}")

        run(main())


# ---------------------------------------------------------------------------------------------------------------------
# Redis Cluster (twins of test_cluster's map-read and stopped-master tests)
# ---------------------------------------------------------------------------------------------------------------------
def test_aio_calls_on_a_live_master_keep_their_bound_while_the_others_are_stopped():
    """3 of 4 masters stopped (no replica, no failover): aio calls on the stopped masters' slots (which read the map,
    asking the stopped nodes too) end within their bound, and aio calls on the live master made at the same time
    succeed within theirs, without a map read of their own and without opening its breaker; the loop keeps ticking."""
    c = RedisCluster(masters=4, replicas=0, extra=["cluster-node-timeout 60000"])
    try:
        connect_ms, timeout_ms = 300, 300
        bound = (connect_ms + timeout_ms) / 1000
        masters = c.masters()
        ids = {m.port: ids_on(c, m, 1, tag="amr")[0] for m in masters}
        live = masters[-1]
        stopped = [m for m in masters if m is not live]

        async def main():
            async with hammer.aio.Hammer(c.url(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms)) as h, \
                    Ticker() as ticker:
                for m in masters:
                    assert await h.count_hit(ids[m.port], 1, 1) == 1   # a connection on each master
                for m in stopped:
                    m.pause()
                    m.paused = True
                took = []
                try:
                    t0 = time.monotonic()
                    # A call on a stopped master times out and wants the map read again; then the live master's
                    # calls go on at once.
                    e, t = await timed(h.count_hit(ids[stopped[0].port], 1, 1))
                    took.append(t)
                    assert isinstance(e, (hammer.HammerTimeout, hammer.ConnectError)), e
                    reads = h.sync.stats().cluster_map_reads
                    for n in range(5):
                        r, t = await timed(h.count_hit(ids[live.port], 1, 1))
                        took.append(t)
                        assert r == 2 + n, r
                    assert h.sync.stats().cluster_map_reads == reads, "a call on a healthy master read the map"
                    # Calls on the stopped masters' slots and on the live master's, all in flight together.
                    on_stopped = [timed(h.count_hit(ids[m.port], 1, 1)) for m in stopped * 2]
                    on_live = [timed(h.count_hit(ids[live.port], 1, 1)) for _ in range(5)]
                    got = await asyncio.gather(*on_stopped, *on_live)
                    took += [t for _, t in got]
                    assert all(isinstance(e, (hammer.HammerTimeout, hammer.ConnectError))
                               for e, _ in got[:len(on_stopped)]), got
                    assert sorted(r for r, _ in got[len(on_stopped):]) == [7, 8, 9, 10, 11], got
                    r, t = await timed(h.count_hit(ids[live.port], 1, 1))
                    took.append(t)
                    assert r == 12, "the live master's breaker stayed closed"
                    ticker.check(t0, time.monotonic())
                finally:
                    for m in stopped:
                        m.resume()
                        m.paused = False
                assert max(took) <= bound + 0.15, f"calls took {sorted(took)}, bound {bound}"

        run(main())
    finally:
        c.close()


def test_a_stopped_master_delays_only_its_own_ops_on_the_io_workers():
    """Ops beyond a lane's depth go to the I/O worker of their node: while a stopped master's ops wait there for
    their timeout, a burst on the live master (more ops than its lane takes) completes at once, every one before any
    of the stopped master's, each with Redis's count."""
    c = RedisCluster(masters=3, replicas=0, extra=["cluster-node-timeout 60000"])
    try:
        stopped, live = c.masters()[:2]
        on_stopped = ids_on(c, stopped, 1, tag="iow")[0]
        on_live = ids_on(c, live, 1, tag="iow")[0]
        order = []

        async def main():
            async with hammer.aio.Hammer(c.url(connect_timeout_ms=300, timeout_ms=1500)) as h:
                assert await h.count_hit(on_stopped, 1, 1) == 1
                assert await h.count_hit(on_live, 1, 1) == 1

                async def one(i, who):
                    r, _ = await timed(h.count_hit(i, 1, 1))
                    order.append(who)
                    return r

                stopped.pause()
                try:
                    # 20 on the stopped master: its lane's depth in flight there, the rest on its I/O worker.
                    waiting = [asyncio.ensure_future(one(on_stopped, "stopped")) for _ in range(20)]
                    await asyncio.sleep(0.1)
                    burst = await asyncio.gather(*(one(on_live, "live") for _ in range(40)))
                    assert sorted(burst) == list(range(2, 42)), burst   # every hit counted, none crossed
                    failed = await asyncio.gather(*waiting)
                finally:
                    stopped.resume()
                assert all(isinstance(e, (hammer.HammerTimeout, hammer.ConnectError)) for e in failed), failed
                assert order.index("stopped") == 40, order   # the live burst waited for none of the stopped ops

        run(main())
    finally:
        c.close()


def test_a_stopped_master_replaced_by_its_replica_through_aio():
    """A master stopped (SIGSTOP) during a storm of aio calls: calls on the other masters' slots never fail; calls
    on its slots fail, each within its bound, until its replica is promoted, then succeed on the new master through
    the same handle; the loop keeps ticking."""
    c = RedisCluster()
    try:
        victim = c.masters()[0]
        replica = c.replica_of(victim)
        # A fresh replica whose link to its master never came up cannot fail over (its data is too old, says
        # cluster-replica-validity-factor): wait for its first sync and for a write streamed after it.
        key = ids_on(c, victim, 1, tag="probe")[0]
        victim.cli("SET", key, "1")
        offset = int(re.search(rb"master_repl_offset:(\d+)", victim.cli("INFO", "replication")).group(1))
        deadline = time.monotonic() + 20
        while True:
            info = replica.cli("INFO", "replication")
            got = re.search(rb"slave_repl_offset:(\d+)", info)
            if b"master_link_status:up" in info and got and int(got.group(1)) >= offset:
                break
            assert time.monotonic() < deadline, "the replica does not replicate"
            time.sleep(0.02)
        on_victim = ids_on(c, victim, 6, tag="ass")
        others = [i for m in c.masters() if m is not victim for i in ids_on(c, m, 6, tag="ass")]
        bound = 2.0   # default timeouts: 1000 ms connect + 1000 ms per call

        async def main():
            loop = asyncio.get_running_loop()
            async with hammer.aio.Hammer(c.url()) as h, Ticker() as ticker:
                ok = {i: 0 for i in on_victim + others}
                failed = {i: [] for i in on_victim + others}
                stop = asyncio.Event()

                async def work(k):
                    ids = on_victim + others
                    while not stop.is_set():
                        i = ids[k % len(ids)]
                        k += 1
                        r, took = await timed(h.count_hit(i, 1, 1, 1))
                        if isinstance(r, hammer.HammerError):
                            failed[i].append((time.monotonic(), r, took))
                            await asyncio.sleep(0.005)
                        else:
                            ok[i] += 1

                workers = [asyncio.create_task(work(k)) for k in range(8)]
                await asyncio.sleep(0.3)
                victim.pause()
                victim.paused = True
                t0 = time.monotonic()
                try:
                    deadline = t0 + 20
                    while (await loop.run_in_executor(None, replica.cli, "ROLE"))[0] != b"master":
                        assert time.monotonic() < deadline, "the replica was not promoted"
                        await asyncio.sleep(0.05)
                    promoted = time.monotonic()
                    deadline = promoted + 5
                    while time.monotonic() < deadline:
                        before = sum(ok[i] for i in on_victim)
                        await asyncio.sleep(0.2)
                        if sum(ok[i] for i in on_victim) > before + 5:
                            break
                    recovered = time.monotonic()
                    assert recovered < promoted + 5, "calls on the stopped master's slots did not recover"
                finally:
                    victim.resume()
                    victim.paused = False
                    stop.set()
                    await asyncio.gather(*workers)
                ticker.check(t0, recovered)
                assert not [e for i in others for e in failed[i]], [e for i in others for e in failed[i]][:3]
                fails = [f for i in on_victim for f in failed[i]]
                assert fails and all(t0 <= t <= recovered for t, _, _ in fails), fails[:3]
                assert all(took <= bound + SLACK for _, _, took in fails), sorted(t for _, _, t in fails)[-3:]
                for i in on_victim + others:   # every OK call counted on the master that now owns the id
                    assert ok[i] <= (await h.get_bucket(i, 1)).count <= ok[i] + len(failed[i]), i
                print(f"aio stopped master: promoted after {promoted - t0:.2f} s, recovered after "
                      f"{recovered - t0:.2f} s, {len(fails)} calls failed")

        run(main())
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------------------------------
# Every URL kind: the same answers as the blocking API, call by call
# ---------------------------------------------------------------------------------------------------------------------
def _calls(p):
    """The calls compared: (method, args) with ids under prefix p; every time given, so both APIs see the same."""
    tb = hammer.Limit.token_bucket(3, 1000)
    several = [hammer.Limit.fixed_window(2, 60_000), hammer.Limit.gcra(5, 1000)]
    return ([("count_hit", (p + "c", 1, 1_000)), ("count_hit", (p + "c", 1, 1_001, 4)), ("get_bucket", (p + "c", 1)),
             ("get_bucket", (p + "c", 2)), ("check_rate_at", (p + "r", 60_000, 2, 1_000)),
             ("check_rate_at", (p + "r", 60_000, 2, 1_001)), ("check_rate_at", (p + "r", 60_000, 2, 1_002)),
             ("inspect_bucket", (p + "r2", 60_000, 2))]
            + [("hit", (p + "tb", tb, 1, 5_000))] * 4
            + [("peek", (p + "tb", tb, 5_000)), ("peek", (p + "tb", tb, 5_334)),
               ("hit", (p + "s", several, 1, 7_000)), ("hit", (p + "s", several, 1, 7_000)),
               ("hit", (p + "s", several, 1, 7_000)), ("peek", (p + "s", several, 7_000)),
               ("hit_many", ([(p + "b", tb, 1, 5_000), (p + "b", tb, 9, 5_000), (p + "b2", tb, 1, 5_000)],)),
               ("count_hits", ([(p + "cc", 1, 1), (p + "cc", 1, 2, 2), (p + "cc2", 3, 3)],)),
               ("delete_buckets", (p + "c",)), ("get_bucket", (p + "c", 1))])


def _norm(r):
    """An answer as compared: an inspection's ms_to_next_bucket follows the clock (checked to be within the window)."""
    if isinstance(r, hammer.Inspection):
        assert 0 < r.ms_to_next_bucket <= 60_000, r
        return hammer.Inspection(r.count, r.remaining, 0, r.created, r.updated)
    return r


def _same_answers(url_of, tag):
    """Runs _calls through the blocking and the aio API (ids of their own) and compares the answers: one call after
    another, then every id's calls at once (each id's in order, the ids in flight together)."""
    with hammer.Hammer(url_of()) as hb:
        want = [_norm(getattr(hb, m)(*a)) for m, a in _calls(f"{tag}:sync:")]
        sync_stats = hb.stats()

    async def main():
        async with hammer.aio.Hammer(url_of()) as h:
            got = [_norm(await getattr(h, m)(*a)) for m, a in _calls(f"{tag}:aio:")]
            calls = list(enumerate(_calls(f"{tag}:aio2:")))
            groups = {}
            for k, (m, a) in calls:
                groups.setdefault(a[0] if isinstance(a[0], str) else k, []).append((k, m, a))
            together = [None] * len(calls)

            async def group(g):
                for k, m, a in g:
                    together[k] = _norm(await getattr(h, m)(*a))

            await asyncio.gather(*(group(g) for g in groups.values()))
            return got, together, await h.stats()

    got, together, aio_stats = run(main())
    assert got == want
    assert together == want
    for f in ("calls", "allowed", "denied", "degraded"):
        assert getattr(aio_stats, f) == 2 * getattr(sync_stats, f), (f, aio_stats, sync_stats)
    assert aio_stats.errors == sync_stats.errors, (aio_stats, sync_stats)
    return want


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster(masters=3, replicas=0)
    yield c
    c.close()


@pytest.fixture(scope="module")
def tls_cluster(tls_certs):
    c = RedisCluster(masters=3, replicas=0, tls=tls_certs)
    yield c
    c.close()


@pytest.mark.parametrize("kind", ["redis", "unix", "rediss"])
def test_every_single_url_kind_answers_through_aio_as_through_the_blocking_api(redis_server, uid, kind):
    url = {"redis": redis_server.url, "unix": lambda: f"unix://{redis_server.unix_path}?expiry_ms=60000",
           "rediss": redis_server.tls_url}[kind]
    want = _same_answers(url, uid)
    assert want[:2] == [1, 5] and want[-1] is None


@pytest.mark.parametrize("kind", ["redis+cluster", "rediss+cluster"])
def test_cluster_urls_answer_through_aio_as_through_the_blocking_api(request, uid, kind):
    c = request.getfixturevalue("cluster" if kind == "redis+cluster" else "tls_cluster")
    want = _same_answers(c.url, uid)
    assert want[:2] == [1, 5] and want[-1] is None

    async def spread():
        # Ids over the three masters, written on their owners.
        async with hammer.aio.Hammer(c.url()) as h:
            ids = [f"{uid}:spread:{i}" for i in range(30)]
            owners = [c.master_of_slot(key_slot(i.encode())) for i in ids]
            assert len({o.port for o in owners}) == 3
            assert await asyncio.gather(*(h.count_hit(i, 1, 1, 2) for i in ids)) == [2] * 30
            for i, o in zip(ids, owners):
                assert o.cli("HGET", b"Hammer:Redis:{" + i.encode() + b"}:1", "count") == b"2"
            assert await h.count_hits([(i, 1, 1, 1) for i in ids]) == [3] * 30
            st = await h.stats()
            assert st.cluster_nodes == 3 and st.connections >= 3

    run(spread())


def test_a_bad_certificate_fails_aio_calls_as_it_fails_blocking_ones(tls_certs, redis_server, tls_cluster):
    """The chain is verified by the handshakes the aio calls make too: an open, and a lazy handle's first call (its
    handshake made for the call), fail as the blocking ones do."""
    single = redis_server.tls_url(ssl_ca_certs=tls_certs.other_ca, lazy_connect="true")
    clustered = tls_cluster.url(ssl_ca_certs=tls_certs.other_ca, lazy_connect="true")
    for url in (single, clustered):
        eager = url.replace("lazy_connect=true", "lazy_connect=false")
        with pytest.raises(hammer.ConnectError, match="certificate verify failed"):
            hammer.Hammer(eager)
        with hammer.Hammer(url) as hb, pytest.raises(hammer.HammerError) as blocking:
            hb.count_hit("x", 1, 1)

        async def main():
            with pytest.raises(hammer.ConnectError, match="certificate verify failed"):
                await hammer.aio.Hammer(eager).open()
            async with hammer.aio.Hammer(url) as h:
                with pytest.raises(hammer.HammerError) as e:
                    await h.count_hit("x", 1, 1)
                return e.value

        got = run(main())
        print(f"lazy handle, bad CA: blocking {blocking.value!r}, aio {got!r}")
        assert type(got) is type(blocking.value) is hammer.ConnectError, (got, blocking.value)
        if url is single:
            assert "certificate verify failed" in str(got) and "certificate verify failed" in str(blocking.value)


# ---------------------------------------------------------------------------------------------------------------------
# Policies and statistics (twin of test_limits' test_failure_policies_while_down)
# ---------------------------------------------------------------------------------------------------------------------
def test_policies_decide_and_stats_count_through_aio_as_through_the_blocking_api(own_redis, uid):
    """Redis stopped: on_error=allow / deny and fallback=local answer the aio calls as they answer the blocking
    ones, a handle without a policy fails them alike, and each handle's statistics count the same; once Redis is
    back both APIs decide with Redis again."""
    s = own_redis()
    lim = hammer.Limit.token_bucket(3, 3_600_000)
    policies = {"error": {}, "allow": {"on_error": "allow"}, "deny": {"on_error": "deny"},
                "local": {"fallback": "local"}}

    def outcome(r):
        if isinstance(r, hammer.HammerError):
            return type(r).__name__
        if isinstance(r, list):
            return [outcome(x) for x in r]
        return (r.allowed, r.degraded, r.count, r.limit, r.remaining, r.retry_after_ms > 0)

    def script(p):   # (method, args) of each call while Redis is down
        return ([("hit", (uid + p, lim))] * 5 + [("check_rate", (uid + p + ":cr", 1000, 1))] * 2
                + [("peek", (uid + p, lim))] + [("hit_many", ([(uid + p, lim, 1), (uid + p + ":b", lim, 1)],))])

    blocking = {p: hammer.Hammer(s.url(**q)) for p, q in policies.items()}

    async def main():
        aio = {p: await hammer.aio.Hammer(s.url(**q)).open() for p, q in policies.items()}
        try:
            for p in policies:   # while up: Redis decides for both
                assert not (await aio[p].hit(uid + p + ":up", lim)).degraded
                assert not blocking[p].hit(uid + p + ":up", lim).degraded
            await asyncio.get_running_loop().run_in_executor(None, s.stop)
            answers = {}
            for p in policies:
                want = []
                for m, a in script(p):
                    try:
                        want.append(outcome(getattr(blocking[p], m)(*a)))
                    except hammer.HammerError as e:
                        want.append(outcome(e))
                got = []
                for m, a in script(p):
                    try:
                        got.append(outcome(await getattr(aio[p], m)(*a)))
                    except hammer.HammerError as e:
                        got.append(outcome(e))
                assert got == want, (p, got, want)
                answers[p] = got
            assert answers["error"][:5] == ["ConnectError"] * 5
            assert all(a[:2] == (True, True) for a in answers["allow"][:5])
            assert all(a[:2] == (False, True) and a[5] for a in answers["deny"][:5])
            assert [a[:2] for a in answers["local"][:5]] == [(True, True)] * 3 + [(False, True)] * 2
            for p in policies:
                sb, sa = blocking[p].stats(), await aio[p].stats()
                for f in ("calls", "allowed", "denied", "degraded", "errors"):
                    assert getattr(sa, f) == getattr(sb, f), (p, f, sa, sb)
            assert blocking["allow"].stats().degraded == 10 and aio["error"].sync.stats().errors["CONNECT"] == 10

            await asyncio.get_running_loop().run_in_executor(None, s.start)
            for p in policies:
                for _ in range(250):   # the back-off is capped at 1 s: recovery within a few attempts
                    try:
                        d = await aio[p].hit(uid + p + ":back", lim)
                    except hammer.ConnectError:
                        assert p == "error"
                    else:
                        if not d.degraded:
                            break
                    await asyncio.sleep(0.02)
                assert not d.degraded and d.allowed and d.remaining == 2, (p, d)
        finally:
            for h in aio.values():
                await h.aclose()

    try:
        run(main())
    finally:
        for h in blocking.values():
            h.close()


def test_policies_answer_a_frozen_redis_through_aio_within_the_bound(own_redis, uid):
    """Redis frozen (SIGSTOP): each policy answers the aio calls, several in flight at once, as it answers the
    blocking calls, each call within connect_timeout_ms + timeout_ms, while the loop keeps ticking."""
    s = own_redis()
    connect_ms, timeout_ms = 200, 200
    bound = (connect_ms + timeout_ms) / 1000
    lim = hammer.Limit.token_bucket(3, 3_600_000)
    policies = {"error": {}, "allow": {"on_error": "allow"}, "deny": {"on_error": "deny"},
                "local": {"fallback": "local"}}
    url = {p: s.url(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms, **q) for p, q in policies.items()}

    def outcome(r):
        return type(r).__name__ if isinstance(r, hammer.HammerError) else (r.allowed, r.degraded, r.count)

    blocking = {p: hammer.Hammer(u) for p, u in url.items()}

    async def main():
        aio = {p: await hammer.aio.Hammer(u).open() for p, u in url.items()}
        try:
            for p in policies:
                assert not (await aio[p].hit(uid + ":up", lim)).degraded and not blocking[p].hit(uid, lim).degraded
            s.pause()
            try:
                want, took = {}, []
                for p in policies:
                    want[p] = []
                    for _ in range(4):
                        t = time.monotonic()
                        try:
                            want[p].append(outcome(blocking[p].hit(uid + ":b", lim)))
                        except hammer.HammerError as e:
                            want[p].append(outcome(e))
                        took.append(time.monotonic() - t)
                async with Ticker() as ticker:
                    t0 = time.monotonic()
                    got = await asyncio.gather(*(timed(aio[p].hit(uid + ":a", lim)) for p in policies
                                                 for _ in range(4)))
                    ticker.check(t0, time.monotonic())
            finally:
                s.resume()
            took += [t for _, t in got]
            for k, p in enumerate(policies):
                mine = [outcome(r) for r, _ in got[4 * k:4 * k + 4]]
                # In flight together, the local fallback's four decisions come in any order.
                assert sorted(mine) == sorted(want[p]), (p, mine, want[p])
            assert want["allow"] == [(True, True, 0)] * 4 and all(not a[0] and a[1] for a in want["deny"]), want
            assert set(want["error"]) <= {"HammerTimeout", "ConnectError"}, want["error"]
            assert max(took) <= bound + SLACK, sorted(took)
            for p in policies:
                sb, sa = blocking[p].stats(), await aio[p].stats()
                assert (sa.calls, sa.degraded, sa.allowed, sa.denied, sa.errors) == (
                    sb.calls, sb.degraded, sb.allowed, sb.denied, sb.errors), (p, sa, sb)
        finally:
            for h in aio.values():
                await h.aclose()

    try:
        run(main())
    finally:
        for h in blocking.values():
            h.close()


def test_clock_redis_decides_through_aio_as_through_the_blocking_api(redis_server, uid):
    """clock=redis: the time of each decision is Redis's TIME, read by the aio calls as by the blocking ones."""
    lim = hammer.Limit.fixed_window(3, 3_600_000)
    url = redis_server.url(clock="redis")
    with hammer.Hammer(url) as hb:
        want = [(d.allowed, d.count, d.remaining) for d in (hb.hit(uid + ":sync", lim) for _ in range(5))]
        want.append((hb.check_rate(uid + ":sync:cr", 3_600_000, 2).count,))

    async def main():
        async with hammer.aio.Hammer(url) as h:
            got = [(d.allowed, d.count, d.remaining) for d in [await h.hit(uid + ":aio", lim) for _ in range(5)]]
            got.append(((await h.check_rate(uid + ":aio:cr", 3_600_000, 2)).count,))
            return got

    got = run(main())
    assert got == want == [(True, 1, 2), (True, 2, 1), (True, 3, 0), (False, 3, 0), (False, 3, 0), (1,)]
