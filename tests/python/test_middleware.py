"""The ASGI middleware under uvicorn and the WSGI middleware under waitress and gunicorn (sync and gthread workers,
--preload) (real servers from PyPI, in their own processes), driven over HTTP on loopback: per-address and per-key
limits, 429 with Retry-After, the RateLimit headers of the IETF draft on every limited response and their values per
algorithm, the counts they leave in Redis; with Redis stopped every request is answered (the URL's on_error policy,
else 503), also when the app starts while Redis is down; on a unix socket a limit per address refuses to run."""
import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import hammer
from redis_server import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDINGS = os.path.join(ROOT, "bindings", "python")
pytestmark = pytest.mark.usefixtures("whole_minute")   # the apps count in fixed windows of a minute on the real clock

# One app per server: /ip is limited per client address (3 per minute, fixed window), /user per X-User header (2 per
# minute, GCRA; no header: unlimited), /free is outside the limiter.
ASGI_APP = '''
import os, hammer, hammer.aio, hammer.asgi

async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})

h = hammer.aio.Hammer(os.environ["APP_URL"])
by_ip = hammer.asgi.RateLimitMiddleware(hello, h, hammer.Limit.fixed_window(3, 60_000), prefix=os.environ["APP_PREFIX"])
by_user = hammer.asgi.RateLimitMiddleware(hello, h, hammer.Limit.gcra(2, 60_000), prefix=os.environ["APP_PREFIX"] + "u:",
                                          key=lambda scope: dict(scope["headers"]).get(b"x-user"), policy="per-user")
bucket = hammer.asgi.RateLimitMiddleware(hello, h, hammer.Limit.token_bucket(10, 1000, burst=20),
                                         prefix=os.environ["APP_PREFIX"] + "tb:")

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route = {"/ip": by_ip, "/user": by_user, "/bucket": bucket}.get(scope["path"], hello)
    await route(scope, receive, send)
'''

WSGI_APP = '''
import os, hammer, hammer.wsgi

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]

h = hammer.Hammer(os.environ["APP_URL"])
by_ip = hammer.wsgi.RateLimitMiddleware(hello, h, hammer.Limit.fixed_window(3, 60_000), prefix=os.environ["APP_PREFIX"])
by_user = hammer.wsgi.RateLimitMiddleware(hello, h, hammer.Limit.gcra(2, 60_000), prefix=os.environ["APP_PREFIX"] + "u:",
                                          key=lambda environ: environ.get("HTTP_X_USER"), policy="per-user")
bucket = hammer.wsgi.RateLimitMiddleware(hello, h, "10/second", prefix=os.environ["APP_PREFIX"] + "fw:")

def app(environ, start_response):
    route = {"/ip": by_ip, "/user": by_user, "/bucket": bucket}.get(environ["PATH_INFO"], hello)
    return route(environ, start_response)
'''

SERVERS = {
    "uvicorn": (ASGI_APP, lambda port: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                                        "--log-level", "warning", "--lifespan", "on", "app:app"]),
    "waitress": (WSGI_APP, lambda port: [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}",
                                         "--threads", "4", "app:app"]),
}


def wait_listening(proc, log, name, connect):
    deadline = time.monotonic() + 30
    while True:
        try:
            connect().close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"{name} did not start: {log.read()}")
            time.sleep(0.05)


@contextlib.contextmanager
def running(command, source, tmp_path, name, connect, **env):
    """The server `command` running app.py (`source`) from tmp_path with `env`; yields its log file."""
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), BINDINGS]), **env)
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(command, cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, log, name, connect)
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def tcp(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=1)


@pytest.fixture(params=sorted(SERVERS))
def server(request, tmp_path, redis_server):
    module = pytest.importorskip(request.param)  # make deps installs uvicorn and waitress
    assert module
    source, command = SERVERS[request.param]
    port = free_port()
    prefix = f"mw:{request.param}:{time.monotonic_ns()}:"
    with running(command(port), source, tmp_path, request.param, tcp(port), APP_URL=redis_server.url(),
                 APP_PREFIX=prefix):
        yield port, prefix


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def ratelimit(headers):
    """(policy name, r, t) of the RateLimit header."""
    m = re.fullmatch(r'"([^"]+)";r=(\d+);t=(\d+)', headers["ratelimit"])
    assert m, headers["ratelimit"]
    return m.group(1), int(m.group(2)), int(m.group(3))


def test_limits_by_client_address(server, redis_server):
    port, prefix = server
    for i in range(3):
        status, headers, body = get(port, "/ip")
        assert (status, body) == (200, b"hello /ip")
        assert headers["ratelimit-policy"] == '"default";q=3;w=60'
        name, remaining, reset = ratelimit(headers)
        assert (name, remaining) == ("default", 2 - i) and 0 < reset <= 60
        assert "retry-after" not in headers
    status, headers, body = get(port, "/ip")
    assert status == 429 and body == b"Too Many Requests\n"
    assert headers["content-type"].startswith("text/plain")
    assert 1 <= int(headers["retry-after"]) <= 60, headers
    assert ratelimit(headers)[1] == 0 and headers["ratelimit-policy"] == '"default";q=3;w=60'
    # The count lives in Redis under the prefix and the client's address, where every other process sees it.
    with hammer.Hammer(redis_server.url()) as h:
        d = h.peek(prefix + "127.0.0.1", hammer.Limit.fixed_window(3, 60_000))
        assert not d.allowed and d.count == 3
        h.delete_buckets(prefix + "127.0.0.1")
    assert get(port, "/ip")[0] == 200, "a reset key passes again"
    # Outside the limiter: no headers, never limited.
    for _ in range(5):
        status, headers, _ = get(port, "/free")
        assert status == 200 and "ratelimit" not in headers


def test_limits_by_key_function(server):
    port, _ = server
    for _ in range(2):
        status, headers, _ = get(port, "/user", {"X-User": "ann"})
        assert status == 200 and ratelimit(headers)[0] == "per-user"
        assert headers["ratelimit-policy"] == '"per-user";q=2;w=60'
    status, headers, _ = get(port, "/user", {"X-User": "ann"})
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 30, "GCRA: one emission interval (30 s)"
    assert get(port, "/user", {"X-User": "bob"})[0] == 200, "each key has its own limiter"
    for _ in range(6):  # the key function answered None: not limited
        status, headers, _ = get(port, "/user")
        assert status == 200 and "ratelimit" not in headers


def test_bucket_headers_never_above_the_quota(server):
    """uvicorn: a token bucket of rate 10 per second and burst 20 shows q=20 over the 2 s it takes to refill, and r
    from 19 down (it showed q=10 and r=19). waitress: a limit string, "10/second", a fixed window of 10 per second."""
    port, _ = server
    status, headers, _ = get(port, "/bucket")
    assert status == 200
    policy = headers["ratelimit-policy"]
    q = int(re.search(r";q=(\d+);", policy).group(1))
    assert policy in ('"default";q=20;w=2', '"default";q=10;w=1'), policy
    assert ratelimit(headers)[1] == q - 1, "a fresh key, one hit taken"
    for _ in range(100):
        status, headers, _ = get(port, "/bucket")
        assert status in (200, 429) and ratelimit(headers)[1] <= q


@pytest.mark.parametrize("limit,q,w", [
    (hammer.Limit.fixed_window(5, 60_000), 5, 60),
    (hammer.Limit.sliding_window(5, 1_500), 5, 2),                 # whole seconds, rounded up
    (hammer.Limit.sliding_counter(4, 10_000), 4, 10),
    (hammer.Limit.token_bucket(10, 1000, burst=20), 20, 2),        # capacity 20, refilled at 10 per second
    (hammer.Limit.token_bucket(10, 1000), 10, 1),
    (hammer.Limit.leaky_bucket(2, 1000, burst=5), 5, 3),           # 5 drained at 2 per second: 2.5 s
    (hammer.Limit.gcra(10, 60_000, burst=3), 3, 18),               # 3 at 10 per minute: 18 s
    (hammer.Limit.gcra(1, 10), 1, 1),                              # at least a second
])
def test_headers_per_algorithm(limit, q, w, redis_server, uid):
    """RateLimit-Policy's q is what a client may take at once, and RateLimit's r (the Decision's remaining) is never
    above it: from q - 1 after the first hit down to 0 on the 429, on real decisions of each algorithm."""
    import hammer._http
    policy = hammer._http.Policy(limit, "p:", 1, "default")
    assert (policy.quota, policy.window_s) == (q, w) == hammer._http.quota(limit)
    t = 1_700_000_000_000
    with hammer.Hammer(redis_server.url()) as h:
        rs = []
        for _ in range(q + 1):
            d = h.hit(uid, limit, now_ms=t)
            headers = dict(policy.headers(d))
            assert headers["RateLimit-Policy"] == f'"default";q={q};w={w}'
            rs.append(ratelimit({"ratelimit": headers["RateLimit"]})[1])
            assert ("Retry-After" in headers) == (not d.allowed)
        h.delete_buckets(uid)
    assert rs == list(range(q - 1, -1, -1)) + [0], rs


def test_middleware_refuses_bad_arguments(redis_server):
    import hammer.asgi
    import hammer.wsgi

    def app(*a):
        return []

    with hammer.Hammer(redis_server.url()) as h:
        for mw in (hammer.asgi.RateLimitMiddleware, hammer.wsgi.RateLimitMiddleware):
            with pytest.raises(ValueError):
                mw(app, h, hammer.Limit.gcra(1, 1000), policy='bad"name')
            with pytest.raises(hammer.InvalidError):
                mw(app, 42, hammer.Limit.gcra(1, 1000))
            with pytest.raises(hammer.InvalidError):
                mw(app, h, (9,))
            with pytest.raises(hammer.InvalidError):
                mw(app, h, hammer.Limit.gcra(1, 1000), key="not callable")
            with pytest.raises(hammer.InvalidError):
                mw(app, redis_server.url() + "&no_such_option=1", hammer.Limit.gcra(1, 1000))   # at start-up
            with pytest.raises(ValueError, match="'ten/second'"):
                mw(app, h, "ten/second")
            with pytest.raises(ValueError, match="holds 2 limits"):
                mw(app, h, "10/second;100/minute")     # several limits per route: the framework integrations
            with pytest.raises(ValueError, match="limit must be from 1"):
                mw(app, h, "0/second")


# ---------------------------------------------------------------------------------------------------------------------
# Redis down: every request answered, under every server (gunicorn treats an OSError from the app, as ConnectError
# is, as a broken client socket and closes the connection without a reply)
# ---------------------------------------------------------------------------------------------------------------------
# /plain has no URL policy (503 when Redis fails), /allow and /deny the URL's on_error=allow|deny; each middleware is
# given its URL, so it opens its own handle (WSGI: at start-up, or at a request when Redis is down then; ASGI: at the
# first request).
FAIL_WSGI_APP = '''
import logging, os, hammer, hammer.wsgi
logging.basicConfig(level=logging.WARNING)

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]

url = os.environ["APP_URL"]
limit = hammer.Limit.token_bucket(1000, 1000)
routes = {path: hammer.wsgi.RateLimitMiddleware(hello, url + extra, limit, prefix=os.environ["APP_PREFIX"])
          for path, extra in [("/plain", ""), ("/allow", "&on_error=allow"), ("/deny", "&on_error=deny")]}

def app(environ, start_response):
    return routes[environ["PATH_INFO"]](environ, start_response)
'''

FAIL_ASGI_APP = '''
import logging, os, hammer, hammer.asgi
logging.basicConfig(level=logging.WARNING)

async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})

url = os.environ["APP_URL"]
limit = hammer.Limit.token_bucket(1000, 1000)
routes = {path: hammer.asgi.RateLimitMiddleware(hello, url + extra, limit, prefix=os.environ["APP_PREFIX"])
          for path, extra in [("/plain", ""), ("/allow", "&on_error=allow"), ("/deny", "&on_error=deny")]}

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await routes[scope["path"]](scope, receive, send)
'''


def gunicorn(worker):
    threads = ["--threads", "4"] if worker == "gthread" else []
    return lambda bind: [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-k", worker, *threads,
                         "--graceful-timeout", "2", "-b", bind, "app:app"]


FAIL_SERVERS = {
    "gunicorn-sync": ("gunicorn", FAIL_WSGI_APP, gunicorn("sync")),
    "gunicorn-gthread": ("gunicorn", FAIL_WSGI_APP, gunicorn("gthread")),
    "waitress": ("waitress", FAIL_WSGI_APP, lambda bind: [sys.executable, "-m", "waitress", "--listen", bind,
                                                          "--threads", "4", "app:app"]),
    "uvicorn": ("uvicorn", FAIL_ASGI_APP, lambda bind: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1",
                                                        "--port", bind.rpartition(":")[2], "--log-level", "warning",
                                                        "--lifespan", "on", "app:app"]),
}


@contextlib.contextmanager
def fail_server(name, tmp_path, url):
    module, source, command = FAIL_SERVERS[name]
    pytest.importorskip(module)   # deps/pip.txt
    port = free_port()
    with running(command(f"127.0.0.1:{port}"), source, tmp_path, name, tcp(port), APP_URL=url,
                 APP_PREFIX=f"mwfail:{name}:{time.monotonic_ns()}:") as log:
        yield port, log


import hammer._http  # noqa: E402

UNAVAILABLE = hammer._http.UNAVAILABLE_BODY


def assert_unavailable(port, path):
    status, headers, body = get(port, path)   # an empty reply would raise http.client.RemoteDisconnected
    assert (status, body) == (503, UNAVAILABLE), (status, body)
    assert headers["retry-after"] == "1" and headers["content-type"].startswith("text/plain")
    assert "ratelimit" not in headers


@pytest.mark.parametrize("name", sorted(FAIL_SERVERS))
def test_redis_stopped_every_request_answered(name, tmp_path, own_redis):
    redis = own_redis()
    with fail_server(name, tmp_path, redis.url()) as (port, log):
        for path in ("/plain", "/allow", "/deny"):   # up: the handles open; every route limited
            status, headers, _ = get(port, path)
            assert status == 200 and "ratelimit" in headers
        redis.stop()
        for _ in range(8):   # more requests than gunicorn's workers x threads: every worker meets the outage
            assert_unavailable(port, "/plain")
            status, headers, body = get(port, "/allow")   # on_error=allow: degraded, no RateLimit fields
            assert (status, body) == (200, b"hello") and "ratelimit" not in headers, (status, headers)
            status, headers, body = get(port, "/deny")    # on_error=deny: a 429 that says when to retry
            assert status == 429 and body == b"Too Many Requests\n" and int(headers["retry-after"]) >= 1
            assert "ratelimit" not in headers
        log.seek(0)
        text = log.read()
        assert "answering 503: ConnectError" in text, text   # logged on the "hammer" logger
        assert "Traceback" not in text, text                 # and nothing raised into the server
        redis.start()
        assert eventually_ok(port, "/plain"), "the handle reconnects once Redis is back"


def eventually_ok(port, path, seconds=15):
    """True once a request on `path` is answered 200 (the library reconnects with a backoff); every answer on the way
    must be a 503, never an empty reply."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _, body = get(port, path)
        if status == 200:
            return True
        assert (status, body) == (503, UNAVAILABLE), (status, body)
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("name", sorted(FAIL_SERVERS))
def test_app_starts_while_redis_is_down(name, tmp_path, own_redis):
    redis = own_redis()
    redis.stop()
    with fail_server(name, tmp_path, redis.url()) as (port, log):
        for _ in range(4):
            for path in ("/plain", "/allow", "/deny"):   # no handle could open: the URL policy has nothing to run on
                assert_unavailable(port, path)
        redis.start()
        for path in ("/plain", "/allow", "/deny"):
            assert eventually_ok(port, path)
        log.seek(0)
        assert "Traceback" not in log.read()


def library_has_lazy_connect(url):
    """Whether hammer_open takes lazy_connect=true (the server issue's option): refused as an unknown option before."""
    try:
        hammer.Hammer(url + "&lazy_connect=true&connect_timeout_ms=200").close()
    except hammer.InvalidError:
        return False
    except hammer.HammerError:
        return False   # it connected at open: the option is not there
    return True


@pytest.mark.parametrize("name", ["gunicorn-sync", "uvicorn"])
def test_lazy_connect_policy_applies_from_the_first_request(name, tmp_path, own_redis):
    redis = own_redis()
    redis.stop()
    if not library_has_lazy_connect(redis.url()):
        pytest.skip("the library has no lazy_connect URL option yet (the server issue's)")
    with fail_server(name, tmp_path, redis.url(lazy_connect="true")) as (port, _):
        assert_unavailable(port, "/plain")
        assert get(port, "/allow")[0] == 200
        assert get(port, "/deny")[0] == 429
        redis.start()
        assert eventually_ok(port, "/plain")


# ---------------------------------------------------------------------------------------------------------------------
# A unix-socket server gives no client address: a limit per address refuses (a clear error), a key function works
# ---------------------------------------------------------------------------------------------------------------------
UNIX_WSGI_APP = '''
import os, hammer, hammer.keys, hammer.wsgi

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]

h = hammer.Hammer(os.environ["APP_URL"])
limit = hammer.Limit.fixed_window(2, 60_000)
by_ip = hammer.wsgi.RateLimitMiddleware(hello, h, limit, prefix=os.environ["APP_PREFIX"])
by_fwd = hammer.wsgi.RateLimitMiddleware(hello, h, limit, prefix=os.environ["APP_PREFIX"],
                                         key=hammer.keys.forwarded_address(trusted_proxies=1))

def app(environ, start_response):
    return {"/ip": by_ip, "/fwd": by_fwd}[environ["PATH_INFO"]](environ, start_response)
'''

UNIX_ASGI_APP = '''
import os, hammer, hammer.keys, hammer.asgi

async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})

limit = hammer.Limit.fixed_window(2, 60_000)
by_ip = hammer.asgi.RateLimitMiddleware(hello, os.environ["APP_URL"], limit, prefix=os.environ["APP_PREFIX"])
by_fwd = hammer.asgi.RateLimitMiddleware(hello, os.environ["APP_URL"], limit, prefix=os.environ["APP_PREFIX"],
                                         key=hammer.keys.forwarded_address(trusted_proxies=1, header="Forwarded"))

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await {"/ip": by_ip, "/fwd": by_fwd}[scope["path"]](scope, receive, send)
'''

UNIX_SERVERS = {
    "gunicorn-sync": ("gunicorn", UNIX_WSGI_APP, "X-Forwarded-For", ("198.51.100.7, 203.0.113.9", "198.51.100.7"),
                      lambda path: gunicorn("sync")(f"unix:{path}")),
    "uvicorn": ("uvicorn", UNIX_ASGI_APP, "Forwarded", ('for=198.51.100.7, for="203.0.113.9:4711";proto=http',
                                                        "for=198.51.100.7"),
                lambda path: [sys.executable, "-m", "uvicorn", "--uds", path, "--log-level", "warning",
                              "--lifespan", "on", "app:app"]),
}


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def unix_get(path, url, headers=None):
    c = UnixHTTPConnection(path)
    try:
        c.request("GET", url, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def unix_connect(path):
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(path)
        except OSError:
            s.close()
            raise
        return s
    return connect


@pytest.mark.parametrize("name", sorted(UNIX_SERVERS))
def test_unix_socket_needs_a_key_function(name, tmp_path, redis_server):
    module, source, header, (value, other), command = UNIX_SERVERS[name]
    pytest.importorskip(module)
    sock = str(tmp_path / "app.sock")
    prefix = f"mwunix:{name}:{time.monotonic_ns()}:"
    with running(command(sock), source, tmp_path, name, unix_connect(sock), APP_URL=redis_server.url(),
                 APP_PREFIX=prefix) as log:
        status, _, _ = unix_get(sock, "/ip")
        assert status == 500, "no address: the app refuses to share one key between every client"
        log.seek(0)
        assert "NoClientAddress" in log.read()
        for i in range(2):   # the key of forwarded_address(1): the entry the proxy added, the rightmost
            status, headers, _ = unix_get(sock, "/fwd", {header: value})
            assert status == 200 and ratelimit(headers)[1] == 1 - i, (status, headers)
        assert unix_get(sock, "/fwd", {header: value})[0] == 429
        assert unix_get(sock, "/fwd", {header: other})[0] == 200, "another client, another key"
    with hammer.Hammer(redis_server.url()) as h:
        d = h.peek(prefix + "203.0.113.9", hammer.Limit.fixed_window(2, 60_000))
        assert d.count == 2 and not d.allowed
