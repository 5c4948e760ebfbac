"""PingOne's Sessions API over the same sessions, actors and rules as ZITADEL's.

A thin translation: requests become the commands every session takes (a create or set with
a ``SignOnReport``, a touch, a reset, a delete), naming the session by id or by its PingOne
token (``Cookie: ST``, kept only as a keyed hash); states become PingOne's resource
(``app.services.pingone_wire``). Reads by id go straight to storage; a read by token
records activity through the actor at most once per ``ActivityPolicy.granularity_ms``.
"""

from __future__ import annotations

import msgspec

from actors import activity
from actors.activity import ActivityPolicy
from actors.commands import (
    Checks,
    CreateSession,
    DeleteSession,
    ResetAuthentication,
    SetSession,
    SignOnReport,
    TouchSession,
    UserCheck,
)
from actors.errors import NotFound, PermissionDenied
from actors.machine import session_not_found
from actors.model import SessionState, UserAgent, UserRef
from actors.permissions import Caller
from actors.ports import Clock
from actors.queries import Page, SessionFilter
from actors.registry import SessionRegistry
from app.services import pingone_wire as wire
from app.services.pingone_wire import InvalidField
from app.services.ports import SessionReads, UserDirectory
from app.services.sealing import Keyring

#: The keyed-hash purpose of PingOne session tokens.
ST_PURPOSE = "pingone-st"
#: A user's listing when no per-user cap bounds it.
DEFAULT_USER_LISTING = 100
#: Sessions ended per page by "sign out everywhere".
_SIGN_OUT_PAGE = 200


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    """What the HTTP request itself tells: where links point and who is connected."""

    base_url: str
    env_id: str
    client_ip: str


class PingOneSessionService:
    def __init__(
        self,
        registry: SessionRegistry,
        reads: SessionReads,
        users: UserDirectory,
        keyring: Keyring,
        clock: Clock,
        *,
        environment_id: str,
        policy: ActivityPolicy,
        listing_limit: int,
    ) -> None:
        self.environment_id = environment_id
        self._registry = registry
        self._reads = reads
        self._users = users
        self._keyring = keyring
        self._clock = clock
        self._policy = policy
        self._listing_limit = listing_limit or DEFAULT_USER_LISTING

    def token_hash(self, token: str) -> str:
        return self._keyring.digest(ST_PURPOSE, token)

    # -- the environment's sessions -------------------------------------------------------
    async def create(self, caller: Caller, edge: Edge, body: wire.SessionIn) -> wire.SessionOut:
        given = wire.validate(body)
        user = await self._user(given.user_id)
        command = CreateSession(
            checks=Checks(user=UserCheck(user_id=user.id)) if user else Checks(),
            user_agent=_zitadel_agent(given, edge),
            report=self._report(given, edge),
        )
        outcome = await self._registry.create(command, user=user, caller=caller)
        assert outcome.state is not None  # noqa: S101 - a create always produces a state
        return self._render(outcome.state, edge)

    async def get(self, caller: Caller, edge: Edge, session_id: str) -> wire.SessionOut:
        """An unexpired session by id."""
        state = await self._reads.read_state(session_id)
        if state is None or state.terminated or state.is_expired(self._clock.now_ms()):
            raise session_not_found()
        _may_read(caller, state)
        return self._render(state, edge)

    # -- by the session token -------------------------------------------------------------
    async def get_me(self, caller: Caller, edge: Edge, token: str) -> wire.SessionOut:
        """The token's session; a read is activity, written at most once per granule."""
        presented = self.token_hash(token)
        state = await self._by_token(presented)
        _may_read(caller, state)
        if activity.is_due(state, self._clock.now_ms(), self._policy):
            outcome = await self._registry.ask(
                state.id, TouchSession(presented_st_hash=presented), user=None, caller=caller
            )
            state = outcome.state or state
        return self._render(state, edge)

    async def put_me(
        self, caller: Caller, edge: Edge, token: str, body: wire.SessionIn
    ) -> wire.SessionOut:
        presented = self.token_hash(token)
        given = wire.validate(body)
        state = await self._by_token(presented)
        user = await self._user(given.user_id)
        command = SetSession(
            checks=Checks(user=UserCheck(user_id=user.id))
            if user and user.id != state.user_id
            else Checks(),
            report=self._report(given, edge),
            presented_st_hash=presented,
        )
        outcome = await self._registry.ask(state.id, command, user=user, caller=caller)
        return self._render(outcome.state or state, edge)

    async def delete_me(self, caller: Caller, token: str) -> None:
        await self._ask_by_token(caller, token, DeleteSession)

    async def logout_me(self, caller: Caller, token: str) -> None:
        """PingOne's SSO sign-out: the session stays, every factor but the user is cleared."""
        await self._ask_by_token(caller, token, ResetAuthentication)

    async def _ask_by_token(
        self, caller: Caller, token: str, kind: type[DeleteSession | ResetAuthentication]
    ) -> None:
        """The token's session runs ``kind``; the actor checks the token is still its own."""
        presented = self.token_hash(token)
        state = await self._by_token(presented)
        command = kind(presented_st_hash=presented)
        await self._registry.ask(state.id, command, user=None, caller=caller)

    # -- a user's sessions ----------------------------------------------------------------
    async def list_of_user(self, caller: Caller, edge: Edge, user_id: str) -> wire.SessionList:
        """Newest first, expired ones (still retained) included, at most the per-user cap."""
        await self._existing_user(user_id)
        states = await self._states_of(caller, user_id, self._listing_limit)
        return wire.render_list(states, base_url=edge.base_url, env_id=edge.env_id, user_id=user_id)

    async def get_of_user(
        self, caller: Caller, edge: Edge, user_id: str, session_id: str
    ) -> wire.SessionOut:
        state = await self._of_user(user_id, session_id)
        _may_read(caller, state)
        return self._render(state, edge)

    async def delete_of_user(self, caller: Caller, user_id: str, session_id: str) -> None:
        state = await self._of_user(user_id, session_id)
        await self._registry.ask(state.id, DeleteSession(), user=None, caller=caller)

    async def delete_all_of_user(self, caller: Caller, user_id: str, keep: str | None) -> int:
        """End every session of the user but ``keep`` that exists when this starts.

        Oldest first, page by page, up to the sessions created at the moment it started: a
        stream of concurrent creates cannot keep it running. Each ends through its actor, as
        any delete (and as the cap's evictions), so a session is never ended twice or half-way.
        """
        await self._existing_user(user_id)
        if keep is not None:
            await self._of_user(user_id, keep)
        started_ms = self._clock.now_ms()
        ended: set[str] = set()
        while True:
            page = [
                state
                for state in await self._states_of(
                    caller, user_id, _SIGN_OUT_PAGE, newest_first=False
                )
                if state.id != keep and state.id not in ended and state.creation_ms <= started_ms
            ]
            if not page:
                return len(ended)
            for state in page:
                await self._registry.ask(state.id, DeleteSession(), user=None, caller=caller)
                ended.add(state.id)

    # -- helpers --------------------------------------------------------------------------
    def _report(self, given: wire.Validated, edge: Edge) -> SignOnReport:
        now_ms = self._clock.now_ms()
        return SignOnReport(
            active_ms=given.active_ms,
            location=given.location(edge.client_ip, now_ms),
            idle_timeout_ms=given.idle_timeout_ms,
            sign_on=given.sign_on,
            agent=given.agent,
            st_token_hash=self.token_hash(given.token) if given.token is not None else None,
        )

    def _render(self, state: SessionState, edge: Edge) -> wire.SessionOut:
        return wire.render(state, base_url=edge.base_url, env_id=edge.env_id)

    async def _by_token(self, presented: str) -> SessionState:
        state = await self._reads.read_by_st_token(presented)
        if state is None or state.is_expired(self._clock.now_ms()):
            raise session_not_found()
        return state

    async def _user(self, user_id: str | None) -> UserRef | None:
        if user_id is None:
            return None
        user = await self._users.user_ref_by_id(user_id)
        if user is None:
            raise InvalidField("user.id", "no such user", detail_code="INVALID_VALUE")
        return user

    async def _existing_user(self, user_id: str) -> None:
        if await self._users.user_ref_by_id(user_id) is None:
            raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")

    async def _of_user(self, user_id: str, session_id: str) -> SessionState:
        """A session of that user, expired or not (as the user listing shows them)."""
        state = await self._reads.read_state(session_id)
        if state is None or state.terminated or state.user_id != user_id:
            raise session_not_found()
        return state

    async def _states_of(
        self, caller: Caller, user_id: str, limit: int, *, newest_first: bool = True
    ) -> list[SessionState]:
        _, summaries = await self._reads.search(
            SessionFilter(user_id=user_id),
            caller,
            Page(offset=0, limit=limit, descending=newest_first),
            self._clock.now_ms(),
        )
        states = await self._reads.read_states([s.session_id for s in summaries])
        return [state for state in states if state is not None]


def _may_read(caller: Caller, state: SessionState) -> None:
    if not caller.has("session.read", state.user_org_id):
        raise PermissionDenied("AUTHZ-pingone", "Errors.PermissionDenied")


def _zitadel_agent(given: wire.Validated, edge: Edge) -> UserAgent:
    """ZITADEL's ``userAgent`` of the session: the address (the raw agent is PingOne's field).

    Not copied into ZITADEL's ``header`` too: every copy of it is written to the state,
    the view and both streams, a tenth of a create's cost.
    """
    ip = given.sign_on.remote_ip if given.sign_on is not None else edge.client_ip
    return UserAgent(ip=ip or None)
