"""An auto-pipelining Redis Cluster client: one multiplexed connection per primary.

The same interface as ``storage.multiplex.MultiplexedRedis`` (``execute``, ``execute_many``,
``eval_script``, ``eval_many``, ``close``), so the stores do not know which one they talk
to. Each command goes to the primary that serves its key's slot (redis-py's ``key_slot``:
CRC16 and hash tags), through that node's ``MultiplexedRedis``, so concurrent callers share
one write per node per event-loop tick and each reply stays matched to its caller.

The slot map comes from ``CLUSTER SLOTS`` of a seed node. A ``MOVED`` reply updates the
slot's owner at once and asks for a full refresh (at most one running); an ``ASK`` reply
(a slot half-way through a migration) sends ``ASKING`` and the command to the named node in
one write; ``TRYAGAIN`` and ``CLUSTERDOWN`` are retried after a short pause; a node that
cannot be reached makes the map be read again from another node. At most ``MAX_REDIRECTS``
hops per command, then the last error is raised (redis-py's classes, as everywhere).

Commands without a key (``PING``, ``INFO``, ``SCRIPT LOAD``...) go to one primary;
``each_primary`` sends one to all of them.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.multiplex import (
    CIRCUIT_FAILURES,
    CIRCUIT_OPEN_S,
    COMMAND_TIMEOUT_S,
    Arg,
    MultiplexedRedis,
    ReplyLostError,
)

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SLOTS = 16384
MAX_REDIRECTS = 8
#: Pause before retrying a TRYAGAIN / CLUSTERDOWN / unreachable node, doubled per attempt up
#: to RETRY_PAUSE_MAX_S: a command gives up after about 1.3 s (a 503), not after a failover.
RETRY_PAUSE_S = 0.02
RETRY_PAUSE_MAX_S = 0.25
#: Commands that name no key: sent to any one primary.
KEYLESS = frozenset(
    {"PING", "INFO", "SCRIPT", "DBSIZE", "TIME", "CONFIG", "CLUSTER", "CLIENT", "FLUSHALL",
     "FLUSHDB", "MEMORY STATS", "FUNCTION", "ECHO", "SELECT", "AUTH", "HELLO", "WAIT"}
)  # fmt: skip
#: Commands whose key is their third word (``XINFO STREAM key``, ``MEMORY USAGE key``...).
KEY_THIRD = frozenset({"XINFO", "XGROUP", "OBJECT", "MEMORY"})
NodeAddress = tuple[str, int]


def parse_cluster_url(url: str) -> tuple[str, list[NodeAddress], str]:
    """``redis+cluster://[user:pw@]h1:p1,h2:p2`` → (plain scheme, seeds, credentials part)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"not a cluster URL: {scheme}://...")
    credentials, at, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    seeds: list[NodeAddress] = []
    for part in hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("a cluster URL names host:port seed nodes, comma separated")
        seeds.append((host.strip("[]"), int(port)))
    return SCHEMES[scheme], seeds, f"{credentials}@" if at else ""


def command_key(args: tuple[Arg, ...]) -> Arg | None:
    """The key a command is routed by (its first; a script's first key), None: keyless."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"):
        return args[3] if int(args[2]) > 0 else None
    if name in ("XREAD", "XREADGROUP"):
        words = [str(a).upper() if isinstance(a, str) else a for a in args]
        return args[words.index("STREAMS") + 1]
    if name in KEY_THIRD:
        return args[2] if len(args) > 2 else None
    if name in KEYLESS or len(args) < 2:
        return None
    return args[1]


def slot_of(key: Arg) -> int:
    """Redis Cluster's hash slot of a key (CRC16 of its hash tag, as redis-py computes it)."""
    raw = key if isinstance(key, bytes) else str(key).encode()
    return int(key_slot(raw))


class ClusterRedis:
    """Routes each command to its slot's primary; follows MOVED and ASK (module docstring)."""

    #: Scripts may touch one hash slot per call: the relay splits its work by slot.
    splits_by_slot = True

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = COMMAND_TIMEOUT_S,
        circuit_failures: int = CIRCUIT_FAILURES,
        circuit_open_s: float = CIRCUIT_OPEN_S,
        observe: Callable[[str, float], None] | None = None,
        trace: Callable[[str], AbstractContextManager[None]] | None = None,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 200,
    ) -> None:
        self._scheme, self._seeds, self._credentials = parse_cluster_url(url)
        self._node_options: dict[str, Any] = {
            "timeout_s": timeout_s,
            "circuit_failures": circuit_failures,
            "circuit_open_s": circuit_open_s,
            "observe": observe,
            "trace": trace,
            "wait_replicas": wait_replicas,
            "wait_timeout_ms": wait_timeout_ms,
        }
        self._nodes: dict[NodeAddress, MultiplexedRedis] = {}
        self._slots: list[NodeAddress | None] = [None] * SLOTS
        self._refreshing: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    # -- the interface of MultiplexedRedis ---------------------------------------------------
    @property
    def circuit_open(self) -> bool:
        return any(node.circuit_open for node in self._nodes.values())

    async def execute(self, *args: Arg) -> Any:
        key = command_key(args)
        slot = slot_of(key) if key is not None else None
        return await self._routed(slot, lambda node: node.execute(*args), args)

    async def execute_many(self, *commands: tuple[Arg, ...]) -> list[Any]:
        """Replies in order; commands of one node still share its write (same tick)."""
        if not commands:
            return []
        replies = await asyncio.gather(
            *(self.execute(*command) for command in commands), return_exceptions=True
        )
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return list(replies)

    async def eval_script(self, source: str, keys: list[str], args: list[Arg]) -> Any:
        slot = slot_of(keys[0]) if keys else None
        command = ("EVAL", source, len(keys), *keys, *args)
        return await self._routed(slot, lambda node: node.eval_script(source, keys, args), command)

    async def eval_many(self, source: str, calls: list[tuple[list[str], list[Arg]]]) -> list[Any]:
        """One script over many keys: one write per node, replies in order.

        The calls are grouped by the node the map says owns their slot and sent together
        (a read over a hundred sessions is three writes, not a hundred routed calls). A call
        that meets a slot on the move (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) ran nowhere and is
        sent again alone through the usual routing.
        """
        if len(calls) < 2:
            return [await self.eval_script(source, keys, args) for keys, args in calls]
        await self._ensure_map()
        groups: dict[NodeAddress, list[int]] = {}
        for at, (keys, _) in enumerate(calls):
            groups.setdefault(self._owner(slot_of(keys[0]) if keys else None), []).append(at)
        replies: list[Any] = [None] * len(calls)

        async def send(address: NodeAddress, indexes: list[int]) -> None:
            batch = [(source, calls[at][0], calls[at][1]) for at in indexes]
            try:
                answered = await self._node(address).eval_chain(batch)
            except RedisConnectionError as exc:
                if isinstance(exc, ReplyLostError):
                    raise  # they may have run: never send them twice
                answered = [_UNSENT] * len(indexes)  # not connected: route each afresh
            for at, reply in zip(indexes, answered, strict=True):
                if reply is _UNSENT or (
                    isinstance(reply, ResponseError) and str(reply).startswith(_MOVING)
                ):
                    reply = await self.eval_script(source, *calls[at])
                elif isinstance(reply, ResponseError):
                    raise reply
                replies[at] = reply

        if len(groups) == 1:  # one node: no task per group
            await send(*next(iter(groups.items())))
        else:
            await asyncio.gather(*(send(address, indexes) for address, indexes in groups.items()))
        return replies

    async def eval_chain(self, calls: list[tuple[str, list[str], list[Arg]]]) -> list[Any]:
        """Several scripts in order, each on its own slot's node; errors as values.

        (One node sends them in one write; here they may live on different nodes.)
        """
        replies: list[Any] = []
        for source, keys, args in calls:
            try:
                replies.append(await self.eval_script(source, keys, args))
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def each_primary(self, *args: Arg) -> dict[NodeAddress, Any]:
        """The same keyless command on every primary (``SCRIPT LOAD``, ``FLUSHALL``, ``INFO``)."""
        await self._ensure_map()
        owners = sorted({owner for owner in self._slots if owner is not None})
        replies = await asyncio.gather(*(self._node(owner).execute(*args) for owner in owners))
        return dict(zip(owners, replies, strict=True))

    async def slots_by_primary(self) -> list[list[int]]:
        """The hash slots each primary serves now (the relay's repair asks each once)."""
        await self._ensure_map()
        by_owner: dict[NodeAddress, list[int]] = {}
        for slot, owner in enumerate(self._slots):
            if owner is not None:
                by_owner.setdefault(owner, []).append(slot)
        return list(by_owner.values())

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.close()

    # -- routing -----------------------------------------------------------------------------
    async def _routed(
        self,
        slot: int | None,
        call: Callable[[MultiplexedRedis], Awaitable[Any]],
        command: tuple[Arg, ...],
    ) -> Any:
        await self._ensure_map()
        address = self._owner(slot)
        asking = False
        last: Exception | None = None
        for attempt in range(MAX_REDIRECTS):
            node = self._node(address)
            try:
                if asking:
                    return (await node.execute_many(("ASKING",), command))[1]
                return await call(node)
            except ResponseError as exc:
                last = exc
                kind, _, rest = str(exc).partition(" ")
                if kind == "MOVED":
                    address = _target(rest)
                    if slot is not None:
                        self._slots[slot] = address
                    self._refresh_soon()
                    asking = False
                elif kind == "ASK":
                    address, asking = _target(rest), True
                elif kind in ("TRYAGAIN", "CLUSTERDOWN"):
                    await asyncio.sleep(_pause(attempt))
                    if kind == "CLUSTERDOWN":
                        await self._refresh()
                        address = self._owner(slot)
                else:
                    raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if isinstance(exc, RedisTimeoutError | ReplyLostError):
                    raise  # the command may have run: never send it twice
                last = exc
                await asyncio.sleep(_pause(attempt))
                await self._refresh(avoid=address)
                address, asking = self._owner(slot), False
        assert last is not None  # noqa: S101 - the loop ran at least once
        raise last

    def _owner(self, slot: int | None) -> NodeAddress:
        if slot is None:
            owners = [owner for owner in self._slots if owner is not None]
            return owners[0] if owners else self._seeds[0]
        owner = self._slots[slot]
        if owner is None:
            raise RedisConnectionError(f"no node serves slot {slot} (cluster map incomplete)")
        return owner

    def _node(self, address: NodeAddress) -> MultiplexedRedis:
        node = self._nodes.get(address)
        if node is None:
            host, port = address
            url = f"{self._scheme}://{self._credentials}{host}:{port}"
            node = self._nodes[address] = MultiplexedRedis(url, **self._node_options)
        return node

    # -- the slot map ------------------------------------------------------------------------
    async def _ensure_map(self) -> None:
        if not self._loaded.is_set():
            await self._refresh()

    def _refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self, avoid: NodeAddress | None = None) -> None:
        """Read ``CLUSTER SLOTS`` from the first node that answers (known nodes, then seeds)."""
        known = [address for address in self._nodes if address != avoid]
        candidates = [*random.sample(known, len(known)), *self._seeds]
        errors: list[str] = []
        for address in dict.fromkeys(candidates):
            try:
                reply = await self._node(address).execute("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisTimeoutError, ResponseError, OSError) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            self._apply(reply, address)
            return
        raise RedisConnectionError("no cluster node answered CLUSTER SLOTS: " + "; ".join(errors))

    def _apply(self, reply: Iterable[Any], asked: NodeAddress) -> None:
        slots: list[NodeAddress | None] = [None] * SLOTS
        for entry in reply:
            first, last, primary = int(entry[0]), int(entry[1]), entry[2]
            host = _text(primary[0]) or asked[0]  # "" or "?" : the node asked
            address = (asked[0] if host == "?" else host, int(primary[1]))
            for slot in range(first, last + 1):
                slots[slot] = address
        self._slots = slots
        self._loaded.set()


#: Replies that mean "not run here, the slot is elsewhere or on the move": safe to resend.
_MOVING = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")
#: A call whose node could not be reached (marker, never a reply).
_UNSENT = object()


def _pause(attempt: int) -> float:
    return float(min(RETRY_PAUSE_S * 2**attempt, RETRY_PAUSE_MAX_S))


def _target(rest: str) -> NodeAddress:
    """``"<slot> host:port"`` of a MOVED / ASK reply."""
    host, _, port = rest.split(" ", 1)[1].rpartition(":")
    return host, int(port)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
