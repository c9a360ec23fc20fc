"""The ASGI middleware under uvicorn and the WSGI middleware under waitress (real servers from PyPI, in their own
processes), driven over HTTP on loopback: per-address and per-key limits, 429 with Retry-After, the RateLimit headers
of the IETF draft on every limited response, and the counts they leave in Redis."""
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

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    route = {"/ip": by_ip, "/user": by_user}.get(scope["path"], hello)
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

def app(environ, start_response):
    route = {"/ip": by_ip, "/user": by_user}.get(environ["PATH_INFO"], hello)
    return route(environ, start_response)
'''

SERVERS = {
    "uvicorn": (ASGI_APP, lambda port: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
                                        "--log-level", "warning", "--lifespan", "on", "app:app"]),
    "waitress": (WSGI_APP, lambda port: [sys.executable, "-m", "waitress", "--listen", f"127.0.0.1:{port}",
                                         "--threads", "4", "app:app"]),
}


@pytest.fixture(params=sorted(SERVERS))
def server(request, tmp_path, redis_server):
    module = pytest.importorskip(request.param)  # make deps installs uvicorn and waitress
    assert module
    source, command = SERVERS[request.param]
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    port = free_port()
    prefix = f"mw:{request.param}:{time.monotonic_ns()}:"
    env = dict(os.environ, APP_URL=redis_server.url(), APP_PREFIX=prefix,
               PYTHONPATH=os.pathsep.join([str(tmp_path), BINDINGS]))
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(command(port), cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"{request.param} did not start: {log.read()}")
                time.sleep(0.05)
        yield port, prefix
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


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
