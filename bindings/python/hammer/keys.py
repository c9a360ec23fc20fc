"""Key functions for the middleware and the framework integrations: who made a request, from an ASGI scope or a WSGI
environ alike.

    hammer.keys.client_address(scope_or_environ)        the peer's address (ASGI scope["client"], WSGI REMOTE_ADDR)
    hammer.keys.forwarded_address(trusted_proxies=1)    a key function: the client's address as the proxies in front
                                                        of the app saw it (X-Forwarded-For, or RFC 7239 Forwarded)

A request with no client address (a server on a unix socket, behind a proxy) raises NoClientAddress rather than
letting every client share one key: give the middleware a key function (forwarded_address, or one reading an API key).
Addresses are normalized (ipaddress: "::FFFF:10.0.0.1" and "::ffff:a00:1" are one client), so one client is one key.
"""
import functools
import ipaddress
from typing import Any, Callable, List, Mapping, Optional

from .errors import InvalidError

__all__ = ["NoClientAddress", "client_address", "forwarded_address"]


class NoClientAddress(InvalidError):
    """The request carries no client address (a unix-socket server gives none): a rate limit by address would put
    every client under one key, so the middleware needs a key function instead. An InvalidError (a ValueError)."""


def _is_asgi(request: Mapping[str, Any]) -> bool:
    return "type" in request and "headers" in request and "REQUEST_METHOD" not in request


@functools.lru_cache(maxsize=4096)   # parsing an address costs more than the rest of a key; clients come back
def _normalize(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address            # a name, RFC 7239's "unknown" or an obfuscated "_node": as the proxy wrote it
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _peer(request: Mapping[str, Any]) -> Optional[str]:
    if _is_asgi(request):
        client = request.get("client")
        host = client[0] if client else None
    else:
        host = request.get("REMOTE_ADDR")
    return host if isinstance(host, str) and host else None


_NO_ADDRESS = ("this request has no client address (the server listens on a unix socket?), so a limit per address "
               "would put every client under one key: give the middleware key= a function, e.g. "
               "hammer.keys.forwarded_address(trusted_proxies=1) behind a proxy that sets X-Forwarded-For, or one "
               "that reads an API key")


def client_address(request: Mapping[str, Any]) -> str:
    """The address of the peer that made the request: an ASGI scope's client host or a WSGI environ's REMOTE_ADDR,
    normalized. Raises NoClientAddress when the server gives none (a unix socket)."""
    host = _peer(request)
    if host is None:
        raise NoClientAddress(_NO_ADDRESS)
    return _normalize(host)


def _header(request: Mapping[str, Any], name: str) -> Optional[str]:
    """Every line of header `name` (lower case) joined by ", " (RFC 9110's rule for list fields), or None."""
    if _is_asgi(request):
        raw = name.encode("latin-1")
        values = [v.decode("latin-1") for k, v in request.get("headers", ()) if k.lower() == raw]
        return ", ".join(values) if values else None
    value = request.get("HTTP_" + name.upper().replace("-", "_"))
    return value if isinstance(value, str) else None


def _x_forwarded_for(value: str) -> List[str]:
    return [part.strip() for part in value.split(",")]


def _forwarded_for(value: str) -> List[str]:
    """The for= node of each element of an RFC 7239 Forwarded field, without quotes, brackets or port ("" for an
    element without for=)."""
    nodes = []
    for element in _split_outside_quotes(value, ","):
        node = ""
        for pair in _split_outside_quotes(element, ";"):
            name, _, v = pair.strip().partition("=")
            if name.strip().lower() == "for":
                node = v.strip()
        if len(node) >= 2 and node[0] == node[-1] == '"':
            node = node[1:-1].replace('\\"', '"')
        if node.startswith("["):                       # "[2001:db8::1]:4711"
            node = node[1:node.index("]")] if "]" in node else node[1:]
        elif node.count(":") == 1:                     # "192.0.2.43:47011"
            node = node.partition(":")[0]
        nodes.append(node)
    return nodes


def _split_outside_quotes(text: str, sep: str) -> List[str]:
    parts: List[str] = []
    current: List[str] = []
    quoted = escaped = False
    for c in text:
        if escaped:
            escaped = False
        elif c == "\\" and quoted:
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(c)
    parts.append("".join(current))
    return parts


def forwarded_address(trusted_proxies: int = 1, header: str = "X-Forwarded-For") -> Callable[[Mapping[str, Any]], str]:
    """A key function (of an ASGI scope or a WSGI environ) for an app behind `trusted_proxies` proxies that each add
    the address they received the request from to `header`: "X-Forwarded-For" (nginx's $proxy_add_x_forwarded_for,
    most load balancers) or "Forwarded" (RFC 7239, its for= parameters).

    The client is the entry `trusted_proxies` from the right: the last one was added by the proxy nearest the app,
    and entries further left were written by whoever sent the request, so they are never read. A request with fewer
    entries than trusted proxies did not come through them all: its key is the peer's own address (client_address),
    as werkzeug's ProxyFix does. Trust only the proxies that always set the header: a client that reaches the app
    around them chooses its own key.
    """
    if isinstance(trusted_proxies, bool) or not isinstance(trusted_proxies, int) or not 1 <= trusted_proxies <= 64:
        raise InvalidError("trusted_proxies must be an int from 1 to 64 (the proxies in front of the app)")
    if not isinstance(header, str) or header.lower() not in ("x-forwarded-for", "forwarded"):
        raise InvalidError(f"header must be 'X-Forwarded-For' or 'Forwarded', not {header!r}")
    name = header.lower()
    split = _forwarded_for if name == "forwarded" else _x_forwarded_for

    def key(request: Mapping[str, Any]) -> str:
        value = _header(request, name)
        entries = split(value) if value is not None else []
        if len(entries) >= trusted_proxies and entries[-trusted_proxies]:
            return _normalize(entries[-trusted_proxies])
        return client_address(request)

    key.__qualname__ = key.__name__ = f"forwarded_address({trusted_proxies}, {header!r})"
    return key
