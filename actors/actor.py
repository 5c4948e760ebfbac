"""SessionActor: the single writer of one session inside one worker process.

Theory of operation:

- One actor (one task) per live session per process; commands queue in a bounded mailbox
  and run strictly one after another, so the rules always see the latest state.
- Across processes, the actor holds the session's Redis lease (with a fencing token) only
  while it has work: it takes the lease and the state in one script, handles every queued
  command, and gives the lease back with the last commit. Other workers' actors wait for it
  (bounded by ``lease_wait_ms``, then 409 Aborted), so contention costs milliseconds, not an
  idle timeout.
- A commit whose lease expired or was taken over is refused by the storage (fencing), the
  command fails with 409 and the cached state is dropped; nothing half-written survives.
- An actor never dies with requests waiting: any failure, a ServiceError or not (a Redis
  error reply nobody mapped, a bug), fails only the command it happened to, and the actor
  goes on (reloading the state, which may be stale after a failed commit).
- After ``idle_s`` without messages the actor stops; checking the mailbox and deregistering
  happen with no ``await`` in between (in one timer callback), so no message can slip in
  unseen. One timer per actor, armed when work ends if none is pending, re-armed if it
  fires early: a busy actor pays nothing per message for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import structlog

from actors.commands import Command
from actors.errors import ActorStopped, Internal, LeaseLost, MailboxFull, ServiceError
from actors.execute import Deps, Outcome, execute
from actors.model import SessionState, UserRef
from actors.permissions import Caller
from actors.ports import Acquired, Lease, SessionStore

log = structlog.get_logger("sessiond.actor")


def _unexpected(session_id: str, exc: Exception) -> Internal:
    """A failure nothing mapped: logged once, in one line, and answered as a 500."""
    log.error("session command failed", session_id=session_id, error=repr(exc)[:500])
    return Internal("SESSION-internal", "Errors.Internal")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A command and the future its asker awaits."""

    command: Command
    user: UserRef | None
    caller: Caller
    reply: asyncio.Future[Outcome]


@dataclass(frozen=True, slots=True)
class ActorConfig:
    lease_ttl_ms: int
    lease_wait_ms: int
    idle_s: float
    mailbox_size: int
    #: Called each time the lease was held by another writer and this actor waits for it
    #: (the lease-wait metric); None: nobody counts.
    on_lease_wait: Callable[[], None] | None = None


class SessionActor:
    """Serialises all writes to one session within this process (see module docstring)."""

    def __init__(
        self,
        session_id: str,
        store: SessionStore,
        deps: Deps,
        config: ActorConfig,
        on_exit: Callable[[SessionActor], None],
    ) -> None:
        self.session_id = session_id
        self._store = store
        self._deps = deps
        self._config = config
        self._on_exit = on_exit
        #: ``None`` is the stop message: it queues behind pending work, so that work finishes.
        self._mailbox: asyncio.Queue[Envelope | None] = asyncio.Queue(
            maxsize=config.mailbox_size + 1
        )
        self._capacity = config.mailbox_size
        self._owner = f"{secrets.token_hex(8)}:{session_id}"
        #: loop time the last work ended; ``None`` while working
        self._idle_since: float | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._exited = False

    def tell(self, envelope: Envelope) -> None:
        """Queue a command; a full mailbox is refused at once (429), never awaited."""
        if self._mailbox.qsize() >= self._capacity:
            raise MailboxFull(self.session_id)
        self._mailbox.put_nowait(envelope)

    def stop(self) -> None:
        """Ask the actor to stop once the work already queued is done."""
        self._mailbox.put_nowait(None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._mailbox.empty():  # else the idle timer is armed once that work is done
            self._idle_since = idle_since = loop.time()
            self._arm_idle_timer(loop, idle_since)
        try:
            while True:
                envelope = await self._mailbox.get()
                if envelope is None:
                    self._exit()
                    return
                self._idle_since = None
                await self._work(envelope)
                self._idle_since = idle_since = loop.time()
                if self._idle_timer is None:
                    self._arm_idle_timer(loop, idle_since)
        except BaseException:
            self._exit()
            raise

    def _arm_idle_timer(self, loop: asyncio.AbstractEventLoop, idle_since: float) -> None:
        self._idle_timer = loop.call_at(idle_since + self._config.idle_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        """The idle timer: armed when work ends, unless already pending, not per message."""
        self._idle_timer = None
        idle_since = self._idle_since
        if idle_since is None or not self._mailbox.empty():
            return  # working, or about to: the timer is armed again when that work ends
        loop = asyncio.get_running_loop()
        if loop.time() < idle_since + self._config.idle_s:
            self._arm_idle_timer(loop, idle_since)  # worked since the timer was armed
            return
        self._exit()  # the mailbox is empty: deregistered with no await in between
        self._mailbox.put_nowait(None)  # wakes run(), which returns

    async def _work(self, first: Envelope) -> None:
        """Take the lease, handle ``first`` and everything queued behind it, give it back."""
        try:
            acquired = await self._acquire()
        except ServiceError as exc:
            _fail(first, exc)
            return
        except Exception as exc:
            _fail(first, _unexpected(self.session_id, exc))
            return
        lease, state, released = acquired.lease, acquired.state, False
        envelope = first
        try:
            while True:
                state, released = await self._handle(envelope, lease, state)
                if released or self._mailbox.empty():
                    break
                queued = self._mailbox.get_nowait()
                if queued is None:
                    self._mailbox.put_nowait(None)  # handled by run() after the lease is back
                    break
                envelope = queued
        except LeaseLost:
            pass  # the command was failed with it; the next message re-acquires and reloads
        except BaseException:
            _fail(envelope, ActorStopped(self.session_id))  # cancelled (shutdown) mid-command
            raise
        finally:
            if not released:
                await self._release(lease)

    async def _release(self, lease: Lease) -> None:
        """Give the lease back; if that fails it simply expires, so the actor carries on."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self._store.release(lease))

    async def _acquire(self) -> Acquired:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.lease_wait_ms / 1000
        pause_s = 0.002
        while True:
            acquired = await self._store.acquire(
                self.session_id, self._owner, self._config.lease_ttl_ms
            )
            if acquired is not None:
                return acquired
            if self._config.on_lease_wait is not None:
                self._config.on_lease_wait()
            if loop.time() >= deadline:
                raise LeaseLost(self.session_id)
            await asyncio.sleep(pause_s * (1 + random.random()))  # noqa: S311 - jitter only
            pause_s = min(pause_s * 2, 0.05)

    async def _handle(
        self,
        envelope: Envelope,
        lease: Lease,
        state: SessionState | None,
    ) -> tuple[SessionState | None, bool]:
        """Run one command; returns the state to continue with and whether the lease is gone."""
        try:
            outcome = await execute(
                state, self.session_id, envelope.command, envelope.user, envelope.caller, self._deps
            )
        except ServiceError as exc:
            _fail(envelope, exc)
            return state, False
        except Exception as exc:
            _fail(envelope, _unexpected(self.session_id, exc))
            return state, False
        if not outcome.events:
            _reply(envelope, outcome)
            return state, False
        assert outcome.state is not None  # noqa: S101 - events always evolve into a state
        release = self._mailbox.empty()
        try:
            evicted = await self._store.commit(
                lease,
                state,
                outcome.state,
                list(outcome.events),
                at_ms=outcome.at_ms,
                creator_id=envelope.caller.user_id,
                release=release,
                jobs=outcome.jobs,
            )
        except Exception as exc:
            error = exc if isinstance(exc, ServiceError) else _unexpected(self.session_id, exc)
            _fail(envelope, error)
            raise LeaseLost(self.session_id) from exc  # state unknown now: reload next time
        if evicted:
            outcome = msgspec.structs.replace(outcome, evicted=tuple(evicted))
        _reply(envelope, outcome)
        return outcome.state, release

    def _exit(self) -> None:
        if not self._exited:
            self._exited = True
            self._on_exit(self)  # deregister first, synchronously
            if self._idle_timer is not None:
                self._idle_timer.cancel()
        while not self._mailbox.empty():
            queued = self._mailbox.get_nowait()
            if queued is not None:
                _fail(queued, ActorStopped(self.session_id))


def _reply(envelope: Envelope, outcome: Outcome) -> None:
    if not envelope.reply.done():  # the asker may have given up
        envelope.reply.set_result(outcome)


def _fail(envelope: Envelope, exc: BaseException) -> None:
    if not envelope.reply.done():
        envelope.reply.set_exception(exc)
