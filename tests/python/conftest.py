"""Fixtures of the Python tests of the core API (tests/conftest.py gives redis_server, own_redis and uid)."""
import socket

import pytest

from redis_server import ReplyError, encode, read_reply


def run_commands(server, *commands, db=None, password=None, user=None, unix=False):
    """Runs commands on one raw RESP connection (after AUTH and SELECT if given); returns their replies."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(server.unix_path)
    else:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with s:
        f = s.makefile("rb")
        pre = []
        if password is not None:
            pre.append(["AUTH", user, password] if user else ["AUTH", password])
        if db is not None:
            pre.append(["SELECT", db])
        for c in pre:
            s.sendall(encode(c))
            r = read_reply(f)
            if isinstance(r, ReplyError):
                raise r
        out = []
        for c in commands:
            s.sendall(encode(list(c)))
            out.append(read_reply(f))
        return out


@pytest.fixture
def redis_cmd():
    """redis_cmd(server, "HGETALL", key, db=3) -> the reply of one command (on its own connection)."""
    def cmd(server, *args, **kw):
        return run_commands(server, args, **kw)[0]
    return cmd


@pytest.fixture
def redis_cmds():
    """redis_cmds(server, (cmd...), (cmd...), db=3) -> their replies, on one connection."""
    return run_commands


@pytest.fixture
def open_hammer():
    """open_hammer(url) -> a hammer.Hammer closed at the end of the test."""
    import hammer
    handles = []

    def make(url):
        h = hammer.Hammer(url)
        handles.append(h)
        return h

    yield make
    for h in handles:
        h.close()


@pytest.fixture(params=["tcp", "tls"])
def h(request, redis_server, open_hammer):
    """A handle on the shared server, default prefix, expiry_ms 60000: over plain TCP, and over TLS (the server's
    TLS port, same data)."""
    return open_hammer(redis_server.url() if request.param == "tcp" else redis_server.tls_url())
