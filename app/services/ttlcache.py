"""A small per-process cache with a time-to-live, for data other workers may change.

Entries live ``ttl_ms``; that TTL is the documented bound on how stale a worker's view of a
user (or a PAT) can be after another worker changed it. Writes in this process invalidate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_ms: int, max_entries: int = 50_000) -> None:
        self._ttl_s = ttl_ms / 1000
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(hit, value)``; a miss or an expired entry is ``(False, None)``."""
        found = self._entries.get(key)
        if found is None:
            return False, None
        expires, value = found
        if expires < time.monotonic():
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: K, value: V) -> None:
        if self._ttl_s <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # crude but bounded; a cold cache is only slower
        self._entries[key] = (time.monotonic() + self._ttl_s, value)

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)

    def discard_if(self, stale: Callable[[V], bool]) -> None:
        """Drop every entry whose value ``stale`` says is out of date."""
        for key in [k for k, (_, value) in self._entries.items() if stale(value)]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
