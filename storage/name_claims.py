"""Unique names across hash slots: one key per name, claimed before the owner's write.

A user's login names used to live in one hash, written in the user's own script; on a Redis
Cluster that hash is in another slot. Now each name has its key (``login:{name}``), in its
own slot, and a write that takes a name goes in three steps:

1. **claim** the key (``claim_name.lua``): set to the owner, *pending* (it expires after
   ``CLAIM_TTL_MS``) unless another owner holds it;
2. the owner's **write** (its own slot), refused by the script once ``WRITE_DEADLINE_MS``
   have passed since the claim, so it never commits on a claim that may have expired;
3. the relay **confirms** the claim (a ``set`` op: the key without expiry) and drops the names
   given up (a ``del`` op, only while they still name the owner), with the write's events.

A writer that dies after 1 leaves a pending claim that expires by itself; one that dies after
2 leaves the entry to the relay's repair (7.5 s, well inside the claim's 30 s). A confirmed
key whose owner's state no longer names it (renamed or deleted, and the relay's ``del`` not
applied yet) is taken over by the next contender after it read that state; readers check
the owner's state too, so a stale key never resolves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from storage.client import RedisClient
from storage.codec import as_text
from storage.errors import mapped_errors
from storage.scripts import source

#: How long a claim stays pending (its owner's write and relay take milliseconds).
CLAIM_TTL_MS = 30_000
#: The owner's write must reach Redis this soon after the claim (the rest: clock skew).
WRITE_DEADLINE_MS = 20_000
_TAKEOVER_ATTEMPTS = 3

T = TypeVar("T")
#: told (holder, name): whether the holder's stored state still names the name
Holds = Callable[[str, str], Awaitable[bool]]


@dataclass(slots=True)
class Claimed:
    """The names a write claimed now, and when its write must have reached Redis."""

    names: list[str]
    #: 0 when no claim was made now (the owner held them all)
    deadline_ms: int


async def settled_owner(lookup: Callable[[], Awaitable[T | None]]) -> T | None:
    """What ``lookup`` finds once a rival's claimed write has landed (None after ~2 s).

    A name another writer won may still be a pending claim, its write in flight: a caller
    that lost the race and wants the winner (the default org, the admin user) waits for it.
    """
    for _ in range(40):
        found = await lookup()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    return None


def earliest(*deadlines_ms: int) -> int:
    """The first of some write deadlines, 0 standing for none."""
    return min((d for d in deadlines_ms if d), default=0)


class NameClaims:
    """Claims and releases of one kind of unique name (``key_of`` names its Redis key)."""

    def __init__(self, redis: RedisClient, key_of: Callable[[str], str]) -> None:
        self._redis = redis
        self.key_of = key_of

    async def claim_all(self, names: list[str], owner: str, holds: Holds) -> Claimed | None:
        """Claim every name, or None if one is another's (those claimed meanwhile freed).

        A name the owner holds already is left as it is (never freed here).
        """
        claimed = Claimed(names=[], deadline_ms=0)
        for name in names:
            at_ms = await self._claim(name, owner, holds)
            if at_ms is None:
                await self.release(claimed.names, owner)
                return None
            if at_ms:
                claimed.names.append(name)
                claimed.deadline_ms = earliest(claimed.deadline_ms, at_ms + WRITE_DEADLINE_MS)
        return claimed

    async def _claim(self, name: str, owner: str, holds: Holds) -> int | None:
        """The server's time of a claim made now, 0 the owner's already, None another's."""
        stale = ""
        for _ in range(_TAKEOVER_ATTEMPTS):
            with mapped_errors():
                holder_raw, number = await self._redis.eval_script(
                    source("claim_name"), [self.key_of(name)], [owner, CLAIM_TTL_MS, stale]
                )
            holder = as_text(holder_raw)
            if holder in ("", "="):
                return int(number)
            if int(number) > 0 or await holds(holder, name):
                return None  # a pending claim (a write in flight) or a live owner's
            stale = holder
        return None

    async def owner_of(self, name: str) -> str:
        """Who the name's key names ("": nobody); the caller checks that owner's state."""
        with mapped_errors():
            return as_text(await self._redis.execute("GET", self.key_of(name)))

    async def adopt(self, earlier_hash: str) -> None:
        """Move earlier versions' one hash of names (name → owner) to one key per name.

        Idempotent (SET NX), so every worker may run it at start; the hash goes last.
        """
        cursor = "0"
        with mapped_errors():
            while True:
                cursor_raw, flat = await self._redis.execute(
                    "HSCAN", earlier_hash, cursor, "COUNT", 1000
                )
                for name, owner in zip(flat[::2], flat[1::2], strict=True):
                    await self._redis.execute("SET", self.key_of(as_text(name)), owner, "NX")
                cursor = as_text(cursor_raw)
                if cursor == "0":
                    break
            await self._redis.execute("DEL", earlier_hash)

    async def release(self, names: list[str], owner: str) -> None:
        """Free claims of a write that did not happen (only those still the owner's)."""
        for name in names:
            with mapped_errors():
                await self._redis.eval_script(source("release"), [self.key_of(name)], [owner])
