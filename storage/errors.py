"""Translates Redis failures into service errors at the storage boundary.

Every way Redis can fail a command becomes a clear, retryable error, never a 500 or a hang:

- the connection is down, refused, or a command timed out → 503 ``STORAGE-down``; while
  the circuit is open after repeated timeouts → 503 ``STORAGE-circuit`` at once;
- the server answers but cannot serve right now (``LOADING`` its AOF after a restart,
  ``BUSY`` running a long script, ``READONLY`` replica, ``MASTERDOWN``, ``MISCONF`` refusing
  writes after a failed save, ``TRYAGAIN``, ``CLUSTERDOWN``) → 503 ``STORAGE-<reply>``;
- ``NOAUTH`` / ``WRONGPASS`` / ``NOPERM``: misconfigured credentials → 503 ``STORAGE-auth``;
- ``OOM``: ``maxmemory`` reached with ``noeviction`` → ``RESOURCE_EXHAUSTED`` ``STORAGE-full``.

All of them carry ``Retry-After`` on the wire (see ``Unavailable.retry_after_s``). Error
replies a script documents (``LEASE_LOST``, ``STALE_FENCE``, ``STALE``, ``EXISTS``,
``CLAIM_EXPIRED``) keep their meaning; any other error reply is a bug of ours and stays an
internal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions as redis_errors

from actors.errors import Aborted, AlreadyExists, ResourceExhausted, Unavailable
from storage.multiplex import CircuitOpenError


class ScriptRefused(Exception):  # noqa: N818 - a reply, not a failure of ours
    """A script answered with one of its documented error replies (e.g. ``LEASE_LOST``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


#: First word of an error reply → the id of the 503 it becomes.
_UNAVAILABLE_REPLIES = {
    "LOADING": "STORAGE-loading",
    "BUSY": "STORAGE-busy",
    "READONLY": "STORAGE-readonly",
    "MASTERDOWN": "STORAGE-masterdown",
    "MISCONF": "STORAGE-misconf",
    "TRYAGAIN": "STORAGE-tryagain",
    "CLUSTERDOWN": "STORAGE-clusterdown",
    "NOAUTH": "STORAGE-auth",
    "WRONGPASS": "STORAGE-auth",
    "NOPERM": "STORAGE-auth",
}


def storage_down() -> Unavailable:
    return Unavailable("STORAGE-down", "Errors.Storage.Unavailable")


def _reply_error(reason: str) -> Exception | None:
    """The service error of a Redis error reply, or None for one we do not know."""
    word = reason.split(" ", 1)[0]
    if word in _UNAVAILABLE_REPLIES:
        return Unavailable(_UNAVAILABLE_REPLIES[word], "Errors.Storage.Unavailable")
    if word == "OOM" or "OOM command not allowed" in reason:
        return ResourceExhausted("STORAGE-full", "Errors.Storage.Full")
    if reason == "EXISTS":
        return AlreadyExists("SESSION-exists", "Errors.Session.Exists")
    if reason == "CLAIM_EXPIRED":  # a session write later than its token claim's deadline
        return Aborted("SESSION-claimExpired", "Errors.Session.ConcurrentUpdate")
    if reason in ("LEASE_LOST", "STALE_FENCE", "STALE"):
        return ScriptRefused(reason)
    # Inside a script an ACL refusal carries no NOPERM word (Redis 7.0 and Valkey 9 texts)
    if "can't run this command or subcommand" in reason or "ACL failure in script" in reason:
        return Unavailable("STORAGE-auth", "Errors.Storage.Unavailable")
    # A write command refused inside a script reports "... script: ..., on @user_script";
    # its own first word may then be buried: look for the known ones.
    for known, error_id in _UNAVAILABLE_REPLIES.items():
        if f"{known} " in reason and "script" in reason:
            return Unavailable(error_id, "Errors.Storage.Unavailable")
    return None


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Redis trouble → 503/429 service errors; documented script replies → ScriptRefused."""
    try:
        yield
    except CircuitOpenError as exc:
        raise Unavailable("STORAGE-circuit", "Errors.Storage.Unavailable") from exc
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise storage_down() from exc
    except redis_errors.ResponseError as exc:
        reason = str(exc).strip().removeprefix("ERR ")  # redis-py strips it, hiredis does not
        mapped = _reply_error(reason)
        if mapped is None:
            raise
        raise mapped from exc
