"""Statuses of include/hammer.h and the exceptions they become.

Each exception is also the built-in one a caller already catches: InvalidError is a ValueError, HammerTimeout a
TimeoutError, ConnectError a ConnectionError; all are HammerError.
"""
from typing import Dict, Optional, Type

# Statuses (include/hammer.h: values pinned, append only)
OK = 0
ERR_INVALID = 1
ERR_CONNECT = 2
ERR_TIMEOUT = 3
ERR_REDIS = 4
ERR_PROTOCOL = 5
ERR_NOMEM = 6
ERR_INTERNAL = 7


class HammerError(Exception):
    """A libhammer call failed. `.status` is the C status, `.message` the detail (never a password)."""

    status: Optional[int] = None  # set on each subclass; an instance may carry an unknown status of its own

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        if status is None:
            status = type(self).status
        self.status = status
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class InvalidError(HammerError, ValueError):
    """HAMMER_ERR_INVALID: bad argument or configuration (a ValueError)."""
    status = ERR_INVALID


class ConnectError(HammerError, ConnectionError):
    """HAMMER_ERR_CONNECT: Redis unreachable, refused, or the connection was lost (a ConnectionError)."""
    status = ERR_CONNECT


class HammerTimeout(HammerError, TimeoutError):
    """HAMMER_ERR_TIMEOUT: connect or command timed out (a TimeoutError)."""
    status = ERR_TIMEOUT


class RedisError(HammerError):
    """HAMMER_ERR_REDIS: Redis answered with an error (NOAUTH, WRONGTYPE, OOM, ...)."""
    status = ERR_REDIS


class ProtocolError(HammerError):
    """HAMMER_ERR_PROTOCOL: a Redis reply of an unexpected shape."""
    status = ERR_PROTOCOL


class NoMemoryError(HammerError, MemoryError):
    """HAMMER_ERR_NOMEM (a MemoryError)."""
    status = ERR_NOMEM


class InternalError(HammerError):
    """HAMMER_ERR_INTERNAL, and any status this module does not know."""
    status = ERR_INTERNAL


ERRORS: Dict[int, Type[HammerError]] = {
    ERR_INVALID: InvalidError, ERR_CONNECT: ConnectError, ERR_TIMEOUT: HammerTimeout, ERR_REDIS: RedisError,
    ERR_PROTOCOL: ProtocolError, ERR_NOMEM: NoMemoryError, ERR_INTERNAL: InternalError}

# Names of the statuses, as Stats.errors spells them ("INVALID" for HAMMER_ERR_INVALID, ...).
STATUS_NAMES: Dict[int, str] = {
    ERR_INVALID: "INVALID", ERR_CONNECT: "CONNECT", ERR_TIMEOUT: "TIMEOUT", ERR_REDIS: "REDIS",
    ERR_PROTOCOL: "PROTOCOL", ERR_NOMEM: "NOMEM", ERR_INTERNAL: "INTERNAL"}


def error_for(status: int, message: str) -> HammerError:
    """The exception of a status (InternalError for one this module does not know)."""
    return ERRORS.get(status, InternalError)(message, status)
