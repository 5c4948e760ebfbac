"""SessionRegistry: finds or starts the actor of a session and asks it; creates sessions.

Like aiojobs' Scheduler: it keeps strong references to every actor task, refuses new work
once closing, and on close tells every actor to stop, waits, then cancels stragglers.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

from actors.actor import ActorConfig, Envelope, SessionActor
from actors.commands import Command, CreateSession, DeleteSession
from actors.errors import AlreadyExists, DeadlineExceeded, ServiceError, Unavailable
from actors.execute import Deps, Outcome, execute
from actors.model import UserRef
from actors.permissions import SYSTEM, Caller
from actors.ports import SessionStore

CREATE_ATTEMPTS = 3
#: Ending a session over the per-user cap: the service's own decision, with its reason.
EVICT = DeleteSession(reason="evicted")


class SessionRegistry:
    def __init__(
        self,
        store: SessionStore,
        deps: Deps,
        config: ActorConfig,
        *,
        ask_timeout_s: float,
        new_session_id: Callable[[], str],
    ) -> None:
        self._store = store
        self._deps = deps
        self._config = config
        self._ask_timeout_s = ask_timeout_s
        self._new_session_id = new_session_id
        self._actors: dict[str, SessionActor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def live_actors(self) -> int:
        return len(self._actors)

    async def ask(
        self, session_id: str, command: Command, *, user: UserRef | None, caller: Caller
    ) -> Outcome:
        """Have the session's actor run ``command``; it finishes even if we stop waiting."""
        if self._closing:
            raise Unavailable("SESSION-closing", "Errors.Session.Unavailable")
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Outcome] = loop.create_future()
        self._actor(session_id).tell(
            Envelope(command=command, user=user, caller=caller, reply=reply)
        )
        # One timer instead of asyncio.timeout() + shield(): a reply that is already done
        # (timed out, or cancelled with this request) is skipped by the actor, nothing else.
        expiry = loop.call_later(self._ask_timeout_s, _time_out, reply)
        try:
            outcome = await reply
        finally:
            expiry.cancel()
        await self._evict(outcome.evicted)
        return outcome

    async def _evict(self, session_ids: tuple[str, ...]) -> None:
        """End the sessions a commit pushed over the per-user cap, before answering.

        Each goes through its own actor, as any delete; one that fails here stays pending
        and the sweeper ends it (``end_pending_evictions``).
        """
        for session_id in session_ids:
            await self.end_evicted(session_id)

    async def end_evicted(self, session_id: str) -> bool:
        """End one evicted session (idempotent); False if that failed for now."""
        try:
            await self.ask(session_id, EVICT, user=None, caller=SYSTEM)
        except ServiceError:
            return False
        await self._store.forget_eviction(session_id)
        return True

    async def end_pending_evictions(self, before_ms: int, limit: int = 100) -> int:
        """The repair path: evictions a crashed worker left unfinished. Returns how many."""
        ended = 0
        for session_id in await self._store.pending_evictions(before_ms, limit):
            ended += await self.end_evicted(session_id)
        return ended

    async def create(
        self, command: CreateSession, *, user: UserRef | None, caller: Caller
    ) -> Outcome:
        """A new session needs no actor: its fresh id has no other writer (create.lua guards)."""
        for _ in range(CREATE_ATTEMPTS):
            session_id = self._new_session_id()
            outcome = await execute(None, session_id, command, user, caller, self._deps)
            assert outcome.state is not None  # noqa: S101 - a create always produces events
            try:
                evicted = await self._store.create(
                    outcome.state,
                    list(outcome.events),
                    at_ms=outcome.at_ms,
                    creator_id=caller.user_id,
                    jobs=outcome.jobs,
                )
            except AlreadyExists as exc:
                if exc.error_id != "SESSION-exists":
                    raise
                continue
            await self._evict(tuple(evicted))
            return outcome
        raise ServiceError("SESSION-idspace", "Errors.Internal")

    def _actor(self, session_id: str) -> SessionActor:
        actor = self._actors.get(session_id)
        if actor is None:
            actor = SessionActor(
                session_id, self._store, self._deps, self._config, on_exit=self._forget
            )
            self._actors[session_id] = actor
            # A fresh context: the actor outlives the request that started it, and must not
            # log under that request's id (structlog's contextvars) for later commands.
            task = asyncio.create_task(
                actor.run(), name=f"session-actor:{session_id}", context=contextvars.Context()
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return actor

    def _forget(self, actor: SessionActor) -> None:
        if self._actors.get(actor.session_id) is actor:
            del self._actors[actor.session_id]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop accepting work, let actors finish what they hold, cancel what is left."""
        self._closing = True
        for actor in list(self._actors.values()):
            actor.stop()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _time_out(reply: asyncio.Future[Outcome]) -> None:
    if not reply.done():
        reply.set_exception(DeadlineExceeded("SESSION-timeout", "Errors.Session.Timeout"))
