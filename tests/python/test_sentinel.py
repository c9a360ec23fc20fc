"""Redis Sentinel (redis+sentinel://, issue 11): 1 master, 1 replica and 3 sentinels on loopback (down-after 1 s,
failover-timeout 3 s), started by the test. A forced failover during a storm of calls, a bad service name, all
sentinels down, and sentinels with passwords."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

import hammer
from redis_server import REDIS_SERVER, RedisServer, encode, free_port, read_reply

NOW = 1_700_000_000_000
SERVICE = "rl"


def ask(port, *args, password=None, tls=None):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        s = raw
        if tls:
            ctx = ssl.create_default_context(cafile=tls.ca)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        f = s.makefile("rb")
        if password:
            s.sendall(encode(["AUTH", password]))
            read_reply(f)
        s.sendall(encode(list(args)))
        return read_reply(f)


class SentinelSet:
    """A master, a replica and three sentinels watching them as SERVICE."""

    def __init__(self, password=None, sentinel_password=None, tls=None):
        """tls: a tls_certs.Certs: every node and sentinel speaks TLS only (replication too)."""
        auth = [f"requirepass {password}", f"masterauth {password}"] if password else []
        # Redis 7 waits 5 s before a diskless full sync by default: none here.
        auth += ["repl-diskless-sync-delay 0"] + (["tls-replication yes"] if tls else [])
        self.tls = tls
        self.master = RedisServer(extra=auth, tls=tls, tls_only=bool(tls))
        self.replica = RedisServer(extra=auth + [f"replicaof 127.0.0.1 {self.master.port}"], tls=tls,
                                   tls_only=bool(tls))
        deadline = time.monotonic() + 20
        while b"master_link_status:up" not in self.replica.cli("INFO", "replication", password=password):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync")
            time.sleep(0.05)
        # Redis 7 streams the writes to a replica that took a diskless full sync only from its first REPLCONF ACK,
        # up to a second after the link is up: a failover before that would promote a replica without the hits
        # made since (seen: a storm's hits all lost). A write seen on the replica shows it streams.
        self.master.cli("SET", "hammer:probe", "1", password=password)
        while self.replica.cli("GET", "hammer:probe", password=password) != b"1":
            if time.monotonic() > deadline:
                raise RuntimeError("the replica does not replicate")
            time.sleep(0.01)
        self.sentinel_password = sentinel_password
        self.dir = tempfile.mkdtemp(prefix="hammer-sentinel-")
        self.ports, self.procs = [], []
        for i in range(3):
            port = free_port()
            conf = os.path.join(self.dir, f"sentinel-{port}.conf")
            lines = [f"port {port}", "bind 127.0.0.1", f"dir {self.dir}", "loglevel warning",
                     f"logfile {os.path.join(self.dir, f'sentinel-{port}.log')}",
                     f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2",
                     f"sentinel down-after-milliseconds {SERVICE} 1000",
                     f"sentinel failover-timeout {SERVICE} 3000",
                     f"sentinel parallel-syncs {SERVICE} 1"]
            if password:
                lines.append(f"sentinel auth-pass {SERVICE} {password}")
            if sentinel_password:
                lines += [f"requirepass {sentinel_password}", f"sentinel sentinel-pass {sentinel_password}"]
            if tls:
                lines = [line for line in lines if not line.startswith("port ")]
                lines += ["port 0", f"tls-port {port}", f"tls-cert-file {tls.server}",
                          f"tls-key-file {tls.server_key}", f"tls-ca-cert-file {tls.ca}", "tls-replication yes",
                          "tls-auth-clients optional"]
            with open(conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            self.ports.append(port)
            self.procs.append(subprocess.Popen([REDIS_SERVER, conf, "--sentinel"], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if all(len(ask(p, "SENTINEL", "REPLICAS", SERVICE, password=sentinel_password, tls=tls)) >= 1
                       for p in self.ports):
                    break
            except (OSError, ConnectionError, TypeError, ssl.SSLError):
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the sentinels did not see the replica")

    def url(self, password=None, **opts):
        opts.setdefault("expiry_ms", 60000)
        if self.tls:
            opts.setdefault("ssl_ca_certs", self.tls.ca)
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        auth = f":{password}@" if password else ""
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{SERVICE}?" + "&".join(f"{k}={v}" for k, v in opts.items())

    def master_port(self):
        host, port = ask(self.ports[0], "SENTINEL", "get-master-addr-by-name", SERVICE,
                         password=self.sentinel_password, tls=self.tls)
        return int(port)

    def close(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.replica.close()
        self.master.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def evalsha_calls(server, password=None):
    """EVALSHA + EVAL commands the server ran for clients (Redis 7 replicates a script's effects, not the call)."""
    info = server.cli("INFO", "commandstats", password=password)
    info = info.decode() if isinstance(info, bytes) else info
    return sum(int(n) for n in re.findall(r"cmdstat_eval(?:sha)?:calls=(\d+)", info))


def test_a_failover_during_a_storm_is_followed_and_the_old_master_gets_no_write_once_replaced(uid):
    with SentinelSet() as ss:
        assert ss.master_port() == ss.master.port
        ok, failed, failed_at = [], {}, []
        lock = threading.Lock()
        stop = [False]
        with hammer.Hammer(ss.url(connect_timeout_ms=300, timeout_ms=300, pool_size=4)) as h:
            assert h.count_hit(uid, 1, NOW) == 1
            ok.append(1)

            def work():
                while not stop[0]:
                    try:
                        c = h.count_hit(uid, 1, NOW)
                    except hammer.HammerError as e:
                        with lock:
                            failed[type(e).__name__] = failed.get(type(e).__name__, 0) + 1
                            failed_at.append(time.monotonic())
                        time.sleep(0.01)
                        continue
                    with lock:
                        ok.append(c)
                    time.sleep(0.001)

            threads = [threading.Thread(target=work) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(1)
            asked = time.monotonic()
            assert ask(ss.ports[0], "SENTINEL", "FAILOVER", SERVICE) == "OK"
            deadline = time.monotonic() + 10
            while ss.master_port() != ss.replica.port:
                assert time.monotonic() < deadline, "Sentinel did not switch"
                time.sleep(0.02)
            switched = time.monotonic()
            grace = 0.5   # the handle asks a sentinel every 0.1 s while calls are made
            time.sleep(grace)
            old_before = evalsha_calls(ss.master)
            new_before = evalsha_calls(ss.replica)
            with lock:
                ok_at_grace = len(ok)
            time.sleep(2)
            stop[0] = True
            for t in threads:
                t.join()
            old_after = evalsha_calls(ss.master)
            new_after = evalsha_calls(ss.replica)
            assert time.monotonic() - switched < 8, "the old master may have been demoted meanwhile"
            assert old_after == old_before, f"the old master ran {old_after - old_before} scripts {grace} s after the switch"
            assert new_after > new_before and len(ok) > ok_at_grace + 20, (new_before, new_after, len(ok))
            # After the grace every count comes from the new master: distinct, all in its final count. Hits the old
            # master acknowledged after the replica stopped copying it are lost (replication is asynchronous), and
            # the new master counts those numbers again.
            after = ok[ok_at_grace:]
            assert len(after) == len(set(after)), "a count was returned twice after the switch"
            total = int(ss.replica.cli("HGET", f"Hammer:Redis:{uid}:1", "count"))
            assert total >= max(after) and h.count_hit(uid, 1, NOW) == total + 1
            # The handle stops writing when the sentinel reports the failover in progress (before the replica is
            # promoted), so what the old master acknowledged had time to reach the replica.
            assert len(ok) - total <= len(ok) // 100, "acknowledged hits lost"
            span = f"{min(failed_at) - asked:.2f} s to {max(failed_at) - asked:.2f} s" if failed_at else "none"
            print(f"failover: calls failed from {span} after SENTINEL FAILOVER (named at {switched - asked:.2f} s); "
                  f"{len(ok)} OK calls, failures {failed}, count on the new master {total} (old master: "
                  f"{ss.master.cli('HGET', f'Hammer:Redis:{uid}:1', 'count')}), "
                  f"acknowledged hits lost: {len(ok) - total}")


def test_a_bad_service_name_and_unreachable_sentinels_fail_clearly_within_the_bound():
    with SentinelSet() as ss:
        url = ss.url().replace(f"/{SERVICE}?", "/nosuch?")
        with pytest.raises(hammer.InvalidError) as e:
            hammer.Hammer(url)
        assert "nosuch" in str(e.value)
    ports = [free_port() for _ in range(3)]   # nothing listens there
    t = time.monotonic()
    with pytest.raises(hammer.ConnectError) as e:
        hammer.Hammer(f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in ports)}/{SERVICE}"
                      "?expiry_ms=1000&connect_timeout_ms=200&timeout_ms=200")
    assert time.monotonic() - t < 0.4 + 0.3
    assert "sentinel" in str(e.value) and str(ports[0]) in str(e.value), str(e.value)


def test_sentinels_and_data_nodes_with_passwords(uid):
    with SentinelSet(password="data-pw", sentinel_password="sent-pw") as ss:
        with hammer.Hammer(ss.url(password="data-pw", sentinel_password="sent-pw")) as h:
            assert h.count_hit(uid, 1, NOW) == 1
        assert ss.master.cli("HGET", f"Hammer:Redis:{uid}:1", "count", password="data-pw") == b"1"
        with pytest.raises(hammer.HammerError) as e:
            hammer.Hammer(ss.url(password="data-pw", sentinel_password="wrong-pw"))
        assert "wrong-pw" not in str(e.value) and "data-pw" not in str(e.value), str(e.value)
        with pytest.raises(hammer.HammerError) as e:
            hammer.Hammer(ss.url(password="wrong-pw", sentinel_password="sent-pw"))
        assert "wrong-pw" not in str(e.value) and "sent-pw" not in str(e.value), str(e.value)


def test_a_frozen_master_replaced_by_sentinel_is_never_used_again_after_it_comes_back(uid):
    with SentinelSet() as ss:
        with hammer.Hammer(ss.url(connect_timeout_ms=200, timeout_ms=200, pool_size=2)) as h:
            assert h.count_hit(uid, 1, NOW) == 1
            ss.master.pause()
            try:
                # Sentinel needs down-after (1 s) and an election to promote the replica: calls fail meanwhile, each
                # within its bound, then go to the new master.
                deadline = time.monotonic() + 15
                recovered = None
                while time.monotonic() < deadline:
                    t = time.monotonic()
                    try:
                        recovered = h.count_hit(uid, 1, NOW)
                    except hammer.HammerError:
                        assert time.monotonic() - t < 0.4 + 0.3
                        time.sleep(0.05)
                        continue
                    break
                assert recovered is not None, "the handle never reached the new master"
                assert ss.master_port() == ss.replica.port
            finally:
                ss.master.resume()
            time.sleep(0.5)   # the frozen master runs what was queued on its sockets before the freeze
            before = evalsha_calls(ss.master)
            for _ in range(200):
                h.count_hit(uid, 1, NOW)
            time.sleep(0.5)
            assert evalsha_calls(ss.master) == before, "the old master ran calls after it came back"
            assert int(ss.replica.cli("HGET", f"Hammer:Redis:{uid}:1", "count")) >= 201


def test_rediss_sentinel_reaches_the_master_over_tls_and_follows_a_failover(tls_certs, uid):
    with SentinelSet(tls=tls_certs) as ss:
        with hammer.Hammer(ss.url(connect_timeout_ms=500, timeout_ms=500)) as h:
            assert [h.count_hit(uid, 1, NOW) for _ in range(3)] == [1, 2, 3]
            assert ss.master.cli("HGET", f"Hammer:Redis:{uid}:1", "count") == b"3"
            assert ask(ss.ports[0], "SENTINEL", "FAILOVER", SERVICE, tls=tls_certs) == "OK"
            deadline = time.monotonic() + 10
            while ss.master_port() != ss.replica.port:
                assert time.monotonic() < deadline, "Sentinel did not switch"
                time.sleep(0.05)
            time.sleep(0.3)
            counts = []
            for _ in range(20):
                try:
                    counts.append(h.count_hit(uid, 1, NOW))
                except hammer.ConnectError:
                    time.sleep(0.05)
            assert counts and counts[-1] == int(ss.replica.cli("HGET", f"Hammer:Redis:{uid}:1", "count"))


def test_frozen_sentinels_hold_no_call_past_its_bound_and_a_lazy_handle_follows_them_once_back(uid):
    """Every sentinel frozen (SIGSTOP) and no master known yet (lazy_connect): one thread asks them while the others
    wait for its answer without a lock held across that I/O, each ending within its own bound, answered by
    on_error; once the sentinels are back, the same handle finds the master."""
    connect_ms, timeout_ms = 200, 200
    bound = (connect_ms + timeout_ms) / 1000
    lim = hammer.Limit.fixed_window(100, 60000)
    with SentinelSet() as ss:
        for p in ss.procs:
            os.kill(p.pid, signal.SIGSTOP)
        try:
            with hammer.Hammer(ss.url(connect_timeout_ms=connect_ms, timeout_ms=timeout_ms, lazy_connect="true",
                                      on_error="allow", pool_size=8)) as h:
                took, got = [], []
                lock = threading.Lock()

                def one(delay):
                    time.sleep(delay)
                    t = time.monotonic()
                    d = h.hit(uid, lim)
                    with lock:
                        took.append(time.monotonic() - t)
                        got.append(d)

                threads = [threading.Thread(target=one, args=(i * 0.03,)) for i in range(6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert all(d.allowed and d.degraded for d in got), got
                assert max(took) <= bound + 0.15, f"calls took {sorted(took)}, bound {bound}"
                for p in ss.procs:
                    os.kill(p.pid, signal.SIGCONT)
                for _ in range(100):
                    d = h.hit(uid, lim)
                    if not d.degraded:
                        break
                    time.sleep(0.05)
                assert not d.degraded and d.count == 1
        finally:
            for p in ss.procs:
                os.kill(p.pid, signal.SIGCONT)


def test_forked_children_and_a_storm_of_forks_through_sentinel():
    """tests/c/test_fork through Sentinel: children that go on with the parent's handle count on their own
    connections, and a child forked while the parent's threads are inside calls (the sentinel's look-up included)
    never waits for a lock one of them held."""
    exe = os.path.join(os.path.dirname(__file__), "..", "..", "build", "tests", "test_fork")
    if not os.access(exe, os.X_OK):
        pytest.fail("build/tests/test_fork is missing: run `make c-tests` first")
    with SentinelSet() as ss:
        r = subprocess.run([exe, ss.url()], capture_output=True, text=True, timeout=300)
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert r.returncode == 0 and not fails, r.stdout[-3000:] + r.stderr[-2000:]
    assert "children forked amid" in r.stdout, r.stdout[-3000:]   # the storm ran
