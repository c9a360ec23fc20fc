import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
os.environ.setdefault("HAMMER_LIBRARY", os.path.join(ROOT, "build", "lib", "libhammer.so"))

from redis_server import REDIS_SERVER, RedisServer, no_tls_reason, server_has_tls, server_name  # noqa: E402
from tls_certs import Certs  # noqa: E402


def pytest_report_header(config):
    return f"server: {server_name()} ({REDIS_SERVER}), TLS: {'yes' if server_has_tls() else 'no'}"


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def tls_certs(certs):
    """Test certificates made with openssl at the start of the session (see tls_certs.py). A test that takes them
    skips when the server under test ($HAMMER_REDIS_SERVER) is built without TLS."""
    if not server_has_tls():
        pytest.skip(no_tls_reason())
    return certs


@pytest.fixture(scope="session")
def redis_server(certs):
    """One shared redis-server for tests that do not disturb it (use a unique id or prefix per test). It listens on
    a TCP port, a unix socket and a TLS port (redis_server.tls_url(); where the server has TLS), all on the same
    data."""
    with RedisServer(unix=True, tls=certs if server_has_tls() else None) as s:
        yield s


@pytest.fixture
def own_redis():
    """A redis-server of the test's own, for tests that restart, pause or reconfigure it."""
    servers = []

    def make(**kw):
        s = RedisServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def uid(request):
    """An id unique to the test."""
    return "t:" + request.node.name


@pytest.fixture
def whole_minute():
    """For a test that counts in a fixed window of a minute on the real clock: it starts at least 5 s before the
    minute ends, so that its hits and its reads fall in one window (a CLI or a web server started in between takes
    a second or more under load; seen: a count read back as 0 from the next window)."""
    left = 60 - time.time() % 60
    if left < 5:
        time.sleep(left + 0.05)
