"""Translates Redis failures into service errors at the storage boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions as redis_errors

from actors.errors import AlreadyExists, Unavailable


class ScriptRefused(Exception):  # noqa: N818 - a reply, not a failure of ours
    """A script answered with one of its documented error replies (e.g. ``LEASE_LOST``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Connection trouble → 503 Unavailable; documented script replies → ScriptRefused."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise Unavailable("STORAGE-down", "Errors.Storage.Unavailable") from exc
    except redis_errors.ResponseError as exc:
        reason = str(exc).strip().removeprefix("ERR ")  # redis-py strips it, hiredis does not
        if reason == "EXISTS":
            raise AlreadyExists("SESSION-exists", "Errors.Session.Exists") from exc
        if reason in ("LEASE_LOST", "STALE_FENCE", "STALE"):
            raise ScriptRefused(reason) from exc
        raise
