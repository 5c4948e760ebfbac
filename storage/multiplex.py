"""An auto-pipelining Redis connection: many concurrent callers, one socket, one write per tick.

redis-py spends most of a command's cost in Python (pool checkout, locks, per-command parsing
setup): ~80 µs of CPU per command here. This connection packs each command with hiredis (C),
appends it to a buffer that is written once per event-loop tick, and matches replies to the
waiting futures in FIFO order with hiredis's reader — the technique of ioredis and lettuce.
Redis answers pipelined commands in order, so FIFO matching is exact; a caller that gives up
(cancellation) leaves its future in the queue to absorb its reply, so the stream never slips.

Errors use redis-py's exception classes, so ``storage.errors.mapped_errors`` handles both
clients alike. On connection loss every waiting command fails with ``ConnectionError`` and
the next command reconnects.

Every command is bounded by ``timeout_s``. A server that stops answering (frozen, swapped
out, a network partition) would otherwise make every request wait that long, and pile up:
after ``circuit_failures`` timeouts in a row the circuit opens and commands fail at once
(``CircuitOpenError``, a ``ConnectionError``) for ``circuit_open_s``; then commands go through
again, the first success closes the circuit and another timeout opens it at once.

The bound is kept by one watchdog timer per connection, not one per command: replies come
in order, so only the oldest waiting command can be the first to run late, and when it does
the connection is stuck for everyone behind it. The watchdog fails every waiting command
and drops the connection. (A timer per command and ``gather`` per batch cost ~14 µs of
client CPU per command and two-command batch: ``bench/connection_cpu.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cache, lru_cache
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Defaults; the service passes SESSIOND_REDIS_TIMEOUT_MS and the circuit settings.
COMMAND_TIMEOUT_S = 2.0
CIRCUIT_FAILURES = 3
CIRCUIT_OPEN_S = 1.0
Arg = str | bytes | int | float


class CircuitOpenError(RedisConnectionError):
    """Raised without trying while Redis recently stopped answering (see module docstring)."""


class ReplyLostError(RedisConnectionError):
    """The connection was lost after the command was queued: it may have run (never resend)."""


class NotReplicatedError(RedisTimeoutError):
    """A write ran on the primary, but fewer replicas than asked confirmed it in time."""


#: The first line of a script that writes nothing: no WAIT after it.
READ_ONLY_MARK = "--#read-only"


class _Circuit:
    """Consecutive timeouts open it; the first answer after ``open_s`` closes it."""

    def __init__(self, failures: int, open_s: float) -> None:
        self._failures = max(1, failures)
        self._open_s = open_s
        self._timeouts = 0
        self._open_until = 0.0

    def check(self, now: float) -> None:
        if self._timeouts >= self._failures and now < self._open_until:
            raise CircuitOpenError("Redis stopped answering; failing fast until it does again")

    def succeeded(self) -> None:
        self._timeouts = 0

    def timed_out(self, now: float) -> None:
        self._timeouts += 1
        if self._timeouts >= self._failures:
            self._open_until = now + self._open_s

    @property
    def is_open(self) -> bool:
        return self._timeouts >= self._failures


class _Protocol(asyncio.Protocol):
    """Writes batched commands and resolves the oldest waiting future per reply."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        on_timeout: Callable[[int], None],
    ) -> None:
        self._loop = loop
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        #: When each waiting command was sent, in the same order (the watchdog reads the head).
        self._sent_at: deque[float] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport; uvloop's do not subclass asyncio.Transport, hence no isinstance
        self.transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes, sent_at: float) -> asyncio.Future[Any]:
        """Queue one packed command; ``sent_at`` (the loop's clock) starts its timeout."""
        if self.lost is not None:
            raise RedisConnectionError(f"connection lost: {self.lost}")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting.append(future)
        self._sent_at.append(sent_at)
        self._outgoing.append(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(sent_at + self._timeout_s, self._watch)
        return future

    def _watch(self) -> None:
        """Fail everything if the oldest command is late; else look again when it would be."""
        self._watchdog = None
        if not self._sent_at:
            return
        due = self._sent_at[0] + self._timeout_s
        if self._loop.time() < due:
            self._watchdog = self._loop.call_at(due, self._watch)
            return
        self.lost = RedisTimeoutError("Redis did not answer in time")
        self._on_timeout(self._fail_all(self.lost))
        if self.transport is not None:
            self.transport.abort()

    def _fail_all(self, error: Exception) -> int:
        """Fail every waiting command; how many had a caller still waiting."""
        failed = 0
        self._sent_at.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
                failed += 1
        return failed

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and self._outgoing:
            self.transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future = self._waiting.popleft()
            self._sent_at.popleft()
            if future.done():  # its caller gave up; the reply is simply consumed
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.lost is None:  # not the watchdog's own abort
            self.lost = exc or RedisConnectionError("closed by the server")
        self._fail_all(ReplyLostError(f"connection lost: {self.lost}"))


class MultiplexedRedis:
    """One shared connection per worker for all of its concurrent commands."""

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
        self._options = parse_url(url)
        #: > 0: every write script is followed, in the same write, by ``WAIT n timeout``
        self._wait = ("WAIT", wait_replicas, wait_timeout_ms) if wait_replicas > 0 else None
        #: Told each command's name and seconds from send to reply (the metrics' hook).
        self._observe = observe
        #: Wraps each command or batch, given its name (the tracing hook; None: off).
        self._trace = trace
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()
        self._timeout_s = timeout_s
        self._circuit = _Circuit(circuit_failures, circuit_open_s)

    @property
    def circuit_open(self) -> bool:
        return self._circuit.is_open

    async def execute(self, *args: Arg) -> Any:
        """Send one command (auto-pipelined with every other caller's) and await its reply."""
        if self._trace is None:
            return await self._execute(args)
        with self._trace(str(args[0])):
            return await self._execute(args)

    async def _execute(self, args: tuple[Arg, ...]) -> Any:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._circuit.check(started)
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connected(loop)
        reply = await protocol.send(_pack(args), started)  # the watchdog bounds the wait
        self._circuit.succeeded()
        if self._observe is not None:
            self._observe(str(args[0]), loop.time() - started)
        return reply

    async def _connected(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        """A live connection, made within the command timeout (no watchdog yet)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._connect()
        except TimeoutError:
            self._circuit.timed_out(loop.time())
            raise RedisTimeoutError("Redis did not answer in time") from None

    async def execute_many(self, *commands: tuple[Arg, ...]) -> list[Any]:
        """Several commands in the same write; replies in order (one round trip)."""
        if self._trace is None or not commands:
            return await self._execute_many(commands)
        with self._trace(str(commands[0][0])):
            return await self._execute_many(commands)

    async def _execute_many(self, commands: tuple[tuple[Arg, ...], ...]) -> list[Any]:
        replies = await self._send_all(commands)
        for reply in replies:  # every reply was collected, so none is left unread
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def eval_script(self, source: str, keys: list[str], args: list[Arg]) -> Any:
        """EVALSHA, falling back to EVAL (which caches the script) after a server restart."""
        if self._wait is not None and not _read_only(source):
            return (await self.eval_many(source, [(keys, args)]))[0]
        sha = _sha1(source)
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.execute("EVAL", source, len(keys), *keys, *args)

    async def eval_many(self, source: str, calls: list[tuple[list[str], list[Arg]]]) -> list[Any]:
        """One script, several calls, one round trip; replies in order.

        With ``wait_replicas``, a ``WAIT`` follows a write script in the same write: the
        replies come once that many replicas have the writes, or NotReplicatedError.
        """
        sha = _sha1(source)
        commands = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls]
        wait = self._wait if not _read_only(source) else None
        if wait is not None:
            commands.append(wait)
        try:
            replies = await self.execute_many(*commands)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            await self.execute("SCRIPT", "LOAD", source)
            replies = await self.execute_many(*commands)
        if wait is None:
            return replies
        acknowledged = int(replies.pop())
        _check_replicated(acknowledged, wait)
        return replies

    async def eval_chain(self, calls: list[tuple[str, list[str], list[Arg]]]) -> list[Any]:
        """Several scripts in one write, run in order; each reply, or its error as a value.

        A call that met NOSCRIPT (a restarted server) did not run; from the first such call
        on, each call is run again in order (EVALSHA with EVAL's fallback). The calls after
        it ran without it, so they must guard themselves (the relay's pass does).
        With ``wait_replicas`` a ``WAIT`` follows when any call may write.
        """
        commands: list[tuple[Arg, ...]] = [
            ("EVALSHA", _sha1(source), len(keys), *keys, *args) for source, keys, args in calls
        ]
        wait = None
        if self._wait is not None and not all(_read_only(call[0]) for call in calls):
            wait = self._wait
            commands.append(wait)
        with self._trace("EVALSHA") if self._trace is not None else contextlib.nullcontext():
            replies = list(await self._send_all(tuple(commands)))
        acknowledged = int(replies.pop()) if wait is not None else 0
        for at, reply in enumerate(replies):
            if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
                for later in range(at, len(calls)):
                    source, keys, args = calls[later]
                    try:
                        replies[later] = await self.eval_script(source, keys, args)
                    except ResponseError as exc:
                        replies[later] = exc
                break
        if wait is not None:
            _check_replicated(acknowledged, wait)
        return replies

    async def _send_all(self, commands: tuple[tuple[Arg, ...], ...]) -> list[Any]:
        """``_execute_many`` that hands back error replies instead of raising them."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._circuit.check(started)
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connected(loop)
        futures = [protocol.send(_pack(command), started) for command in commands]
        replies = await _in_order(futures)
        self._circuit.succeeded()
        if self._observe is not None and commands:
            self._observe(str(commands[0][0]), loop.time() - started)
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(reply, ResponseError):
                raise reply
        return replies

    async def _connect(self) -> _Protocol:
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await self._open(loop)
            except OSError as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            try:
                await self._handshake(protocol)
            except BaseException:
                self._abort(protocol)  # never published: nobody else would close it
                raise
            self._protocol = protocol  # published only once AUTH/SELECT are done
            return protocol

    async def _open(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[asyncio.BaseTransport, _Protocol]:
        options = self._options

        def factory() -> _Protocol:
            return _Protocol(loop, self._timeout_s, self._commands_timed_out)

        if "path" in options:
            return await loop.create_unix_connection(factory, options["path"])
        tls = (
            ssl.create_default_context() if "SSL" in str(options.get("connection_class")) else None
        )
        return await loop.create_connection(
            factory, options.get("host", "localhost"), int(options.get("port", 6379)), ssl=tls
        )

    def _commands_timed_out(self, count: int) -> None:
        """The watchdog failed ``count`` commands: each counts, as if each had its own timer."""
        now = asyncio.get_running_loop().time()
        for _ in range(count):
            self._circuit.timed_out(now)

    async def _handshake(self, protocol: _Protocol) -> None:
        password = self._options.get("password")
        if password:
            username = self._options.get("username")
            auth = ("AUTH", *([username] if username else []), password)
            await protocol.send(_pack(auth), asyncio.get_running_loop().time())
        database = int(self._options.get("db") or 0)
        if database:
            await protocol.send(_pack(("SELECT", database)), asyncio.get_running_loop().time())

    def _abort(self, protocol: _Protocol) -> None:
        if protocol.transport is not None:
            protocol.transport.abort()

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            await asyncio.sleep(0)  # let connection_lost run while the loop is alive


async def _in_order(futures: list[asyncio.Future[Any]]) -> list[Any]:
    """Each future's result, or its error as a value: ``gather`` for one connection's replies.

    Replies come in order, so once the last future is resolved every earlier one is too;
    awaiting just the last spares ``gather``'s task and callbacks per command.
    """
    if not futures:
        return []
    try:
        with contextlib.suppress(Exception):  # the last reply's own error: collected below
            await futures[-1]
    except asyncio.CancelledError:  # the caller gave up: its replies are only absorbed
        for future in futures:
            future.cancel()
        raise
    return [future.exception() or future.result() for future in futures]


def _pack(args: tuple[Arg, ...]) -> bytes:
    """RESP-encode one command in C (hiredis's stub wrongly types the argument as a 1-tuple)."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
    return packed


@cache
def _check_replicated(acknowledged: int, wait: tuple[str, int, int]) -> None:
    if acknowledged < int(wait[1]):
        raise NotReplicatedError(
            f"the write ran on the primary; {acknowledged} of {wait[1]} replicas "
            f"confirmed it within {wait[2]} ms"
        )


@lru_cache(maxsize=64)
def _read_only(source: str) -> bool:
    """Marked read-only: the comment mark, or Redis's own ``no-writes`` script flag."""
    first = source.split("\n", 1)[0]
    return first.startswith(READ_ONLY_MARK) or (first.startswith("#!") and "no-writes" in first)


@lru_cache(maxsize=64)
def _sha1(source: str) -> str:
    """A script's digest, once per script (the few sources are the same str objects)."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def as_dict(flat: list[Any]) -> dict[bytes | str, bytes | str]:
    """Turn a flat ``[k1, v1, k2, v2, ...]`` reply (HGETALL in RESP2) into a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))
