"""hammer.integrations under real servers, over HTTP on loopback: FastAPI under uvicorn, Flask under gunicorn with sync
and with gthread workers (--preload: the handle is opened before the fork, and each worker must still count right).

One app per framework declares the same routes. Each test uses its own client name (the X-Client header is the key),
so the tests share a server and still count from zero. Checked: exact counts (also under concurrent requests from many
connections), the RateLimit / RateLimit-Policy and X-RateLimit-* headers, defaults and override, exempt, limits shared
by a group of routes, application-wide limits, several limits per route decided at once, the 429 shaped by an
exception handler or an on_breach callback (JSON) or left as text, the Redis layout of the keys, and a 503 answer (not
a dropped connection) when Redis is down.
"""
import concurrent.futures
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import hammer
from hammer.integrations._core import FAILURE_BODY
from redis_server import RedisServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINDINGS = os.path.join(ROOT, "bindings", "python")
MULTI = "decided_by" in hammer.Decision._fields   # the several-limit hit (issue 19) is in the library
# The apps count in fixed windows of a minute on the real clock (seen once under load: the 61st request in a fresh
# window).
pytestmark = pytest.mark.usefixtures("whole_minute")

# Both apps: key = X-Client header (else the client address); defaults 2/minute; application-wide 60/minute.
FASTAPI_APP = '''
import os
import hammer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from hammer.integrations.starlette import Limiter, RateLimitExceeded, breach_response, get_remote_address

def key(request):
    return request.headers.get("x-client") or get_remote_address(request)

limiter = Limiter(os.environ["APP_URL"], key_func=key, default_limits=["2/minute"], application_limits=["60/minute"],
                  headers="both", key_prefix=os.environ["APP_PREFIX"])
app = FastAPI()
limiter.init_app(app)

@app.exception_handler(RateLimitExceeded)
async def shape(request: Request, exc: RateLimitExceeded):
    if request.url.path == "/json":
        return JSONResponse({"error": "rate limited", "retry_after": exc.retry_after}, status_code=429,
                            headers=exc.headers)
    if request.url.path == "/handler":
        return PlainTextResponse("custom 429", status_code=429)
    return breach_response(exc)

@app.get("/limited")
@limiter.limit("3/minute")
async def limited():
    return {"route": "limited"}

@app.get("/burst")
@limiter.limit("10/minute")
def burst():                                    # a sync endpoint: FastAPI runs it in its thread pool
    return {"route": "burst"}

if "decided_by" in hammer.Decision._fields:     # the several-limit hit is in the library
    @app.get("/multi")
    @limiter.limit("3/minute;5/hour")
    async def multi():
        return {"route": "multi"}

@app.get("/shared1")
@limiter.shared_limit("4/minute", scope="group")
async def shared1():
    return {"route": "shared1"}

@app.get("/shared2")
@limiter.shared_limit("4/minute", scope="group")
async def shared2():
    return {"route": "shared2"}

@app.get("/default")
async def default():
    return {"route": "default"}

@app.get("/exempt")
@limiter.exempt
async def exempt():
    return {"route": "exempt"}

@app.get("/cheap")
@limiter.limit("1000/minute")
async def cheap():
    return {"route": "cheap"}

@app.get("/json")
@limiter.limit("1/minute")
async def json_route():
    return {"route": "json"}

@app.get("/handler")
@limiter.limit("1/minute")
async def handler():
    return {"route": "handler"}

@app.get("/text")
@limiter.limit("1/minute")
async def text():
    return {"route": "text"}
'''

FLASK_APP = '''
import os
import hammer
import flask
from hammer.integrations.flask import Limiter, RateLimitExceeded, get_remote_address

def key():
    return flask.request.headers.get("X-Client") or get_remote_address()

def on_breach(exc):
    if flask.request.path == "/json":
        return flask.make_response(flask.jsonify(error="rate limited", retry_after=exc.retry_after), 429)
    return None                                  # the rest: raise RateLimitExceeded

app = flask.Flask(__name__)
limiter = Limiter(os.environ["APP_URL"], app=app, key_func=key, default_limits=["2/minute"],
                  application_limits=["60/minute"], headers="both", key_prefix=os.environ["APP_PREFIX"],
                  on_breach=on_breach)

@app.errorhandler(RateLimitExceeded)
def shape(exc):
    if flask.request.path == "/handler":
        return "custom 429", 429
    return exc                                    # werkzeug renders it: the default text

@app.route("/limited")
@limiter.limit("3/minute")
def limited():
    return {"route": "limited"}

@app.route("/burst")
@limiter.limit("10/minute")
def burst():
    return {"route": "burst"}

if "decided_by" in hammer.Decision._fields:     # the several-limit hit is in the library
    @app.route("/multi")
    @limiter.limit("3/minute;5/hour")
    def multi():
        return {"route": "multi"}

@app.route("/shared1")
@limiter.shared_limit("4/minute", scope="group")
def shared1():
    return {"route": "shared1"}

@app.route("/shared2")
@limiter.shared_limit("4/minute", scope="group")
def shared2():
    return {"route": "shared2"}

@app.route("/default")
def default():
    return {"route": "default"}

@app.route("/exempt")
@limiter.exempt
def exempt():
    return {"route": "exempt"}

@app.route("/cheap")
@limiter.limit("1000/minute")
def cheap():
    return {"route": "cheap"}

@app.route("/json")
@limiter.limit("1/minute")
def json_route():
    return {"route": "json"}

@app.route("/handler")
@limiter.limit("1/minute")
def handler():
    return {"route": "handler"}

@app.route("/text")
@limiter.limit("1/minute")
def text():
    return {"route": "text"}
'''

GUNICORN = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "--graceful-timeout", "2", "--log-level",
            "warning"]
SERVERS = {
    "uvicorn": ("fastapi", FASTAPI_APP, lambda port: [
        sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "app:app"]),
    "gunicorn-sync": ("flask", FLASK_APP, lambda port: GUNICORN + [
        "-k", "sync", "-b", f"127.0.0.1:{port}", "app:app"]),
    "gunicorn-gthread": ("flask", FLASK_APP, lambda port: GUNICORN + [
        "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}", "app:app"]),
}
# The endpoint's name in its keys: FastAPI's is module.qualname, Flask's the endpoint name.
ENDPOINT = {"uvicorn": "app.{}", "gunicorn-sync": "{}", "gunicorn-gthread": "{}"}


class Server:
    def __init__(self, kind, tmp, url):
        framework, source, command = SERVERS[kind]
        pytest.importorskip(framework)
        pytest.importorskip(kind.split("-")[0])
        self.kind = kind
        self.prefix = f"it:{kind}:{time.monotonic_ns()}:"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "app.py").write_text(textwrap.dedent(source))
        self.port = free_port()
        env = dict(os.environ, APP_URL=url, APP_PREFIX=self.prefix,
                   PYTHONPATH=os.pathsep.join([str(tmp), BINDINGS]))
        self.log = open(tmp / "server.log", "w+")
        self.proc = subprocess.Popen(command(self.port), cwd=str(tmp), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    pytest.fail(f"{kind} did not start: {self.output()}")
                time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def get(self, path, client=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path, headers={"X-Client": client} if client else {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def key(self, scope, client, endpoint=None):
        """The Redis id of a client's counter: prefix, the declaration's scope, the key."""
        if endpoint is not None:
            scope = f"{scope}:{ENDPOINT[self.kind].format(endpoint)}"
        return f"{self.prefix}{scope}|{client}"


@pytest.fixture(scope="module")
def redis_module():
    with RedisServer() as r:
        yield r


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request, redis_module, tmp_path_factory):
    s = Server(request.param, tmp_path_factory.mktemp(request.param), redis_module.url())
    yield s
    s.close()


@pytest.fixture
def client(request):
    return f"c{time.monotonic_ns()}-{request.node.name}"


def ratelimit(headers):
    m = re.fullmatch(r'"([^"]+)";r=(\d+);t=(\d+)', headers["ratelimit"])
    assert m, headers["ratelimit"]
    return m.group(1), int(m.group(2)), int(m.group(3))


def test_route_limit_counts_exactly_with_headers(server, client, redis_module):
    before = time.time()
    for i in range(3):
        status, headers, body = server.get("/limited", client)
        assert status == 200 and json.loads(body) == {"route": "limited"}
        assert headers["ratelimit-policy"] == '"app";q=60;w=60, "route";q=3;w=60'
        name, remaining, reset = ratelimit(headers)
        assert (name, remaining) == ("route", 2 - i) and 0 < reset <= 60
        assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("3", str(2 - i))
        assert before <= int(headers["x-ratelimit-reset"]) <= time.time() + 61
        assert "retry-after" not in headers
    status, headers, body = server.get("/limited", client)
    assert status == 429 and body == b"Too Many Requests\n"
    assert headers["content-type"].startswith("text/plain")
    assert 1 <= int(headers["retry-after"]) <= 60
    assert ratelimit(headers)[:2] == ("route", 0) and headers["x-ratelimit-remaining"] == "0"
    # The counters in Redis: the route's 3 (the denied hit took nothing) and the application's 4.
    with hammer.Hammer(redis_module.url()) as h:
        route = h.peek(server.key("route", client, "limited"), hammer.Limit.fixed_window(3, 60_000))
        assert (route.allowed, route.count) == (False, 3)
        app = h.peek(server.key("app", client), hammer.Limit.fixed_window(60, 60_000))
        assert app.count == 4


def test_key_is_the_client_address_by_default(server, redis_module):
    # No X-Client header: the key function falls back to the address; reset it first (other runs share it).
    with hammer.Hammer(redis_module.url()) as h:
        rid = server.key("route", "127.0.0.1", "limited")
        h.delete_buckets(rid)
        h.delete_buckets(server.key("app", "127.0.0.1"))
        assert server.get("/limited")[0] == 200
        assert h.peek(rid, hammer.Limit.fixed_window(3, 60_000)).count == 1


def test_concurrent_requests_count_exactly(server, client, redis_module):
    """30 requests at once on 30 connections against 10/minute: exactly 10 pass, across workers and threads."""
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: server.get("/burst", client)[0], range(30)))
    assert sorted(statuses) == [200] * 10 + [429] * 20
    with hammer.Hammer(redis_module.url()) as h:
        assert h.peek(server.key("route", client, "burst"), hammer.Limit.fixed_window(10, 60_000)).count == 10


def test_defaults_apply_to_undecorated_routes_only(server, client):
    for i in range(2):
        status, headers, _ = server.get("/default", client)
        assert status == 200 and headers["ratelimit-policy"] == '"app";q=60;w=60, "default";q=2;w=60'
        assert ratelimit(headers)[:2] == ("default", 1 - i)
    status, headers, _ = server.get("/default", client)
    assert status == 429 and ratelimit(headers)[0] == "default"
    # A route with its own limit does not count against (or get) the defaults.
    status, headers, _ = server.get("/limited", client)
    assert status == 200 and "default" not in headers["ratelimit-policy"]


def test_exempt_route_is_never_limited(server, client):
    for _ in range(70):   # past the defaults and the application's 60
        status, headers, body = server.get("/exempt", client)
        assert status == 200 and json.loads(body) == {"route": "exempt"}
        assert not {"ratelimit", "ratelimit-policy", "x-ratelimit-limit"} & set(headers)


def test_shared_limit_is_one_counter_for_its_routes(server, client):
    statuses = [server.get(p, client)[0] for p in ("/shared1", "/shared2", "/shared1", "/shared2")]
    assert statuses == [200] * 4
    for p in ("/shared1", "/shared2"):
        status, headers, _ = server.get(p, client)
        assert status == 429 and ratelimit(headers)[:2] == ("group", 0)
        assert headers["ratelimit-policy"] == '"app";q=60;w=60, "group";q=4;w=60'
    assert server.get("/shared1", client + "-other")[0] == 200, "each key has its own counter"


def test_application_limit_spans_every_route(server, client):
    paths = ["/cheap"] * 55 + ["/limited"] * 3 + ["/shared1", "/default"]
    assert [server.get(p, client)[0] for p in paths] == [200] * 60
    for p in ("/cheap", "/limited"):
        status, headers, _ = server.get(p, client)
        assert status == 429 and ratelimit(headers)[:2] == ("app", 0), headers
    assert server.get("/exempt", client)[0] == 200


@pytest.mark.skipif(not MULTI, reason="needs the several-limit hit (hammer.Hammer.hit with a list of Limits)")
def test_several_limits_on_one_route_are_decided_together(server, client, redis_module):
    for i in range(3):
        status, headers, _ = server.get("/multi", client)
        assert status == 200
        assert headers["ratelimit-policy"] == '"app";q=60;w=60, "route.0";q=3;w=60, "route.1";q=5;w=3600'
        assert ratelimit(headers)[:2] == ("route.0", 2 - i)
    for _ in range(3):
        status, headers, _ = server.get("/multi", client)
        assert status == 429 and ratelimit(headers)[:2] == ("route.0", 0)
    # The denied requests charged neither limit: the hour has 3, not 6.
    with hammer.Hammer(redis_module.url()) as h:
        rid = server.key("route", client, "multi")
        assert h.peek(rid, hammer.Limit.fixed_window(5, 3_600_000)).count == 3
        assert h.peek(rid, hammer.Limit.fixed_window(3, 60_000)).count == 3


def test_breach_shaped_as_json(server, client):
    assert server.get("/json", client)[0] == 200
    status, headers, body = server.get("/json", client)
    assert status == 429 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["error"] == "rate limited" and 0 < doc["retry_after"] <= 60
    assert ratelimit(headers)[:2] == ("route", 0) and 1 <= int(headers["retry-after"]) <= 60


def test_breach_shaped_by_exception_handler(server, client):
    assert server.get("/handler", client)[0] == 200
    status, headers, body = server.get("/handler", client)
    assert (status, body) == (429, b"custom 429")
    assert ratelimit(headers)[:2] == ("route", 0), "the rate-limit headers are added to the handler's response"


def test_breach_default_text(server, client):
    assert server.get("/text", client)[0] == 200
    status, headers, body = server.get("/text", client)
    assert (status, body) == (429, b"Too Many Requests\n")
    assert headers["content-type"].startswith("text/plain") and 1 <= int(headers["retry-after"]) <= 60


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_redis_down_answers_503(kind, tmp_path):
    """Redis stopped under a running server: every request is answered, 503 with a clear body (no URL policy);
    exempt routes still work; once Redis is back the limits apply again."""
    with RedisServer() as r:
        s = Server(kind, tmp_path, r.url(connect_timeout_ms=200, timeout_ms=500))
        try:
            assert server_get_ok(s)
            r.stop()
            for path in ("/limited", "/default", "/cheap"):
                status, headers, body = s.get(path, "down")
                assert (status, body) == (503, FAILURE_BODY), s.output()
            assert s.get("/exempt", "down")[0] == 200
            r.start()   # used again after the circuit breaker's back-off (at most 100 ms for a refused connect)
            deadline = time.monotonic() + 10
            while s.get("/limited", "back")[0] != 200:
                assert time.monotonic() < deadline, "the limits never applied again after Redis came back"
                time.sleep(0.05)
        finally:
            s.close()


def server_get_ok(s):
    return s.get("/limited", "up")[0] == 200


# -- in-process: the pieces a server test does not isolate -----------------------------------------------------------
@pytest.mark.parametrize("handler", [None, 429, "RateLimitExceeded", "HTTPException", "Exception"])
def test_flask_429_with_and_without_handlers(redis_module, handler):
    """No on_breach and no error handler: the 429 is answered directly (not through Flask's exception path), as text,
    with the headers; an error handler for 429, for RateLimitExceeded or for a class it derives from takes over."""
    flask = pytest.importorskip("flask")
    from werkzeug.exceptions import HTTPException

    from hammer.integrations.flask import Limiter, RateLimitExceeded
    app = flask.Flask("plain")
    limiter = Limiter(redis_module.url(), app=app, key_prefix=f"plain:{time.monotonic_ns()}:")
    if handler is not None:
        target = {"RateLimitExceeded": RateLimitExceeded, "HTTPException": HTTPException,
                  "Exception": Exception}.get(handler, handler)
        app.register_error_handler(target, lambda e: ("handled", 429))

    @app.route("/one")
    @limiter.limit("1/minute")
    def one():
        return "one"

    c = app.test_client()
    assert c.get("/one").status_code == 200
    r = c.get("/one")
    assert (r.status_code, r.data) == (429, b"Too Many Requests\n" if handler is None else b"handled")
    assert r.headers["RateLimit"].startswith('"route";r=0;') and 1 <= int(r.headers["Retry-After"]) <= 60


def test_batched_hits_are_each_decided_exactly(redis_module):
    """200 concurrent hits through the batcher against 50/minute: exactly 50 allowed, in fewer calls than hits, and
    each caller gets its own decision; a cancelled caller does not disturb the others."""
    import asyncio

    import hammer.aio
    from hammer.integrations._batch import Batcher

    limit = hammer.Limit.fixed_window(50, 60_000)
    rid = f"batch:{time.monotonic_ns()}"

    async def main():
        async with hammer.aio.Hammer(redis_module.url()) as h:
            calls = {"hit": 0, "hit_many": 0}
            for name in calls:
                def counted(*a, _name=name, _f=getattr(h, name)):
                    calls[_name] += 1
                    return _f(*a)
                setattr(h, name, counted)
            b = Batcher(h)
            tasks = [asyncio.ensure_future(b.hit(rid, limit, 1)) for _ in range(201)]
            tasks[-1].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert isinstance(done[-1], asyncio.CancelledError)
            decisions = done[:-1]
            assert sum(d.allowed for d in decisions) == 50
            assert sorted(d.count for d in decisions if d.allowed) == list(range(1, 51))
            assert 2 <= calls["hit"] + calls["hit_many"] < 200, calls
            assert (await h.peek(rid, limit)).count == 50
            assert not b.busy and not b.queue
            # A loop that ended with a batch in flight (a test client's loop, a restarted server's) leaves the
            # batcher busy: another loop starts afresh instead of queueing behind it forever.
            b.busy = True
            b.queue.append(("never", limit, 1, asyncio.get_running_loop().create_future()))
            return b

    b = asyncio.run(main())

    async def again():
        async with hammer.aio.Hammer(redis_module.url()) as h:
            b.hammer = h
            d = await asyncio.wait_for(b.hit(rid, limit, 1), 30)
            assert not d.allowed and d.count == 50

    asyncio.run(again())


def test_batched_hits_fail_each_with_redis_down():
    import asyncio

    import hammer.aio
    from hammer.integrations._batch import Batcher

    with RedisServer() as r:
        url = r.url(connect_timeout_ms=200, timeout_ms=300)

        async def main():
            async with hammer.aio.Hammer(url) as h:
                r.stop()
                b = Batcher(h)
                done = await asyncio.gather(*[b.hit("x", hammer.Limit.gcra(5, 1000), 1) for _ in range(20)],
                                            return_exceptions=True)
                assert all(isinstance(e, hammer.HammerError) for e in done), done
                assert not b.busy

        asyncio.run(main())


def test_declarations_are_checked_when_made(redis_module):
    """Mistakes fail at start-up with a ValueError (hammer.InvalidError) naming them, not at every request."""
    pytest.importorskip("starlette")
    pytest.importorskip("flask")
    from hammer.integrations import flask as hflask
    from hammer.integrations import starlette as hstar

    url = redis_module.url()
    for limiter_class in (hstar.Limiter, hflask.Limiter):   # a bad URL fails at start-up, not at every request
        with pytest.raises(ValueError, match="bogus"):
            limiter_class(url + "&bogus=1")
    for make in (lambda **kw: hstar.Limiter(url, **kw), lambda **kw: hflask.Limiter(url, **kw)):
        for kw in ({"default_limits": "10/second"}, {"default_limits": ["10 per fortnight"]},
                   {"application_limits": ["0/second"]}, {"algorithm": "bogus"}, {"headers": "all"},
                   {"key_func": "client"}, {"key_prefix": 7}, {"on_breach": 429}):
            with pytest.raises(ValueError):
                make(**kw)
        limiter = make(algorithm="moving-window")   # limits' strategy names are accepted
        assert limiter.decl.algorithm == "sliding_window"
        for args, kw in ((("10/second",), {"methods": "POST"}), (("10/sideways",), {}), ((42,), {}),
                         (("10/second",), {"cost": -1}), (("10/second",), {"cost": 1.5}),
                         (("10/second",), {"exempt_when": True})):
            with pytest.raises(ValueError):
                limiter.limit(*args, **kw)
        with pytest.raises(ValueError):
            limiter.shared_limit("10/second", scope='bad"scope')
        if MULTI:
            limiter.limit("10/second;1000/day")
        else:   # refused when made rather than failing every request
            with pytest.raises(ValueError, match="several limits"):
                limiter.limit("10/second;1000/day")


def test_starlette_middleware_takes_app_state_limiter(redis_module):
    """slowapi's set-up (app.state.limiter, then the middleware without arguments) works as is, on a plain Starlette
    app whose endpoints take the request, including a route inside a Mount."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    from hammer.integrations.starlette import HammerMiddleware, Limiter

    limiter = Limiter(redis_module.url(), key_prefix=f"state:{time.monotonic_ns()}:")

    @limiter.limit("2/minute")
    async def inner(request):
        return PlainTextResponse("inner")

    async def free(request):
        return PlainTextResponse("free")

    app = Starlette(routes=[Route("/free", free), Mount("/api", routes=[Route("/inner", inner)])])
    app.state.limiter = limiter
    app.add_middleware(HammerMiddleware)
    with TestClient(app) as c:
        assert [c.get("/api/inner").status_code for _ in range(3)] == [200, 200, 429]
        assert all(c.get("/free").status_code == 200 for _ in range(5))
        assert "ratelimit" not in c.get("/free").headers


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_starts_while_redis_is_down(kind, tmp_path):
    """The app starts with Redis down (the Limiter opens its handle at a later request), answers 503 meanwhile, and
    limits once Redis is up."""
    with RedisServer() as r:
        r.stop()
        s = Server(kind, tmp_path, r.url(connect_timeout_ms=200, timeout_ms=500))
        try:
            status, _, body = s.get("/limited", "early")
            assert (status, body) == (503, FAILURE_BODY), s.output()
            r.start()
            deadline = time.monotonic() + 10
            while (status := s.get("/limited", "late")[0]) != 200:
                assert status == 503 and time.monotonic() < deadline, s.output()
                time.sleep(0.05)
            assert [s.get("/limited", "late")[0] for _ in range(3)] == [200, 200, 429]
        finally:
            s.close()


def test_frameworks_are_imported_only_when_used():
    """`import hammer` (and its middleware) imports no web framework; each integration imports only its own."""
    code = ("import sys, hammer, hammer.aio, hammer.asgi, hammer.wsgi, hammer.integrations\n"
            "assert not {{'starlette', 'fastapi', 'flask', 'werkzeug'}} & set(sys.modules), sorted(sys.modules)\n"
            "import hammer.integrations.{}\n"
            "assert '{}' not in sys.modules\n")
    for mine, other in (("starlette", "flask"), ("flask", "starlette")):
        pytest.importorskip(mine)
        r = subprocess.run([sys.executable, "-c", code.format(mine, other)], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PYTHONPATH=BINDINGS))
        assert r.returncode == 0, r.stderr


def test_flask_declaration_options(redis_module):
    """Blueprint limits and exemption, methods=, per_method=, a cost function, exempt_when, a key of None (not
    limited), override_defaults=False; in process (Flask's test client), against Redis."""
    flask = pytest.importorskip("flask")
    from hammer.integrations.flask import Limiter

    app = flask.Flask("options")
    key = {"value": "k1"}
    limiter = Limiter(redis_module.url(), app=app, key_func=lambda: key["value"], default_limits=["1/minute"],
                      key_prefix=f"opt:{time.monotonic_ns()}:")
    bp = flask.Blueprint("bp", "bp")
    free_bp = flask.Blueprint("free_bp", "free_bp")

    @bp.route("/bp/one")
    def bp_one():
        return "one"

    @bp.route("/bp/own")
    @limiter.limit("3/minute")
    def bp_own():
        return "own"

    @free_bp.route("/free/x")
    def free_x():
        return "x"

    limiter.limit("2/minute")(bp)
    limiter.exempt(free_bp)
    app.register_blueprint(bp)
    app.register_blueprint(free_bp)

    @app.route("/post", methods=["GET", "POST"])
    @limiter.limit("1/minute", methods=["POST"])
    def post_only():
        return "p"

    @app.route("/each", methods=["GET", "POST"])
    @limiter.limit("1/minute", per_method=True)
    def each():
        return "e"

    @app.route("/cost")
    @limiter.limit("5/minute", cost=lambda: int(flask.request.args.get("n", "1")))
    def cost():
        return "c"

    @app.route("/when")
    @limiter.limit("1/minute", exempt_when=lambda: flask.request.args.get("vip") == "1")
    def when():
        return "w"

    @app.route("/both")
    @limiter.limit("5/minute", override_defaults=False)
    def both():
        return "b"

    c = app.test_client()
    codes = lambda method, path, n: [getattr(c, method)(path).status_code for _ in range(n)]  # noqa: E731
    assert codes("get", "/bp/one", 3) == [200, 200, 429], "the blueprint's limit"
    assert codes("get", "/bp/own", 4) == [200, 200, 200, 429], "a view's own limit over its blueprint's"
    assert codes("get", "/free/x", 5) == [200] * 5, "an exempt blueprint"
    assert codes("get", "/post", 3) == [200] * 3 and codes("post", "/post", 2) == [200, 429], "methods="
    assert codes("get", "/each", 2) == [200, 429] and codes("post", "/each", 2) == [200, 429], "per_method"
    assert [c.get(f"/cost?n={n}").status_code for n in (3, 2, 1)] == [200, 200, 429], "cost function"
    assert codes("get", "/when", 2) == [200, 429] and c.get("/when?vip=1").status_code == 200, "exempt_when"
    assert codes("get", "/both", 2) == [200, 429], "the defaults (1/minute) kept beside the route's 5"
    assert "default" in c.get("/both").headers["RateLimit-Policy"]
    key["value"] = None
    assert codes("get", "/bp/one", 4) == [200] * 4, "a key of None is not limited"


def test_starlette_declaration_options(redis_module):
    """The same options on Starlette (in process: its test client), with key functions of the request."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from hammer.integrations.starlette import Limiter

    limiter = Limiter(redis_module.url(), key_func=lambda r: r.headers.get("x-key"), default_limits=["1/minute"],
                      key_prefix=f"sopt:{time.monotonic_ns()}:")

    def endpoint():   # a function of its own per route: declarations belong to the endpoint
        async def ok(request):
            return PlainTextResponse("ok")
        return ok

    post_only = limiter.limit("1/minute", methods=["POST"])(endpoint())
    each = limiter.limit("1/minute", per_method=True)(endpoint())
    cost = limiter.limit("5/minute", cost=lambda r: int(r.query_params.get("n", "1")))(endpoint())
    when = limiter.limit("1/minute", exempt_when=lambda r: r.query_params.get("vip") == "1")(endpoint())
    both = limiter.limit("5/minute", override_defaults=False)(endpoint())
    plain = endpoint()
    app = Starlette(routes=[Route("/post", post_only, methods=["GET", "POST"]),
                            Route("/each", each, methods=["GET", "POST"]), Route("/cost", cost),
                            Route("/when", when), Route("/both", both), Route("/plain", plain)])
    limiter.init_app(app)
    h = {"x-key": "k1"}
    with TestClient(app) as c:
        codes = lambda method, path, n, headers=h: [  # noqa: E731
            getattr(c, method)(path, headers=headers).status_code for _ in range(n)]
        assert codes("get", "/post", 3) == [200] * 3 and codes("post", "/post", 2) == [200, 429]
        assert codes("get", "/each", 2) == [200, 429] and codes("post", "/each", 2) == [200, 429]
        assert [c.get(f"/cost?n={n}", headers=h).status_code for n in (3, 2, 1)] == [200, 200, 429]
        assert codes("get", "/when", 2) == [200, 429] and c.get("/when?vip=1", headers=h).status_code == 200
        assert codes("get", "/both", 2) == [200, 429]
        assert codes("get", "/plain", 2) == [200, 429], "the defaults on a route that declares nothing"
        assert codes("get", "/plain", 3, headers={}) == [200] * 3, "a key of None is not limited"


def test_reset_deletes_a_clients_counters(redis_module):
    """reset(key, view) gives a client its requests back on that view (own, blueprint, default, shared and
    per-method limits), reset(key) on the application limits; other clients keep their counts."""
    flask = pytest.importorskip("flask")
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from hammer.integrations import flask as hflask
    from hammer.integrations import starlette as hstar

    who = {"key": "ann"}
    app = flask.Flask("reset")
    fl = hflask.Limiter(redis_module.url(), app=app, key_func=lambda: who["key"], default_limits=["1/minute"],
                        application_limits=["100/minute"], key_prefix=f"reset:{time.monotonic_ns()}:")
    bp = flask.Blueprint("bp", "bp")

    @bp.route("/in-bp")
    def in_bp():
        return "b"

    fl.limit("1/minute")(bp)
    app.register_blueprint(bp)

    @app.route("/own", methods=["GET", "POST"])
    @fl.limit("1/minute", per_method=True)
    @fl.shared_limit("50/minute", scope="grp")
    def own():
        return "o"

    @app.route("/dflt")
    def dflt():
        return "d"

    c = app.test_client()
    for path in ("/in-bp", "/own", "/dflt"):
        assert [c.get(path).status_code for _ in range(2)] == [200, 429]
    assert c.post("/own").status_code == 200 and c.post("/own").status_code == 429
    who["key"] = "bob"
    assert c.get("/own").status_code == 200
    assert fl.reset("ann", in_bp, "bp.in_bp") == 1
    assert fl.reset("ann", own) == 3, "GET's and POST's counters and the shared one"
    assert fl.reset("ann", dflt) == 1
    assert fl.reset("ann") == 1, "the application's counter"
    who["key"] = "ann"
    for path in ("/in-bp", "/own", "/dflt"):
        assert c.get(path).status_code == 200
    who["key"] = "bob"
    assert c.get("/own").status_code == 429, "bob's counter was not reset"

    limiter = hstar.Limiter(redis_module.url(), key_func=lambda r: "ann", key_prefix=f"sreset:{time.monotonic_ns()}:")

    @limiter.limit("1/minute")
    async def one(request):
        return PlainTextResponse("one")

    sapp = Starlette(routes=[Route("/one", one)])
    limiter.init_app(sapp)
    with TestClient(sapp) as sc:
        assert [sc.get("/one").status_code for _ in range(2)] == [200, 429]
        assert sc.portal.call(limiter.reset, "ann", one) == 1
        assert sc.get("/one").status_code == 200


@pytest.mark.parametrize("style", ["ietf", "x-ratelimit", "none"])
def test_header_styles(redis_module, style):
    """headers= picks the fields: the IETF draft's, the X-RateLimit-* of the peers, or none; a 429 that can pass
    later carries Retry-After in every style."""
    flask = pytest.importorskip("flask")
    from hammer.integrations.flask import Limiter

    app = flask.Flask("styles")
    limiter = Limiter(redis_module.url(), app=app, headers=style, key_prefix=f"style:{time.monotonic_ns()}:")

    @app.route("/one")
    @limiter.limit("1/minute")
    def one():
        return "one"

    c = app.test_client()
    for status in (200, 429):
        r = c.get("/one")
        assert r.status_code == status
        names = {k.lower() for k in r.headers.keys()}
        assert ("ratelimit" in names and "ratelimit-policy" in names) == (style == "ietf")
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= names or style != "x-ratelimit"
        assert not {"x-ratelimit-limit"} & names or style == "x-ratelimit"
        assert ("retry-after" in names) == (status == 429)
