"""Real redis-server processes on free loopback ports, for tests, the demo and benchmarks. Never a mock.

The server binary is $HAMMER_REDIS_SERVER when set (a redis-server or valkey-server of any supported version: `make
test-servers` runs the suites so against each one it has), else the redis-server on the PATH."""
import functools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

REDIS_SERVER = os.environ.get("HAMMER_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"


@functools.lru_cache(maxsize=None)
def server_version(path=REDIS_SERVER):
    """("Redis" or "Valkey", (major, minor, patch)) of a server binary, from its --version."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"^(\w+) server v=(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise RuntimeError(f"{path} --version: not a Redis server's answer: {out!r}")
    return m.group(1), (int(m.group(2)), int(m.group(3)), int(m.group(4)))


def server_name(path=REDIS_SERVER):
    """"Redis 7.0.15", "Valkey 9.1.2": what the tests run against."""
    name, v = server_version(path)
    return f"{name} {'.'.join(map(str, v))}"


@functools.lru_cache(maxsize=None)
def server_has_tls(path=REDIS_SERVER):
    """Whether the binary serves TLS: tried, by starting it on a TLS port with certificates made for the purpose
    (a build without TLS refuses the configuration and exits)."""
    from tls_certs import Certs
    d = tempfile.mkdtemp(prefix="hammer-tls-probe-")
    try:
        certs = Certs(os.path.join(d, "certs"))
        port = free_port()
        p = subprocess.Popen([path, "--port", "0", "--bind", "127.0.0.1", "--save", "", "--dir", d,
                              "--tls-port", str(port), "--tls-cert-file", certs.server,
                              "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and p.poll() is None:
                try:
                    ctx = ssl.create_default_context(cafile=certs.ca)
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                        with ctx.wrap_socket(raw, server_hostname="localhost"):
                            return True
                except (OSError, ssl.SSLError):
                    time.sleep(0.05)
            return False
        finally:
            if p.poll() is None:
                p.kill()
            p.wait(5)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def no_tls_reason(path=REDIS_SERVER):
    return f"{server_name(path)} ({path}) is built without TLS"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server bound to 127.0.0.1 (and optionally a unix socket), in its own temp dir.

    extra: further config lines, e.g. ["requirepass secret"]. The server keeps its port across restart().
    tls: a tls_certs.Certs: the server also listens for TLS on tls_port (client certificates optional), and
    tls_only=True closes the plaintext port (port is then the TLS one).
    """

    def __init__(self, extra=(), unix=False, port=None, tls=None, tls_only=False):
        self.dir = tempfile.mkdtemp(prefix="hammer-redis-")
        self.tls = tls
        self.tls_only = tls_only
        self.port = port or free_port()
        self.tls_port = (self.port if tls_only else free_port()) if tls else None
        self.unix_path = os.path.join(self.dir, "redis.sock") if unix else None
        self.extra = list(extra)
        self.proc = None
        self.start()

    def _conf(self):
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.dir}",
            'save ""',
            "appendonly no",
            "protected-mode yes",
            "loglevel warning",
            f"logfile {os.path.join(self.dir, 'redis.log')}",
        ]
        if server_version()[0] != "Redis" or server_version()[1] >= (7,):
            lines.append("enable-debug-command local")   # 7.0's (Valkey has it); 6.2 allows DEBUG anyway
        if self.unix_path:
            lines += [f"unixsocket {self.unix_path}", "unixsocketperm 700"]
        if self.tls:
            if self.tls_only:
                lines.append("port 0")
            lines += [f"tls-port {self.tls_port}", f"tls-cert-file {self.tls.server}",
                      f"tls-key-file {self.tls.server_key}", f"tls-ca-cert-file {self.tls.ca}",
                      "tls-auth-clients optional"]
        return "\n".join(lines + self.extra) + "\n"

    def connect(self, timeout=10):
        """A raw socket to the server: TLS (with the client certificate, verifying nothing: some tests serve bad
        certificates on purpose) when the server is TLS only."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if not self.tls_only:
            return s
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.tls.client, self.tls.client_key)
        return ctx.wrap_socket(s, server_hostname="localhost")

    def start(self):
        path = os.path.join(self.dir, "redis.conf")
        with open(path, "w") as f:
            f.write(self._conf())
        self.proc = subprocess.Popen([REDIS_SERVER, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with self.connect(timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):
                        return
            except (OSError, ssl.SSLError):
                time.sleep(0.02)
            if self.proc.poll() is not None:
                break
        log = os.path.join(self.dir, "redis.log")
        raise RuntimeError("redis-server did not start: " + (open(log).read() if os.path.exists(log) else "no log"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        try:
            if self.proc and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGCONT)
        except OSError:
            pass
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, **opts):
        opts.setdefault("expiry_ms", 60000)
        q = "&".join(f"{k}={v}" for k, v in opts.items())
        scheme = "rediss" if self.tls_only else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/?{q}" if q else f"{scheme}://127.0.0.1:{self.port}"

    def tls_url(self, host="127.0.0.1", **opts):
        """The URL of the TLS port, trusting the test CA. A test asking for it skips when the server has no TLS."""
        if not self.tls and not server_has_tls():
            import pytest
            pytest.skip(no_tls_reason())
        opts.setdefault("expiry_ms", 60000)
        opts.setdefault("ssl_ca_certs", self.tls.ca)
        return f"rediss://{host}:{self.tls_port}/?" + "&".join(f"{k}={v}" for k, v in opts.items())

    def cli(self, *args, password=None, user=None):
        """Runs one command through a raw RESP connection; returns the decoded reply."""
        with self.connect() as s:
            f = s.makefile("rb")
            if password is not None:
                auth = ["AUTH", user, password] if user else ["AUTH", password]
                s.sendall(encode(auth))
                read_reply(f)
            s.sendall(encode(args))
            return read_reply(f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, int):
            a = str(a)
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class ReplyError(Exception):
    pass


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        return ReplyError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [read_reply(f) for _ in range(n)]
    raise ValueError("bad reply %r" % line)
