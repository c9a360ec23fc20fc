"""hammer.keys: the client address of an ASGI scope or a WSGI environ, the address behind N trusted proxies from
X-Forwarded-For or RFC 7239 Forwarded, and a clear refusal when a request has no address (a unix-socket server).
Pure functions of the request (the servers' side is tests/python/test_middleware.py)."""
import pytest

import hammer
import hammer.asgi
import hammer.keys
import hammer.wsgi
from hammer.keys import NoClientAddress, client_address, forwarded_address


def scope(client=("192.0.2.1", 5000), headers=()):
    return {"type": "http", "client": client, "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}


def environ(addr="192.0.2.1", headers=()):
    e = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    if addr is not None:
        e["REMOTE_ADDR"] = addr
    for k, v in headers:
        name = "HTTP_" + k.upper().replace("-", "_")
        e[name] = e[name] + "," + v if name in e else v   # servers join repeated lines with commas
    return e


REQUESTS = [scope, environ]


def test_client_address():
    assert client_address(scope(("192.0.2.1", 5000))) == "192.0.2.1"
    assert client_address(environ("192.0.2.1")) == "192.0.2.1"


@pytest.mark.parametrize("raw,key", [("2001:DB8::1", "2001:db8::1"), ("2001:db8:0:0::1", "2001:db8::1"),
                                     ("::ffff:192.0.2.7", "192.0.2.7"), ("192.0.2.7", "192.0.2.7"),
                                     ("testclient", "testclient")])
def test_one_client_one_key(raw, key):
    """Spellings of one address are one key (an IPv4 client seen by a dual-stack socket too)."""
    assert client_address(scope((raw, 1))) == key
    assert client_address(environ(raw)) == key


@pytest.mark.parametrize("request_", [scope(client=None), scope(client=()), environ(addr=None), environ(addr=""),
                                      {"type": "http", "headers": []}])
def test_no_client_address_is_refused(request_):
    with pytest.raises(NoClientAddress) as e:
        client_address(request_)
    assert isinstance(e.value, ValueError) and isinstance(e.value, hammer.InvalidError)
    assert "key" in str(e.value) and "forwarded_address" in str(e.value), "it says what to do"


def test_middleware_defaults_are_the_same_function():
    assert hammer.asgi.client_address(scope(("192.0.2.9", 1))) == "192.0.2.9"
    assert hammer.wsgi.client_address(environ("192.0.2.9")) == "192.0.2.9"
    with pytest.raises(NoClientAddress):
        hammer.asgi.client_address(scope(None))
    with pytest.raises(NoClientAddress):
        hammer.wsgi.client_address(environ(""))


# ---------------------------------------------------------------------------------------------------------------------
# X-Forwarded-For: entries are appended by each proxy; the client is the one `trusted` from the right
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", REQUESTS)
@pytest.mark.parametrize("trusted,value,key", [
    (1, "203.0.113.5", "203.0.113.5"),
    (1, "198.51.100.1, 203.0.113.5", "203.0.113.5"),            # the left entry is the client's own claim
    (2, "198.51.100.1, 203.0.113.5", "198.51.100.1"),
    (2, "spoofed, 198.51.100.1, 203.0.113.5", "198.51.100.1"),
    (1, " 203.0.113.5 ", "203.0.113.5"),
    (1, "2001:DB8::5", "2001:db8::5"),
    (3, "198.51.100.1, 203.0.113.5", "192.0.2.1"),              # fewer entries than proxies: the peer
    (1, "198.51.100.1, ", "192.0.2.1"),                         # an empty entry where the client should be
])
def test_x_forwarded_for(make, trusted, value, key):
    key_of = forwarded_address(trusted)
    assert key_of(make(headers=[("X-Forwarded-For", value)])) == key


def test_x_forwarded_for_on_several_lines():
    key_of = forwarded_address(2)
    assert key_of(scope(headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.5")])) \
        == "198.51.100.1"
    assert key_of(environ(headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.5")])) \
        == "198.51.100.1"


def test_no_header_is_the_peer_and_no_peer_is_refused():
    key_of = forwarded_address(1)
    assert key_of(scope(("192.0.2.44", 1))) == "192.0.2.44"
    assert key_of(environ("192.0.2.44")) == "192.0.2.44"
    with pytest.raises(NoClientAddress):
        key_of(scope(None))
    assert key_of(scope(None, headers=[("X-Forwarded-For", "203.0.113.5")])) == "203.0.113.5", \
        "a unix-socket server behind a proxy: the header is the address"


def test_the_other_header_is_not_read():
    """A proxy sets one of the two; the other is whatever the client sent."""
    assert forwarded_address(1)(scope(headers=[("Forwarded", "for=203.0.113.5")])) == "192.0.2.1"
    assert forwarded_address(1, "Forwarded")(scope(headers=[("X-Forwarded-For", "203.0.113.5")])) == "192.0.2.1"


# ---------------------------------------------------------------------------------------------------------------------
# RFC 7239 Forwarded: for= of each element, quoted, IPv6 in brackets, ports, other parameters
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", REQUESTS)
@pytest.mark.parametrize("trusted,value,key", [
    (1, "for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
    (1, 'for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
    (1, 'For="[2001:DB8:cafe::17]"', "2001:db8:cafe::17"),
    (1, 'for="192.0.2.43:47011"', "192.0.2.43"),
    (1, "for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
    (2, "for=192.0.2.43, for=198.51.100.17", "192.0.2.43"),
    (2, 'for="_gazonk", for=198.51.100.17', "_gazonk"),          # an obfuscated node, as the proxy wrote it
    (1, "proto=https;for=192.0.2.60", "192.0.2.60"),
    (1, 'for="a,b;c", for=192.0.2.61', "192.0.2.61"),           # separators inside quotes split nothing
    (2, 'for="a,b;c", for=192.0.2.61', "a,b;c"),
    (1, "proto=https", "192.0.2.1"),                            # no for=: the peer
    (3, "for=192.0.2.43, for=198.51.100.17", "192.0.2.1"),
])
def test_forwarded(make, trusted, value, key):
    key_of = forwarded_address(trusted, header="Forwarded")
    req = make(headers=[("Forwarded", value)])
    assert key_of(req) == key


@pytest.mark.parametrize("trusted", [0, -1, 65, True, 1.0, "1", None])
def test_bad_trusted_proxies(trusted):
    with pytest.raises(hammer.InvalidError, match="trusted_proxies"):
        forwarded_address(trusted)


@pytest.mark.parametrize("header", ["X-Real-IP", "", None, b"Forwarded"])
def test_bad_header(header):
    with pytest.raises(hammer.InvalidError, match="header must be"):
        forwarded_address(1, header)


def test_key_function_names_itself():
    assert "forwarded_address(2, 'Forwarded')" in repr(forwarded_address(2, "Forwarded"))
