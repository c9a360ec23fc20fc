"""End to end over HTTP with wrk: hammer.integrations against slowapi (FastAPI under uvicorn) and Flask-Limiter (Flask
under gunicorn), same limit, same redis-server, and the same apps without a limiter.

    python3 benchmarks/web.py [--rounds 5] [--duration 5] [--connections 16] [--only fastapi,flask] [--headers]
                              [--url-options spin_us=0]

Each framework has three apps, all running at once on their own ports: `none` (no limiter), `hammer`
(hammer.integrations, fixed window as the peers' default) and the peer. Each app has two routes: /allow, limited to
10^9 per day (every request allowed), and /deny, limited to 1 per day and used up before the runs (every request
denied: the 429 path). The key is the client address (one key for all of wrk's connections), as by default in all
three. The rows alternate within each round (none, hammer, peer, then reversed the next round), so a busy moment of
the machine weighs on all sides alike; a ratio is the median of the per-round ratios, with the lowest and highest.
No limiter can make an app faster than the same app without one: "no limiter / peer" is the ceiling of any
limiter's ratio against the peer in that run.
Besides requests per second, each run's CPU time (user + system, /proc) of the app's processes and of redis-server is
divided by the requests it answered: what a request costs, which a busy machine disturbs much less than throughput.
By default no rate-limit headers are sent (the peers' default: headers_enabled=False; ours headers="none");
--headers turns them on everywhere (the peers' X-RateLimit-*, ours the IETF draft's).

Servers: uvicorn with one worker (its default; uvloop and httptools when installed, as uvicorn[standard] does);
gunicorn --preload -w 2 with sync workers. Needs `wrk` (Debian
package) and `pip install fastapi uvicorn slowapi flask gunicorn flask-limiter redis` (deps/pip.txt), and the library
built (make lib).
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from redis_server import RedisServer, free_port  # noqa: E402

ALLOW, DENY = "1000000000/day", "1/day"   # a day: no window ends during a run (fixed windows are calendar ones)

FASTAPI = {
    "none": '''
from fastapi import FastAPI, Request
app = FastAPI()

@app.get("/allow")
async def allow(request: Request):
    return {"ok": True}

@app.get("/deny")
async def deny(request: Request):
    return {"ok": True}
''',
    "hammer": '''
import os
from fastapi import FastAPI, Request
from hammer.integrations.starlette import Limiter, get_remote_address
limiter = Limiter(os.environ["HAMMER_URL"], key_func=get_remote_address, headers=os.environ["HAMMER_HEADERS"])
app = FastAPI()
limiter.init_app(app)

@app.get("/allow")
@limiter.limit("{ALLOW}")
async def allow(request: Request):
    return {"ok": True}

@app.get("/deny")
@limiter.limit("{DENY}")
async def deny(request: Request):
    return {"ok": True}
''',
    "peer": '''
import os
from fastapi import FastAPI, Request, Response
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address
limiter = Limiter(key_func=get_remote_address, storage_uri=os.environ["PEER_URL"],
                  headers_enabled=os.environ["PEER_HEADERS"] == "1")
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)

@app.get("/allow")
@limiter.limit("{ALLOW}")
async def allow(request: Request, response: Response):
    return {"ok": True}

@app.get("/deny")
@limiter.limit("{DENY}")
async def deny(request: Request, response: Response):
    return {"ok": True}
''',
}

FLASK = {
    "none": '''
import flask
app = flask.Flask(__name__)

@app.route("/allow")
def allow():
    return {"ok": True}

@app.route("/deny")
def deny():
    return {"ok": True}
''',
    "hammer": '''
import os
import flask
from hammer.integrations.flask import Limiter, get_remote_address
app = flask.Flask(__name__)
limiter = Limiter(os.environ["HAMMER_URL"], app=app, key_func=get_remote_address,
                  headers=os.environ["HAMMER_HEADERS"])

@app.route("/allow")
@limiter.limit("{ALLOW}")
def allow():
    return {"ok": True}

@app.route("/deny")
@limiter.limit("{DENY}")
def deny():
    return {"ok": True}
''',
    "peer": '''
import os
import flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
app = flask.Flask(__name__)
limiter = Limiter(get_remote_address, app=app, storage_uri=os.environ["PEER_URL"],
                  headers_enabled=os.environ["PEER_HEADERS"] == "1")

@app.route("/allow")
@limiter.limit("{ALLOW}")
def allow():
    return {"ok": True}

@app.route("/deny")
@limiter.limit("{DENY}")
def deny():
    return {"ok": True}
''',
}

FRAMEWORKS = {
    "fastapi": ("slowapi", FASTAPI, lambda port: [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
                                                 str(port), "--log-level", "warning", "app:app"]),
    "flask": ("Flask-Limiter", FLASK, lambda port: [sys.executable, "-m", "gunicorn", "--preload", "-w", "2",
                                                   "-k", "sync", "-b", f"127.0.0.1:{port}", "--log-level",
                                                   "warning", "app:app"]),
}


def wait_port(port, proc, log, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"server did not start: {log.read()}")
            time.sleep(0.05)


def get(port, path):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` and its live children (gunicorn's workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:   # fields[1] is the parent's pid
            total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / TICK


def wrk(port, path, duration, connections):
    """Requests per second of wrk on one URL, and the statuses seen (wrk counts non-2xx/3xx)."""
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, total, non2xx, errors.group(1) if errors else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--only", default="fastapi,flask")
    ap.add_argument("--headers", action="store_true", help="rate-limit headers on (all sides)")
    ap.add_argument("--url-options", default="", help="more options of hammer's URL, e.g. spin_us=0")
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"),
               HAMMER_LIBRARY=os.environ.get("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so")),
               HAMMER_HEADERS="ietf" if args.headers else "none", PEER_HEADERS="1" if args.headers else "0")
    procs = []
    tmp = tempfile.mkdtemp(prefix="hammer-web-")
    with RedisServer() as redis:
        opts = dict(o.split("=", 1) for o in args.url_options.split("&") if o)
        env["HAMMER_URL"] = redis.url(expiry_ms=3_600_000, **opts)
        env["PEER_URL"] = f"redis://127.0.0.1:{redis.port}"
        print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; wrk -t1 -c{args.connections} -d{args.duration}s; "
              f"{args.rounds} rounds; headers {'on' if args.headers else 'off'}; hammer URL options: "
              f"{args.url_options or 'defaults'}")
        try:
            servers = {}
            for fw in args.only.split(","):
                peer_name, apps, command = FRAMEWORKS[fw]
                for side, source in apps.items():
                    d = os.path.join(tmp, f"{fw}-{side}")
                    os.makedirs(d)
                    with open(os.path.join(d, "app.py"), "w") as f:
                        f.write(textwrap.dedent(source).replace("{ALLOW}", ALLOW).replace("{DENY}", DENY))
                    port = free_port()
                    log = open(os.path.join(d, "server.log"), "w+")
                    p = subprocess.Popen(command(port), cwd=d, env=env, stdout=log, stderr=subprocess.STDOUT)
                    procs.append((p, log))
                    servers[(fw, side)] = (port, p, log)
            for (fw, side), (port, p, log) in servers.items():
                wait_port(port, p, log)
                # Warm-up, and /deny used up: its one allowed request goes now.
                assert get(port, "/allow") == 200
                first = get(port, "/deny")
                if side != "none":
                    assert first == 200 and get(port, "/deny") == 429, (fw, side)
            for fw in args.only.split(","):
                peer_name = FRAMEWORKS[fw][0]
                for case in ("allow", "deny"):
                    rps = {s: [] for s in ("none", "hammer", "peer")}
                    cpu = {s: [] for s in ("none", "hammer", "peer")}
                    for r in range(args.rounds):
                        order = ["none", "hammer", "peer"] if r % 2 == 0 else ["peer", "hammer", "none"]
                        for side in order:
                            port, proc = servers[(fw, side)][:2]
                            c0, r0 = cpu_seconds(proc.pid), cpu_seconds(redis.proc.pid)
                            value, total, non2xx, errors = wrk(port, "/" + case, args.duration, args.connections)
                            c1, r1 = cpu_seconds(proc.pid), cpu_seconds(redis.proc.pid)
                            cpu[side].append(((c1 - c0) * 1e6 / total, (r1 - r0) * 1e6 / total))
                            if side != "none":
                                want = 0 if case == "allow" else total
                                if non2xx != want:
                                    raise SystemExit(f"{fw} {side} /{case}: {non2xx} of {total} responses not 2xx "
                                                     f"(expected {want}); socket errors: {errors}")
                            rps[side].append(value)
                    vs_peer = [h / p for h, p in zip(rps["hammer"], rps["peer"])]
                    vs_none = [h / n for h, n in zip(rps["hammer"], rps["none"])]
                    med = {s: statistics.median(v) for s, v in rps.items()}
                    app_us = {k: statistics.median(a for a, _ in v) for k, v in cpu.items()}
                    redis_us = {k: statistics.median(b for _, b in v) for k, v in cpu.items()}
                    cpu_ratio = [p[0] / h[0] for h, p in zip(cpu["hammer"], cpu["peer"])]
                    ceiling = [n / p for n, p in zip(rps["none"], rps["peer"])]
                    print(f"{fw:8} {case:6} requests/s: hammer {med['hammer']:.0f}, {peer_name} {med['peer']:.0f}, "
                          f"no limiter {med['none']:.0f}; hammer/{peer_name} {statistics.median(vs_peer):.2f} "
                          f"[{min(vs_peer):.2f}-{max(vs_peer):.2f}], hammer/no limiter "
                          f"{statistics.median(vs_none):.2f} [{min(vs_none):.2f}-{max(vs_none):.2f}]; "
                          f"ceiling (no limiter/{peer_name}) {statistics.median(ceiling):.2f}", flush=True)
                    print(f"{'':15} server CPU us/request: hammer {app_us['hammer']:.0f}, {peer_name} "
                          f"{app_us['peer']:.0f}, no limiter {app_us['none']:.0f}; {peer_name}/hammer "
                          f"{statistics.median(cpu_ratio):.2f} [{min(cpu_ratio):.2f}-{max(cpu_ratio):.2f}]; "
                          f"redis-server CPU us/request: hammer {redis_us['hammer']:.1f}, {peer_name} "
                          f"{redis_us['peer']:.1f}", flush=True)
        finally:
            for p, log in procs:
                p.terminate()
            for p, log in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
                log.close()


if __name__ == "__main__":
    main()
