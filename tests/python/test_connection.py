"""The connection layer against a server that speaks RESP badly (issue 14) and against a frozen Redis (issue 9.4).

A fake server on loopback (tests/fake_redis.py) answers each call with a value derived from the call's id, so a
reply that reaches another call shows as a wrong value. Rules under test:
- a connection that received a reply the library could not use, or more than its replies, is closed and never
  lent again; the call that saw it fails with HAMMER_ERR_PROTOCOL, and the same handle then answers correctly;
- one deadline per call: a reply dripping byte by byte cannot stretch a call past timeout_ms, nor an open past
  connect_timeout_ms; with more threads than pool_size, each call ends within connect_timeout_ms + timeout_ms;
- array and bulk headers larger than any reply of the library are refused at once, before hiredis sees them."""
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

import hammer
from fake_redis import FakeRedis, honest, id_of_key

NOW = 1_700_000_000_000
LIM = hammer.Limit.fixed_window(10, 60000)
SLACK = 0.25   # seconds of scheduling slack on a loaded 2-core machine


def int_reply(n):
    return b":%d\r\n" % n


def decision_reply(n):
    return b"*5\r\n:1\r\n:%d\r\n:0\r\n:0\r\n:0\r\n" % n


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _script_names():
    """{SHA1: name} of the library's scripts (lua/*.lua as lua/generate.py puts them together)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                    "lua"))
    import generate
    return {hashlib.sha1(t.encode()).hexdigest().encode(): n for n, t in generate.scripts().items()}


SCRIPTS = _script_names()


def honest_reply(args):
    """The honest answer to one of the library's commands, from the id inside it."""
    cmd = args[0].upper()
    if cmd == b"HMGET":                                   # get_bucket: count, created, updated
        return b"*3\r\n" + bulk(b"%d" % honest(id_of_key(args[1]))) + bulk(b"1") + bulk(b"2")
    assert cmd == b"EVALSHA", args
    script, keys = SCRIPTS[args[1]], args[3:3 + int(args[2])]
    if script == "count_hit":                             # KEYS[1] is the bucket
        return int_reply(honest(id_of_key(keys[0])))
    if script == "count_hits":                            # KEYS: bucket and index, per request
        return b"*%d\r\n" % (len(keys) // 2) + b"".join(int_reply(honest(id_of_key(k))) for k in keys[::2])
    if script == "decide_many":                           # ARGV: the limiters (5 fields each), then 3 per request
        argv = args[3 + len(keys):]
        n = (len(argv) - 1 - 5 * int(argv[0])) // 3
        per = len(keys) // n
        return b"*%d\r\n" % (5 * n) + b"".join(decision_reply(honest(id_of_key(keys[k * per])))[4:]
                                                 for k in range(n))
    return decision_reply(honest(id_of_key(keys[0])))    # a decision: KEYS[1] is a key of the id


CALLS = {
    "count_hit": lambda h, i: h.count_hit(i, 1, NOW),
    "hit": lambda h, i: h.hit(i, LIM, now_ms=NOW).count,
    "get_bucket": lambda h, i: h.get_bucket(i, 1).count,
}


def misbehave_first(extra):
    """The first command on the first connection gets `extra(args)`; everything else its honest reply."""
    def answer(conn_no, cmd_no, args):
        if conn_no == 0 and cmd_no == 0:
            return extra(args)
        return [honest_reply(args)]
    return answer


BROKEN_REPLIES = {
    # Two replies in one read: its own and one more (issue 14's :701007\r\n:501007\r\n).
    "two replies in one read": lambda a: [honest_reply(a) + int_reply(501007)],
    # A bulk of the wrong shape, then the real answer.
    "wrong-shape bulk then the reply": lambda a: [bulk(b"abc") + honest_reply(a)],
    # A bulk whose CRLF is missing: hiredis would skip two bytes of the next reply unread.
    "bulk without its CRLF": lambda a: [b"$6\r\n999999" + honest_reply(a)],
    # A Redis error, then one more reply: the error is not the call's answer either.
    "error reply then another reply": lambda a: [b"-ERR boom\r\n" + honest_reply(a)],
    # An integer where an array is expected (or the reverse), then the reply.
    "unexpected type then the reply": lambda a: [b"*2\r\n:1\r\n:2\r\n" + honest_reply(a)
                                                 if a[0] == b"EVALSHA" and a[2] == b"2" else
                                                 int_reply(99) + honest_reply(a)],
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("case", sorted(BROKEN_REPLIES))
def test_a_connection_out_of_step_is_dropped_and_no_call_gets_another_calls_reply(case, call):
    with FakeRedis(misbehave_first(BROKEN_REPLIES[case])) as fake, hammer.Hammer(fake.url(pool_size=1)) as h:
        with pytest.raises(hammer.ProtocolError):
            CALLS[call](h, "first")
        # The same handle answers each later call with that call's own reply.
        for n in range(5):
            assert CALLS[call](h, f"later:{n}") == honest(f"later:{n}".encode())
        # They came on a new connection: the first was closed by the client, never lent again.
        assert fake.connections == 2
        assert [c for c, _ in fake.commands] == [0] + [1] * 5
        assert fake.wait_closed_by_client(1) >= 1


def test_a_reply_nobody_asked_for_that_arrives_while_idle_is_never_read_as_a_reply():
    def answer(conn_no, cmd_no, args):
        if conn_no == 0 and cmd_no == 0:
            return [honest_reply(args), 0.02, int_reply(501007)]   # a stray reply, 20 ms later
        return [honest_reply(args)]
    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1)) as h:
        assert h.count_hit("a", 1, NOW) == honest(b"a")
        time.sleep(0.1)
        assert h.count_hit("b", 1, NOW) == honest(b"b")
        assert fake.connections == 2   # the out-of-step connection was replaced before use


def test_a_stray_reply_that_arrives_just_after_a_call_never_reaches_the_next_call():
    # Issue 17: a reply sent 0.3 ms after the call's own reply (inside the pool's old "given back less than 1 ms
    # ago" shortcut) reached the next call. Every connection's first command gets such a stray; the next call comes
    # as soon as the stray is sent (well within 1 ms), so it is there when the connection is lent again, and must be
    # seen then.
    stray_sent, stray_due = threading.Event(), threading.Event()

    def answer(conn_no, cmd_no, args):
        if cmd_no == 0:
            stray_due.set()   # before the reply: the call sees it when it returns
            return [honest_reply(args), 0.0003, int_reply(999999), stray_sent.set]
        return [honest_reply(args)]
    wrong, protocol = [], 0
    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1, timeout_ms=2000)) as h:
        for n in range(40):
            i = f"stray:{n}"
            stray_sent.clear()
            stray_due.clear()
            try:
                v = h.count_hit(i, 1, NOW)
                if v != honest(i.encode()):
                    wrong.append((i, v))
            except hammer.ProtocolError:
                protocol += 1   # the stray came in the same read as the reply: seen, and the connection dropped
            if stray_due.is_set():
                assert stray_sent.wait(5)
        assert not wrong, f"calls returned another reply: {wrong[:5]}"
        # Every connection that got a stray was dropped before its next command.
        assert fake.connections == 40 and len(fake.commands) == 40, (fake.connections, len(fake.commands), protocol)


def test_a_batch_reply_of_the_wrong_shape_fails_the_batch_and_drops_the_connection():
    def answer(conn_no, cmd_no, args):
        if conn_no == 0 and cmd_no == 0:
            return [b"*2\r\n:1\r\n:2\r\n"]          # 2 elements for 3 requests
        if conn_no == 1 and cmd_no == 0:
            return [b"*3\r\n:1\r\n*1\r\n:2\r\n:3\r\n"]   # the right count, an element of the wrong type
        return [honest_reply(args)]
    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1)) as h:
        for _ in range(2):
            out = h.count_hits([("x", 1, NOW, 1), ("y", 1, NOW, 1), ("z", 1, NOW, 1)])
            assert all(isinstance(r, hammer.ProtocolError) for r in out), out
        ids = [f"batch:{n}" for n in range(300)]      # 3 chunks in one pipeline
        assert h.count_hits([(i, 1, NOW, 1) for i in ids]) == [honest(i.encode()) for i in ids]
        assert fake.connections == 3


HEADERS = {
    "array of 2^31-1": b"*2147483647\r\n",
    "bulk of 2^31-1": b"$2147483647\r\n",
    "array of 100000": b"*100000\r\n",
    "bulk of 99999999": b"$99999999\r\n",
    "negative array": b"*-5\r\n",
    "endless line": b"+" + b"x" * 70000,
    "unknown type": b"!3\r\n",
}


@pytest.mark.parametrize("header", list(HEADERS.values()), ids=list(HEADERS))
def test_a_header_larger_than_any_reply_fails_fast_with_protocol(header):
    def answer(conn_no, cmd_no, args):
        if conn_no == 0:
            return [header, 0.5, None]   # then silence, then a close
        return [honest_reply(args)]
    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1, timeout_ms=2000)) as h:
        t = time.monotonic()
        with pytest.raises(hammer.ProtocolError):
            h.count_hit("giant", 1, NOW)
        assert time.monotonic() - t < 0.4, "refused at the header, not at the close or the timeout"
        assert h.count_hit("next", 1, NOW) == honest(b"next")
        assert fake.connections == 2


def dripping(data, every):
    out = []
    for b in data:
        out += [bytes([b]), every]
    return out


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_dripping_reply_cannot_stretch_a_call_past_timeout_ms(call):
    def answer(conn_no, cmd_no, args):
        if conn_no == 0:
            return dripping(honest_reply(args), 0.1)
        return [honest_reply(args)]
    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1, timeout_ms=300, connect_timeout_ms=300)) as h:
        t = time.monotonic()
        with pytest.raises(hammer.HammerTimeout):
            CALLS[call](h, "slow")
        took = time.monotonic() - t
        assert 0.29 <= took <= 0.3 + SLACK, took
        time.sleep(0.1)   # past the breaker's first back-off (25 ms)
        assert CALLS[call](h, "fast") == honest(b"fast")


def test_a_dripping_pong_cannot_stretch_open_past_connect_timeout_ms():
    with FakeRedis(lambda *a: [], ping=dripping(b"+PONG\r\n", 0.25)) as fake:
        t = time.monotonic()
        with pytest.raises(hammer.HammerTimeout):
            hammer.Hammer(fake.url(timeout_ms=300, connect_timeout_ms=300))
        took = time.monotonic() - t
        assert took <= 0.3 + SLACK, took


def test_a_storm_of_threads_on_a_misbehaving_server_never_gets_a_crossed_reply():
    rng = random.Random(14)
    rng_lock = threading.Lock()
    faults = [
        lambda a: [honest_reply(a) + int_reply(honest(b"stray"))],
        lambda a: [bulk(b"abc") + honest_reply(a)],
        lambda a: [b"$6\r\n999999" + honest_reply(a)],
        lambda a: [b"*1\r\n" + honest_reply(a)],
        lambda a: [honest_reply(a)[:3], 0.001, honest_reply(a)[3:] + int_reply(7)],
    ]

    def answer(conn_no, cmd_no, args):
        with rng_lock:
            r = rng.random()
            f = rng.choice(faults)
        return f(args) if r < 0.3 else [honest_reply(args)]

    ok, protocol, wrong, other = [0], [0], [], []
    lock = threading.Lock()

    def worker(t):
        for n in range(60):
            i = f"storm:{t}:{n}"
            try:
                v = CALLS["count_hit" if n % 2 else "hit"](h, i)
            except hammer.ProtocolError:
                with lock:
                    protocol[0] += 1
                continue
            except hammer.HammerError as e:
                with lock:
                    other.append(repr(e))
                continue
            with lock:
                if v == honest(i.encode()):
                    ok[0] += 1
                else:
                    wrong.append((i, v))

    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=3, timeout_ms=2000)) as h:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not wrong, f"calls returned another call's value: {wrong[:5]}"
        assert not other, other[:5]
        assert ok[0] > 150 and protocol[0] > 20, (ok, protocol)
        assert fake.connections >= protocol[0]   # each failed call's connection was replaced


def test_more_threads_than_pool_size_against_a_frozen_redis_each_call_ends_within_the_bound(own_redis):
    server = own_redis()
    connect_ms, timeout_ms = 200, 200
    with hammer.Hammer(server.url(pool_size=1, connect_timeout_ms=connect_ms, timeout_ms=timeout_ms)) as h:
        h.count_hit("frozen", 1, NOW)
        server.pause()
        try:
            took, errors = [], []
            lock = threading.Lock()

            def one():
                t = time.monotonic()
                try:
                    h.count_hit("frozen", 1, NOW)
                except hammer.HammerError as e:
                    with lock:
                        errors.append(type(e))
                with lock:
                    took.append(time.monotonic() - t)

            threads = [threading.Thread(target=one) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            server.resume()
        assert len(errors) == 4 and set(errors) <= {hammer.HammerTimeout, hammer.ConnectError}, errors
        bound = (connect_ms + timeout_ms) / 1000
        assert max(took) <= bound + 0.1, f"calls took {sorted(took)}, bound {bound}"
        time.sleep(1.1)   # past the breaker's back-off
        assert h.count_hit("frozen", 1, NOW) in (2, 3)   # the call in flight at the freeze may have counted


def test_a_busy_pool_on_a_slow_but_healthy_server_never_opens_the_breaker():
    # Issue 17: 30 threads on pool_size=1 against a server answering in 10 ms got 138 OK calls and 346,069 failed
    # fast: a call that waited for the connection past its deadline still wrote its command, timed out at once, and
    # that timeout opened the breaker for the whole handle. Now a command is never written after its call's
    # deadline, and only a sent command that outlived its whole timeout_ms opens the breaker.
    def answer(conn_no, cmd_no, args):
        return [0.01, honest_reply(args)]
    ok, timeouts, wrong, other = [0], [0], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(t):
        n = 0
        while not stop.is_set():
            i = f"busy:{t}:{n}"
            n += 1
            try:
                v = h.count_hit(i, 1, NOW)
            except hammer.HammerTimeout as e:
                with lock:
                    timeouts[0] += 1
                    if "failing fast" in str(e):
                        other.append(repr(e))
                continue
            except hammer.HammerError as e:
                with lock:
                    other.append(repr(e))
                continue
            with lock:
                if v == honest(i.encode()):
                    ok[0] += 1
                else:
                    wrong.append((i, v))

    with FakeRedis(answer) as fake, hammer.Hammer(fake.url(pool_size=1, timeout_ms=100, connect_timeout_ms=100)) as h:
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(30)]
        for t in threads:
            t.start()
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join()
        sent = len(fake.commands)
    assert not wrong, wrong[:5]
    assert not other, f"{len(other)} calls failed otherwise, e.g. {other[:3]}"
    # Each command written was answered within timeout_ms: nearly all are OK calls (a few may be cut short by
    # their call's deadline); each failed call waited out its own deadline for the connection, so failures stay
    # within a small multiple of the OK calls instead of outnumbering them by thousands.
    assert ok[0] >= 0.8 * sent and ok[0] >= 20, (ok, sent)
    assert timeouts[0] <= 3 * ok[0], (ok, timeouts)


SILENT_DNS_CHILD = r"""
import socket, sys, time
import hammer
host, bound = sys.argv[1], float(sys.argv[2])
out = []
for url in (f"redis://{host}:6379/?expiry_ms=60000&connect_timeout_ms=300&timeout_ms=300",
            f"redis://{host}:6379/?expiry_ms=60000&connect_timeout_ms=300&timeout_ms=300&lazy_connect=true&on_error=allow"):
    t = time.monotonic()
    try:
        h = hammer.Hammer(url)
        d = h.hit("x", hammer.Limit.fixed_window(10, 1000))
        out.append(("degraded" if d.degraded else "decided", time.monotonic() - t))
    except hammer.HammerError as e:
        out.append((type(e).__name__, time.monotonic() - t))
print(out)
"""


def run_under_silent_dns(tmp_path, source, *args):
    """Runs Python `source` with `args` in a child whose resolver never answers (a UDP socket on 127.0.0.1:53 that
    reads nothing, named by /etc/resolv.conf in a private mount namespace, 5 s per try); returns its last line of
    output, evaluated. Skips where that cannot be set up (not root, no unshare, port 53 taken, no bind mount)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a private /etc/resolv.conf")
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        dns.bind(("127.0.0.1", 53))
    except OSError:
        dns.close()
        pytest.skip("127.0.0.1:53 is taken")
    try:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:5 attempts:1\n")
        child = tmp_path / "child.py"
        child.write_text(source)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.path.join(root, "bindings", "python"))
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f"mount --bind {resolv} /etc/resolv.conf && exec {sys.executable} {child} "
                            + " ".join(args)], capture_output=True, text=True, timeout=60, env=env)
    finally:
        dns.close()
    if r.returncode != 0 and "mount" in r.stderr:
        pytest.skip("cannot bind-mount /etc/resolv.conf here: " + r.stderr[-200:])
    assert r.returncode == 0, r.stderr[-2000:]
    return eval(r.stdout.strip().splitlines()[-1])


def test_a_silent_dns_cannot_stretch_a_call_past_connect_timeout_ms(tmp_path):
    # Issue 17: getaddrinfo ran outside the deadline. Against a resolver that never answers, open, and a lazy
    # handle's first call, still end within connect_timeout_ms.
    out = run_under_silent_dns(tmp_path, SILENT_DNS_CHILD, "hammer-silent-dns.example", "0.3")
    assert out[0][0] == "HammerTimeout" and out[1][0] == "degraded", out
    assert all(took <= 0.3 + SLACK for _, took in out), out
