"""libhammer on a real Redis Cluster (3 masters + 3 replicas on loopback, one per session, tests/redis_cluster.py):
the API, threads, processes and batches over redis+cluster://, the C programs, the braced key layout on the node
that owns each id's slot, the spread of ids over the masters, and routing through resharding and failovers.
Tests that change the cluster's shape (failover, SIGSTOP) come last and leave it with 3 masters serving every slot."""
import binascii
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

import hammer
from multiproc import run_in_processes
from redis_cluster import RedisCluster, ids_on, key_slot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = b"Hammer:Redis:"


@pytest.fixture(scope="module")
def cluster():
    c = RedisCluster()
    yield c
    c.close()


@pytest.fixture
def h(cluster):
    with hammer.Hammer(cluster.url(timeout_ms=3000)) as hd:
        yield hd


def bucket_key(id_, bucket):
    return PREFIX + b"{" + id_.encode() + b"}:" + str(bucket).encode()


def slot_owner(ranges, slot):
    for port, rs in ranges.items():
        if any(lo <= slot <= hi for lo, hi in rs):
            return port
    return None


# ---------------------------------------------------------------------------------------------------------------------
# The API over the cluster
# ---------------------------------------------------------------------------------------------------------------------
def test_slots_agree_with_redis(cluster):
    n = cluster.nodes[0]
    for key in [b"123456789", b"Hammer:Redis:{user42}:7", b"foo{}{bar}", b"foo{{bar}}zap", b"a{b", b"{}"]:
        assert key_slot(key) == n.cli("CLUSTER", "KEYSLOT", key)


def test_every_call_writes_the_braced_layout_on_the_owner(cluster, h):
    ranges = cluster.slot_ranges()
    for i in range(60):
        id_ = f"api:{i}"
        assert h.count_hit(id_, 7, 1000, 2) == 2
        assert h.count_hit(id_, 7, 1001, 1) == 3
        owner = cluster.node(slot_owner(ranges, key_slot(id_.encode())))
        assert owner.cli("HGET", bucket_key(id_, 7), "count") == b"3"
        assert owner.cli("EXISTS", PREFIX + b"{" + id_.encode() + b"}:index") == 1
        slot = key_slot(id_.encode())
        for other in cluster.masters():
            if other is not owner:
                assert str(other.cli("EXISTS", bucket_key(id_, 7))) == f"MOVED {slot} 127.0.0.1:{owner.port}"
        b = h.get_bucket(id_, 7)
        assert (b.count, b.created, b.updated) == (3, 1000, 1001)
    for i in range(60):
        assert h.delete_buckets(f"api:{i}") == 1
        assert h.get_bucket(f"api:{i}", 7) is None
    assert h.stats().cluster_nodes == 3


@pytest.mark.parametrize("algo", ["fixed_window", "sliding_window", "token_bucket", "leaky_bucket", "gcra",
                                  "sliding_counter"])
def test_limiters_on_the_cluster(h, algo):
    lim = getattr(hammer.Limit, algo)(3, 60000)
    # One instant for every call: a fixed window's calls must not straddle the minute's end.
    now = int(time.time() * 1000)
    for i in range(12):
        id_ = f"lim:{algo}:{i}"
        got = [h.hit(id_, lim, now_ms=now).allowed for _ in range(5)]
        assert got[:3] == [True] * 3 and not any(got[3:]), (id_, got)
        assert not h.peek(id_, lim, now_ms=now).allowed
        assert h.delete_buckets(id_) >= 0
        assert h.hit(id_, lim, now_ms=now).allowed


def test_several_limits_on_the_cluster(h, whole_minute):
    """hit_all: every limit's keys of one id in its slot, one script on its owner; single calls and batches."""
    lims = [hammer.Limit.fixed_window(5, 60000), hammer.Limit.sliding_window(4, 60000),
            hammer.Limit.token_bucket(3, 60000), hammer.Limit.sliding_counter(6, 60000)]
    for i in range(12):
        id_ = f"all:{i}"
        got = [h.hit(id_, lims) for _ in range(4)]
        assert [g.allowed for g in got] == [True] * 3 + [False], (id_, got)
        assert got[3].decided_by == 2 and not h.peek(id_, lims).allowed
        assert h.hit(id_, lims[0]).remaining == 1, "charged 3 times with the others, once more alone"
    out = h.hit_many([(f"allm:{i}", lims, 1) for i in range(30)] * 4)
    assert [o.allowed for o in out] == [True] * 90 + [False] * 30, out
    assert all(o.decided_by == 2 for o in out[90:])
    for i in range(12):
        assert h.delete_buckets(f"all:{i}") >= 4


def test_several_limits_of_one_algorithm_on_the_cluster(cluster, h):
    """Two sliding windows and two token buckets of one id: states of their own in the id's slot (and index), on its
    owner; delete_buckets deletes every key of the id there."""
    lims = [hammer.Limit.sliding_window(2, 1000), hammer.Limit.sliding_window(3, 60_000),
            hammer.Limit.token_bucket(2, 1000), hammer.Limit.token_bucket(100, 86_400_000)]
    ranges = cluster.slot_ranges()
    for i in range(12):
        id_ = f"own:{i}"
        got = [h.hit(id_, lims) for _ in range(3)]
        assert [g.allowed for g in got] == [True, True, False], (id_, got)
        owner = cluster.node(slot_owner(ranges, key_slot(id_.encode())))
        base = PREFIX + b"{" + id_.encode() + b"}:"
        keys = sorted(owner.cli("KEYS", base.replace(b"{", b"\\{").replace(b"}", b"\\}") + b"*"))
        assert keys == sorted(base + s for s in [b"index", b"sw.2.1000.2", b"swm.2.1000.2", b"sw.3.60000.3",
                                                  b"swm.3.60000.3", b"tb.2.1000.2", b"tb.100.86400000.100"]), keys
        assert {key_slot(k) for k in keys} == {key_slot(id_.encode())}
        assert h.delete_buckets(id_) == 6, "every key but the index, which is not counted"
        assert owner.cli("KEYS", base.replace(b"{", b"\\{").replace(b"}", b"\\}") + b"*") == []
    out = h.hit_many([(f"ownm:{i}", lims, 1) for i in range(20)] * 3)
    assert [o.allowed for o in out] == [True] * 40 + [False] * 20, out


def test_check_rate_and_inspect(h, whole_minute):
    for i in range(10):
        id_ = f"cr:{i}"
        ds = [h.check_rate(id_, 60000, 2) for _ in range(3)]
        assert [d.allowed for d in ds] == [True, True, False]
        assert h.inspect_bucket(id_, 60000, 2).count == 3


def test_ids_the_braced_layout_cannot_hold_are_refused(h):
    for bad in ["", "}x"]:
        with pytest.raises(hammer.InvalidError, match="hash tags"):
            h.count_hit(bad, 1, 1, 1)
    assert h.count_hit("x}", 1, 1, 1) == 1   # a '}' later in the id is fine: its tag is "x"
    res = h.count_hits([("ok:1", 1, 1, 1), ("", 1, 1, 1), ("ok:2", 1, 1, 1)])
    assert res[0] == 1 and res[2] == 1 and isinstance(res[1], hammer.InvalidError)


def test_cluster_url_errors(cluster):
    with pytest.raises(hammer.InvalidError, match="db must be 0"):
        hammer.Hammer(f"redis+cluster://127.0.0.1:{cluster.nodes[0].port}/3?expiry_ms=1000")
    # A dead seed first, a live one next: one reachable seed is enough.
    dead = 1   # nothing listens on port 1 of loopback: refused
    with hammer.Hammer(f"redis+cluster://127.0.0.1:{dead},127.0.0.1:{cluster.nodes[3].port}?expiry_ms=1000") as hd:
        assert hd.count_hit("seed", 1, 1, 1) == 1
    with pytest.raises(hammer.ConnectError):
        hammer.Hammer(f"redis+cluster://127.0.0.1:{dead}?expiry_ms=1000&connect_timeout_ms=200")


def test_lazy_connect_on_a_cluster(cluster):
    """lazy_connect=true: open reads no map; the first call does. With no seed reachable, on_error answers from the
    first call."""
    with hammer.Hammer(cluster.url(lazy_connect="true")) as hd:
        assert hd.stats().cluster_map_reads == 0
        assert hd.count_hit("lazy:a", 1, 1, 2) == 2
        assert hd.stats().cluster_map_reads == 1
    dead = hammer.Hammer("redis+cluster://127.0.0.1:1,127.0.0.1:2/?expiry_ms=60000&connect_timeout_ms=200&"
                         "timeout_ms=200&lazy_connect=true&on_error=deny")
    with dead:
        d = dead.hit("lazy:b", hammer.Limit.fixed_window(5, 1000))
        assert not d.allowed and d.degraded
        with pytest.raises(hammer.ConnectError):
            dead.count_hit("lazy:b", 1, 1)


def test_hash_tags_on_a_single_redis(redis_server):
    with hammer.Hammer(redis_server.url(hash_tags="true", prefix="ht:")) as hd:
        assert hd.count_hit("u1", 5, 1, 1) == 1
        assert redis_server.cli("EXISTS", b"ht:{u1}:5") == 1
        assert redis_server.cli("EXISTS", b"ht:u1:5") == 0
        assert hd.hit_many([("u1", hammer.Limit.fixed_window(2, 1000))])[0].allowed
        assert hd.delete_buckets("u1") == 2   # bucket 5 and the fixed window's bucket
        assert redis_server.cli("EXISTS", b"ht:{u1}:5") == 0


# ---------------------------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------------------------
def test_batches_over_three_masters_keep_request_order(cluster, h, whole_minute):
    ids = [f"b:{i}" for i in range(200)]
    assert len({slot_owner(cluster.slot_ranges(), key_slot(i.encode())) for i in ids}) == 3
    # Each id gets its own increment, so a reply given to the wrong request would show.
    got = h.count_hits([(i, 3, 100, k + 1) for k, i in enumerate(ids)])
    assert got == [k + 1 for k in range(200)]
    got = h.count_hits([(i, 3, 100, 1) for i in ids] + [(ids[0], 3, 100, 1)])
    assert got == [k + 2 for k in range(200)] + [3]
    ds = h.hit_many([(i, hammer.Limit.fixed_window(k % 5 + 1, 60000)) for k, i in enumerate(ids)])
    assert [d.limit for d in ds] == [k % 5 + 1 for k in range(200)]
    assert all(d.allowed for d in ds)
    rates = h.check_rates([(f"br:{k}", 60000, 1) for k in range(50)] * 2)
    assert [d.allowed for d in rates] == [True] * 50 + [False] * 50


def test_key_distribution_over_the_masters(cluster, h):
    """100,000 ids written by the library: each master holds a third of them, within 5%."""
    for m in cluster.masters():
        m.cli("FLUSHALL")   # earlier tests' keys would expire during the count
    before = {m.port: m.cli("DBSIZE") for m in cluster.masters()}
    n = 100_000
    for start in range(0, n, 5000):
        res = h.count_hits([(f"dist:{i}", 1, 1, 1) for i in range(start, start + 5000)])
        assert res == [1] * 5000
    after = {m.port: m.cli("DBSIZE") for m in cluster.masters()}
    per = [(after[p] - before[p]) / 2 for p in after]   # a bucket and an index per id
    assert sum(per) == n
    for x in per:
        assert abs(x - n / 3) <= 0.05 * n / 3, per
    # The same split from the slot rule alone (CRC16 of the tag; binascii's crc_hqx with 0 is XMODEM).
    ranges = cluster.slot_ranges()
    counts = {}
    for i in range(n):
        p = slot_owner(ranges, binascii.crc_hqx(f"dist:{i}".encode(), 0) % 16384)
        counts[p] = counts.get(p, 0) + 1
    assert sorted(counts.values()) == sorted(int(x) for x in per)
    for m in cluster.masters():
        m.cli("FLUSHALL")


# ---------------------------------------------------------------------------------------------------------------------
# Threads, processes, and the C programs
# ---------------------------------------------------------------------------------------------------------------------
def test_threads_count_every_hit(cluster, h):
    ids = [f"th:{i}" for i in range(30)]
    per_thread = 300
    errors = []

    def work(t):
        try:
            for k in range(per_thread):
                h.count_hit(ids[(t * 7 + k) % len(ids)], 1, 1, 1)
        except Exception as e:   # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert sum(h.get_bucket(i, 1).count for i in ids) == 8 * per_thread


def _proc_worker(url, n, queue):
    try:
        with hammer.Hammer(url) as hd:
            for k in range(n):
                hd.count_hit(f"pr:{k % 20}", 1, 1, 1)
            queue.put(n)
    except Exception as e:   # noqa: BLE001
        queue.put(repr(e))


def test_processes_count_every_hit(cluster, h):
    got = run_in_processes(_proc_worker, (cluster.url(), 400), 3)
    assert got == [400] * 3
    assert sum(h.get_bucket(f"pr:{k}", 1).count for k in range(20)) == 1200


C_ON_CLUSTER = ["test_threads", "test_procs", "test_batch", "test_limit_procs", "test_errors", "test_abi", "test_fork"]
# Checks of these programs that cannot hold on a cluster, each for a documented reason: the empty id (no hash tag),
# and test_limits' raw connection, which reads Redis TIME at the URL's address and speaks no cluster.
C_KNOWN = {"test_api": [r"hammer_\w+\(h, \"\"", r"count == 4", r"deleted == 1"],
           "test_limits": [r"Redis TIME", r"clock=redis"]}


@pytest.mark.parametrize("name", C_ON_CLUSTER + sorted(C_KNOWN))
def test_c_program_on_the_cluster(cluster, name):
    exe = os.path.join(ROOT, "build", "tests", name)
    if not os.access(exe, os.X_OK):
        pytest.fail(f"build/tests/{name} is missing: run `make c-tests` first")
    r = subprocess.run([exe, cluster.url()], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    fails = [line for line in out.splitlines() if line.startswith("FAIL ") and line != f"FAIL {name}"]
    unexplained = [f for f in fails if not any(re.search(p, f) for p in C_KNOWN.get(name, []))]
    assert not unexplained, "\n".join(unexplained)
    assert re.search(rf"^{name}: (\d+) checks", r.stdout, re.M), out[-2000:]
    if name not in C_KNOWN:
        assert r.returncode == 0, out[-3000:]


# ---------------------------------------------------------------------------------------------------------------------
# Resharding and failover under load
# ---------------------------------------------------------------------------------------------------------------------
class Storm:
    """Threads hitting ids with count_hit until stopped; counts OK returns per id and failures per id."""

    def __init__(self, hd, ids, threads=6):
        self.hd, self.ids = hd, ids
        self.ok = {i: 0 for i in ids}
        self.failed = {i: [] for i in ids}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,)) for t in range(threads)]

    def run(self, t):
        k = t
        while not self.stop.is_set():
            id_ = self.ids[k % len(self.ids)]
            k += 1
            try:
                self.hd.count_hit(id_, 1, 1, 1)
                with self.lock:
                    self.ok[id_] += 1
            except hammer.HammerError as e:
                with self.lock:
                    self.failed[id_].append((time.monotonic(), e))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def test_resharding_during_a_storm(cluster):
    """Slots of the ids being hit move from one master to another, keys a few at a time: the library sees ASK,
    TRYAGAIN and MOVED, and every OK hit is counted exactly once."""
    src, dst = cluster.masters()[0], cluster.masters()[1]
    ids = ids_on(cluster, src, 400, tag="rs")
    slots = sorted({key_slot(i.encode()) for i in ids})[:6]
    moving = [i for i in ids if key_slot(i.encode()) in slots]
    with hammer.Hammer(cluster.url(timeout_ms=5000)) as hd:
        for i in moving:
            hd.count_hit(i, 1, 1, 1)   # every id has keys on src before the move
        with Storm(hd, moving) as storm:
            time.sleep(0.2)
            for s in slots:
                cluster.begin_migration(s, src, dst)
                # One id's bucket first, alone: its index stays behind for a while, so its calls meet TRYAGAIN
                # (keys split between the nodes); ids whose keys all moved meet ASK.
                first = next(i for i in moving if key_slot(i.encode()) == s)
                src.cli("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", bucket_key(first, 1))
                time.sleep(0.1)
                while cluster.migrate_keys(s, src, dst, count=3):
                    time.sleep(0.02)
                cluster.end_migration(s, dst)
            time.sleep(0.3)
        st = hd.stats()
        assert not any(storm.failed.values()), {k: v for k, v in storm.failed.items() if v}
        for i in moving:
            assert dst.cli("HGET", bucket_key(i, 1), "count") == str(storm.ok[i] + 1).encode(), i
            assert str(src.cli("EXISTS", bucket_key(i, 1))).startswith("MOVED ")
        assert st.cluster_ask > 0 and st.cluster_tryagain > 0 and st.cluster_moved > 0, st
        # After the MOVEDs the map is patched: new calls go straight to dst.
        moved_before = hd.stats().cluster_moved
        for i in moving:
            hd.count_hit(i, 1, 1, 1)
        assert hd.stats().cluster_moved == moved_before


def script_calls(cluster):
    """EVALSHA and EVAL calls over the masters since their last CONFIG RESETSTAT."""
    total = 0
    for m in cluster.masters():
        for line in m.cli("INFO", "commandstats").decode().splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                total += int(line.split("calls=")[1].split(",")[0])
    return total


def redis_major(cluster):
    """The masters' Redis major version (script flags, and so one script per node, are 7.0's)."""
    info = cluster.masters()[0].cli("INFO", "server")
    info = info.decode() if isinstance(info, bytes) else str(info)
    return int(re.search(r"redis_version:(\d+)", info).group(1))


def test_a_batch_is_one_script_per_node(cluster, h):
    """Redis 7 runs one script over keys of several slots of a node (allow-cross-slot-keys): a batch of 64 ids in
    64 slots over 3 masters is 3 script calls, and each request still gets its own answer."""
    if redis_major(cluster) < 7:
        pytest.skip("script flags are Redis 7's: on 6.2 a batch is one script per slot")
    ids = [f"pn:{i}" for i in range(64)]
    assert len({key_slot(i.encode()) for i in ids}) == 64
    h.count_hits([(i, 1, 100) for i in ids])       # loads the scripts, reads each node's version
    h.hit_many([(i, hammer.Limit.gcra(10, 60000)) for i in ids])
    for m in cluster.masters():
        m.cli("CONFIG", "RESETSTAT")
    got = h.count_hits([(i, 1, 100, k + 1) for k, i in enumerate(ids)])
    assert got == [k + 2 for k in range(64)]
    assert script_calls(cluster) == 3
    ds = h.hit_many([(i, hammer.Limit.gcra(10, 60000), k % 3 + 1) for k, i in enumerate(ids)])
    assert [d.count for d in ds] == [1 + k % 3 + 1 for k in range(64)] and all(d.allowed for d in ds)
    assert script_calls(cluster) == 6
    for k, i in enumerate(ids):
        m = cluster.master_of_slot(key_slot(i.encode()))
        assert m.cli("HGET", bucket_key(i, 1), "count") == str(k + 2).encode()


def test_node_batches_decide_as_single_calls(h):
    """Every algorithm, in batches of ids over many slots of each master (node scripts), decides as the same
    requests sent one by one on other ids (per-slot single scripts), step by step."""
    limits = [hammer.Limit.fixed_window(3, 1000), hammer.Limit.sliding_window(3, 1000),
              hammer.Limit.token_bucket(3, 1000, burst=4), hammer.Limit.leaky_bucket(3, 1000),
              hammer.Limit.gcra(3, 1000, burst=2), hammer.Limit.sliding_counter(3, 1000)]
    t = 1_700_000_000_000
    for step in range(8):
        now = t + step * 150
        reqs = [(k, lim, 1 + (k + step) % 2, now) for lim in limits for k in range(12)]
        batch = h.hit_many([(f"nb:{k}:{lim.algorithm}", lim, cost, now) for k, lim, cost, now in reqs])
        single = [h.hit(f"ns:{k}:{lim.algorithm}", lim, cost, now) for k, lim, cost, now in reqs]
        assert batch == single, step
    assert any(not d.allowed for d in single) and any(d.allowed for d in single)


def test_without_info_batches_go_slot_by_slot(cluster):
    """A node whose version cannot be read (here INFO is refused by the ACL; Redis 6.2 takes the same path, having
    no script flags) gets one script call per slot, with the same answers."""
    for n in cluster.live_nodes():
        n.cli("ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info")
    try:
        url = cluster.url(timeout_ms=3000).replace("redis+cluster://", "redis+cluster://noinfo:pw@")
        with hammer.Hammer(url) as hd:
            ids = [f"ni:{i}" for i in range(40)]
            hd.count_hits([(i, 1, 100) for i in ids])
            for m in cluster.masters():
                m.cli("CONFIG", "RESETSTAT")
            assert hd.count_hits([(i, 1, 100) for i in ids]) == [2] * 40
            assert script_calls(cluster) == len({key_slot(i.encode()) for i in ids})
    finally:
        for n in cluster.live_nodes():
            n.cli("ACL", "DELUSER", "noinfo")


def test_batches_during_resharding_count_every_hit_once(cluster):
    """Batches of 64 ids (a few of them in slots being moved, keys a few at a time) from 4 threads: node chunks that
    meet a slot in migration run nothing and go again slot by slot, so every request that returned a count was
    applied once, and the counts each id's requests got are 1, 2, 3, ... with none missing or repeated."""
    src, dst = cluster.masters()[0], cluster.masters()[2]
    moving_ids = ids_on(cluster, src, 200, tag="bm")
    slots = sorted({key_slot(i.encode()) for i in moving_ids})[:4]
    moving = [i for i in moving_ids if key_slot(i.encode()) in slots][:8]
    others = [f"bo:{k}" for k in range(56)]
    ids = moving + others
    got = {i: [] for i in ids}
    failed = []
    lock = threading.Lock()
    stop = threading.Event()
    with hammer.Hammer(cluster.url(timeout_ms=5000)) as hd:
        hd.count_hits([(i, 1, 100) for i in ids])
        src.cli("CONFIG", "RESETSTAT")

        def worker():
            while not stop.is_set():
                res = hd.count_hits([(i, 1, 100) for i in ids])
                with lock:
                    for i, r in zip(ids, res):
                        if isinstance(r, hammer.HammerError):
                            failed.append((i, r))
                        else:
                            got[i].append(r)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.2)
            for s in slots:
                cluster.begin_migration(s, src, dst)
                time.sleep(0.05)
                while cluster.migrate_keys(s, src, dst, count=2):
                    time.sleep(0.02)
                cluster.end_migration(s, dst)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        st = hd.stats()
    assert not failed, failed[:5]
    for i in ids:
        assert sorted(got[i]) == list(range(2, len(got[i]) + 2)), i
        owner = cluster.master_of_slot(key_slot(i.encode()))
        assert owner.cli("HGET", bucket_key(i, 1), "count") == str(len(got[i]) + 1).encode(), i
    assert all(len(got[i]) > 5 for i in moving)
    assert st.cluster_ask + st.cluster_tryagain + st.cluster_moved > 0, st
    if redis_major(cluster) >= 7:   # before 7.0 every chunk is one slot's script: the redirections above
        refused = re.search(rb"errorstat_HAMMERSLOTS:count=(\d+)", src.cli("INFO", "errorstats"))
        assert refused and int(refused.group(1)) > 0, "node chunks met the migration and ran nothing"


def test_manual_failover_during_a_storm(cluster):
    """CLUSTER FAILOVER on a replica: calls on the other masters' slots never fail; calls on the target's slots may
    time out while its clients are paused for the switch (a timeout is not resent, and may have run); no
    acknowledged hit is lost (a manual failover waits for the replica to catch up)."""
    target = cluster.masters()[2]
    replica = cluster.replica_of(target)
    on_target = ids_on(cluster, target, 20, tag="fo")
    others = [i for m in cluster.masters() if m is not target for i in ids_on(cluster, m, 20, tag="fo")]
    with hammer.Hammer(cluster.url(timeout_ms=3000)) as hd:
        with Storm(hd, on_target + others) as storm:
            time.sleep(0.3)
            assert replica.cli("CLUSTER", "FAILOVER") == "OK"
            deadline = time.monotonic() + 10
            while replica.cli("ROLE")[0] != b"master" and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
        assert replica.cli("ROLE")[0] == b"master"
        assert not [e for i in others for e in storm.failed[i]]
        assert all(isinstance(e, hammer.HammerTimeout) or isinstance(e, hammer.ConnectError)
                   for i in on_target for _, e in storm.failed[i]), storm.failed
        assert sum(storm.ok.values()) > 0
        for i in others:
            assert hd.get_bucket(i, 1).count == storm.ok[i], i
        for i in on_target:
            assert storm.ok[i] <= hd.get_bucket(i, 1).count <= storm.ok[i] + len(storm.failed[i]), i
        assert hd.stats().cluster_moved > 0
    cluster.wait_ok()


def test_stopped_master_replaced_by_its_replica(cluster):
    """A master stopped (SIGSTOP): calls on other masters' slots never fail; calls on its slots fail until its
    replica is promoted (cluster-node-timeout 2000 ms + election), then succeed again on the new master."""
    victim = cluster.masters()[0]
    replica = cluster.replica_of(victim)
    on_victim = ids_on(cluster, victim, 10, tag="ss")
    others = [i for m in cluster.masters() if m is not victim for i in ids_on(cluster, m, 10, tag="ss")]
    with hammer.Hammer(cluster.url()) as hd:   # default timeouts: 2 s per call covers CLUSTERDOWN
        with Storm(hd, on_victim + others) as storm:
            time.sleep(0.3)
            victim.pause()
            victim.paused = True
            t0 = time.monotonic()
            try:
                deadline = t0 + 20
                while replica.cli("ROLE")[0] != b"master" and time.monotonic() < deadline:
                    time.sleep(0.05)
                promoted = time.monotonic()
                assert replica.cli("ROLE")[0] == b"master"
                # Calls on the victim's slots work again soon after the promotion.
                deadline = promoted + 5
                while time.monotonic() < deadline:
                    before = sum(storm.ok[i] for i in on_victim)
                    time.sleep(0.2)
                    if sum(storm.ok[i] for i in on_victim) > before + 5:
                        break
                recovered = time.monotonic()
                assert recovered < promoted + 5, "calls on the stopped master's slots did not recover"
            finally:
                victim.resume()
                victim.paused = False
        assert not [e for i in others for e in storm.failed[i]], [e for i in others for e in storm.failed[i]][:3]
        fails = [t for i in on_victim for t, _ in storm.failed[i]]
        assert fails and all(t0 <= t <= recovered for t in fails)
        print(f"stopped master: promoted after {promoted - t0:.2f} s, calls recovered after {recovered - t0:.2f} s")
    cluster.wait_ok()


# ---------------------------------------------------------------------------------------------------------------------
# TLS: rediss+cluster:// to a cluster whose nodes speak only TLS (tls-cluster, tls-replication)
# ---------------------------------------------------------------------------------------------------------------------
def test_tls_cluster(tls_certs):
    c = RedisCluster(tls=tls_certs)
    try:
        with hammer.Hammer(c.url()) as hd:
            ranges = c.slot_ranges()
            ids = [f"tls:{i}" for i in range(30)]
            assert len({slot_owner(ranges, key_slot(i.encode())) for i in ids}) == 3
            for i in ids:
                assert hd.count_hit(i, 1, 1, 2) == 2
                owner = c.node(slot_owner(ranges, key_slot(i.encode())))
                assert owner.cli("HGET", bucket_key(i, 1), "count") == b"2"
            assert hd.count_hits([(i, 1, 1, 1) for i in ids]) == [3] * 30
            assert all(d.allowed for d in hd.hit_many([(i, hammer.Limit.gcra(5, 1000)) for i in ids]))
            st = hd.stats()
            assert st.cluster_nodes == 3 and st.connections >= 3
        # The chain is verified on every node: a CA that signed nothing of ours is refused.
        with pytest.raises(hammer.ConnectError, match="certificate verify failed"):
            hammer.Hammer(c.url(ssl_ca_certs=tls_certs.other_ca))
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------------------------------
# Map reads within the call's deadline; pools only for the map's masters (issue 17)
# ---------------------------------------------------------------------------------------------------------------------
def test_map_reads_keep_the_calls_bound_and_pools_follow_the_map():
    """3 of 4 masters stopped: a call on the live master is not held by a map read (it took 1603 ms for a 1000 ms
    bound, then opened that master's breaker); calls on the stopped masters' slots, which read the map, end within
    their bound. Then, a master emptied by resharding: its pool, and its connections, go at the next map read."""
    c = RedisCluster(masters=4, replicas=0, extra=["cluster-node-timeout 60000"])   # no failover while stopped
    try:
        connect_ms, timeout_ms = 300, 300
        bound = (connect_ms + timeout_ms) / 1000
        seeds = {n.port for n in c.nodes[:2]}
        masters = c.masters()
        with hammer.Hammer(c.url(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms)) as hd:
            ids = {m.port: ids_on(c, m, 1, tag="mr")[0] for m in masters}
            for m in masters:
                assert hd.count_hit(ids[m.port], 1, 1) == 1   # a pool and a connection on each master
            live = masters[-1]
            stopped = [m for m in masters if m is not live]
            for m in stopped:
                m.pause()
                m.paused = True
            took = {}
            try:
                def timed(m, n):
                    t = time.monotonic()
                    try:
                        return hd.count_hit(ids[m.port], 1, 1)
                    except hammer.HammerError as e:
                        return e
                    finally:
                        took.setdefault(m.port, []).append(time.monotonic() - t)

                # A call on a stopped master times out and wants the map read again; then the live master's calls
                # go on at once, each on its own connection's time.
                assert isinstance(timed(stopped[0], 0), (hammer.HammerTimeout, hammer.ConnectError))
                reads = hd.stats().cluster_map_reads
                for n in range(5):
                    assert timed(live, n) == 2 + n
                assert hd.stats().cluster_map_reads == reads, "a call on a healthy master read the map"
                # Calls on the stopped masters' slots read the map (asking the other stopped nodes too) within
                # their own bound.
                for m in stopped * 2:
                    assert isinstance(timed(m, 0), (hammer.HammerTimeout, hammer.ConnectError))
                assert timed(live, 5) == 7, "the live master's breaker stayed closed"
            finally:
                for m in stopped:
                    m.resume()
                    m.paused = False
            slowest = max(max(v) for v in took.values())
            assert slowest <= bound + 0.15, f"calls took {took}, bound {bound}"
            c.wait_ok()

            # Empty a master that is not a seed into another master; the next call on one of its ids gets MOVED (or
            # reads the map first, its master having failed lately), and the emptied master's pool is dropped with
            # its connections.
            gone = next(m for m in masters if m.port not in seeds)
            to = next(m for m in masters if m is not gone)
            fresh = ids_on(c, gone, 2, tag="mr")[1]   # an id of its slots not used yet
            for _ in range(100):   # a connection to it again (its breaker may still be backing off)
                try:
                    hd.count_hit(ids[gone.port], 1, 1)
                    break
                except hammer.HammerError:
                    time.sleep(0.05)
            subprocess.run([shutil.which("redis-cli") or "redis-cli", "--cluster", "reshard", f"127.0.0.1:{to.port}",
                            "--cluster-from", c.node_id(gone), "--cluster-to", c.node_id(to),
                            "--cluster-slots", "16384", "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
            assert c.covered() == 16384 and gone.port not in c.slot_ranges()

            def ours(node):   # connections of this handle on `node`: every normal client but the one asking
                return len([ln for ln in node.cli("CLIENT", "LIST", "TYPE", "normal").splitlines() if ln]) - 1

            assert ours(gone) >= 1
            time.sleep(0.15)   # past the minimum interval between map reads (100 ms)
            assert hd.count_hit(fresh, 1, 1) == 1
            assert hd.stats().cluster_nodes == 3
            deadline = time.monotonic() + 5
            while ours(gone) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert ours(gone) == 0, "the emptied master's connections were closed"
    finally:
        c.close()
