"""A real Redis Cluster on loopback for tests: 3 masters + 3 replicas (redis-cli --cluster create), node timeout
2000 ms. Never a mock. Helpers move a slot by hand (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE) and find
which master serves a key."""
import os
import shutil
import socket
import subprocess
import time

from redis_server import RedisServer, ReplyError

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _port_with_bus():
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p + 10000 > 65535:
                continue
            try:
                with socket.socket() as b:
                    b.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        return p
    raise RuntimeError("no free port pair for a cluster node")


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    return crc16(key) % 16384


def ids_on(cluster, master, n, tag="x"):
    """n ids whose slot `master` serves (by the cluster's map)."""
    out, i = [], 0
    while len(out) < n:
        id_ = f"{tag}{i}"
        if cluster.master_of_slot(key_slot(id_.encode())) is master:
            out.append(id_)
        i += 1
    return out


class RedisCluster:
    def __init__(self, masters=3, replicas=1, extra=(), tls=None):
        """tls: a tls_certs.Certs: every node listens for TLS only, and the bus and replication use TLS too; the
        bus always verifies the connecting node's certificate, so the nodes connect with the client certificate
        (the server's is for serverAuth only)."""
        self.tls = tls
        self.nodes = []
        tls_lines = ["tls-cluster yes", "tls-replication yes", "tls-auth-clients no",
                     f"tls-client-cert-file {tls.client}", f"tls-client-key-file {tls.client_key}"] if tls else []
        for _ in range(masters * (1 + replicas)):
            self.nodes.append(RedisServer(port=_port_with_bus(), tls=tls, tls_only=bool(tls), extra=[
                "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000",
                "cluster-require-full-coverage yes"] + tls_lines + list(extra)))
        try:
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            tls_args = ["--tls", "--cacert", tls.ca] if tls else []
            subprocess.run([REDIS_CLI, *tls_args, "--cluster", "create", *addrs, "--cluster-replicas",
                            str(replicas), "--cluster-yes"], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=60)
            self.wait_ok()
        except BaseException:
            self.close()
            raise

    def wait_ok(self, timeout=30):
        """Until every node says cluster_state:ok and agrees on 3 masters covering all slots."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(b"cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.live_nodes()):
                    if sum(len(r) for r in self.slot_ranges().values()) and self.covered() == 16384:
                        return
            except (OSError, ConnectionError):
                pass
            time.sleep(0.1)
        raise RuntimeError("cluster did not reach cluster_state:ok")

    def live_nodes(self):
        return [n for n in self.nodes if n.proc is not None and not getattr(n, "paused", False)]

    def slot_ranges(self, via=None):
        """{port of master: [(lo, hi), ...]} as `via` (default: the first live node) sees it."""
        via = via or self.live_nodes()[0]
        out = {}
        for e in via.cli("CLUSTER", "SLOTS"):
            out.setdefault(e[2][1], []).append((e[0], e[1]))
        return out

    def covered(self):
        return sum(hi - lo + 1 for r in self.slot_ranges().values() for lo, hi in r)

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def masters(self):
        return [self.node(p) for p in sorted(self.slot_ranges())]

    def master_of_slot(self, slot, via=None):
        for port, ranges in self.slot_ranges(via).items():
            if any(lo <= slot <= hi for lo, hi in ranges):
                return self.node(port)
        return None

    def node_id(self, n):
        return n.cli("CLUSTER", "MYID").decode()

    def replica_of(self, master):
        mid = self.node_id(master)
        for n in self.live_nodes():
            if n is master:
                continue
            role = n.cli("ROLE")
            if role[0] == b"slave" and role[2] == master.port:
                return n
        raise RuntimeError("no replica of %d (%s)" % (master.port, mid))

    def url(self, **opts):
        opts.setdefault("expiry_ms", 60000)
        if self.tls:
            opts.setdefault("ssl_ca_certs", self.tls.ca)
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        return f"{scheme}://{seeds}/?" + "&".join(f"{k}={v}" for k, v in opts.items())

    def keys_total(self, pattern="*"):
        """Keys matching `pattern` over every master."""
        total = 0
        for m in self.masters():
            cursor = b"0"
            while True:
                cursor, keys = m.cli("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                total += len(keys)
                if cursor == b"0":
                    break
        return total

    # Slot migration by hand, as redis-cli --cluster reshard does it.
    def begin_migration(self, slot, src, dst):
        check(dst.cli("CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(src)))
        check(src.cli("CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(dst)))

    def migrate_keys(self, slot, src, dst, count=10):
        keys = src.cli("CLUSTER", "GETKEYSINSLOT", slot, count)
        if keys:
            check(src.cli("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "REPLACE", "KEYS", *keys))
        return len(keys)

    def end_migration(self, slot, dst):
        did = self.node_id(dst)
        for m in [dst] + [n for n in self.masters() if n is not dst]:
            check(m.cli("CLUSTER", "SETSLOT", slot, "NODE", did))

    def close(self):
        for n in self.nodes:
            n.close()


def check(reply):
    if isinstance(reply, ReplyError):
        raise reply
    return reply
