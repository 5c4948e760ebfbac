"""SessionService (``zitadel.session.v2.SessionService``): the five session RPCs.

Each method takes the authenticated caller and the decoded request and returns the response
struct; the transports only decode, call and encode. Writes go through the session actors
(the registry); reads go straight to storage and splice each session's pre-encoded view into
the response, re-rendering it only when its user changed since it was stored.
"""

from __future__ import annotations

import msgspec

from actors import tokens
from actors.commands import DeleteSession, UserCheck
from actors.errors import InvalidArgument, NotFound, PermissionDenied, permission_denied
from actors.execute import Outcome
from actors.machine import session_not_found
from actors.model import UserRef
from actors.permissions import Caller, reports_end_users
from actors.ports import Clock
from actors.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORT_CREATION_DATE,
    SORTING_COLUMNS,
    Page,
    retained,
    visible,
)
from actors.registry import SessionRegistry
from actors.timefmt import rfc3339_ms
from app.services import session_wire as wire
from app.services.ports import SessionReads, UserDirectory
from app.services.session_list import enum_value, to_filter
from app.services.session_reads import SessionViews


class SessionService:
    def __init__(
        self,
        registry: SessionRegistry,
        reads: SessionReads,
        users: UserDirectory,
        views: SessionViews,
        clock: Clock,
        *,
        instance_id: str,
        retention_ms: int,
    ) -> None:
        self._registry = registry
        self._reads = reads
        self._users = users
        self._views = views
        self._clock = clock
        self._instance_id = instance_id
        self._retention_ms = retention_ms

    async def create_session(
        self, caller: Caller, request: wire.CreateSessionRequest
    ) -> wire.CreateSessionResponse:
        command = wire.to_create(request)
        user = await self._resolve_user(command.checks.user)
        ua = command.user_agent
        if ua is not None and ua.ip and reports_end_users(caller):
            caller = msgspec.structs.replace(caller, client_ip=ua.ip)  # for the rate limits
        outcome = await self._registry.create(command, user=user, caller=caller)
        assert outcome.state is not None  # noqa: S101 - a create always produces a state
        assert outcome.token is not None  # noqa: S101 - ... and a token
        return wire.CreateSessionResponse(
            details=self._details(outcome),
            session_id=outcome.state.id,
            session_token=outcome.token,
            challenges=wire.challenges_out(
                outcome.otp_sms_code, outcome.otp_email_code, outcome.web_authn_challenge
            ),
        )

    async def set_session(
        self, caller: Caller, request: wire.SetSessionRequest
    ) -> wire.SetSessionResponse:
        command = wire.to_set(request)
        user = await self._resolve_user(command.checks.user)
        outcome = await self._registry.ask(request.session_id, command, user=user, caller=caller)
        return wire.SetSessionResponse(
            details=self._details(outcome),
            session_token=outcome.token,
            challenges=wire.challenges_out(
                outcome.otp_sms_code, outcome.otp_email_code, outcome.web_authn_challenge
            ),
        )

    async def delete_session(
        self, caller: Caller, request: wire.DeleteSessionRequest
    ) -> wire.DeleteSessionResponse:
        command = DeleteSession(session_token=request.session_token or None)
        outcome = await self._registry.ask(request.session_id, command, user=None, caller=caller)
        return wire.DeleteSessionResponse(details=self._details(outcome))

    async def get_session(
        self, caller: Caller, request: wire.GetSessionRequest
    ) -> wire.GetSessionBody:
        session_id, token = request.session_id, request.session_token
        meta, token_hash = await self._reads.read_meta(session_id)
        if meta is None or meta.terminated:
            raise session_not_found()
        # without an expiration it is always retained: no clock read needed
        if meta.expiration_ms is not None and not retained(
            meta, self._clock.now_ms(), self._retention_ms
        ):
            raise session_not_found()
        if token is not None:
            if not tokens.verify(
                token, prefix=tokens.SESSION_PREFIX, owner_id=session_id, stored_hash=token_hash
            ):
                raise PermissionDenied("QUERY-dsfr3", "Errors.PermissionDenied")
        elif not visible(meta, caller):
            raise permission_denied()
        return wire.GetSessionBody(session=await self._views.current(meta))

    async def list_sessions(
        self, caller: Caller, request: wire.ListSessionsRequest
    ) -> wire.ListSessionsBody:
        query = to_filter(request.queries, caller)
        page = _page(request)
        now_ms = self._clock.now_ms()
        total, shown = await self._reads.search(query, caller, page, now_ms)
        details = wire.ListDetails(
            total_result=str(total) if total else "0", timestamp=rfc3339_ms(now_ms)
        )
        return wire.ListSessionsBody(details=details, sessions=await self._views.current_all(shown))

    async def _resolve_user(self, check: UserCheck | None) -> UserRef | None:
        """Spec §4.1: by id exactly, by login name case-insensitively; unknown → 404."""
        if check is None:
            return None
        user: UserRef | None
        if check.user_id is not None:
            user = await self._users.user_ref_by_id(check.user_id)
        else:
            user = await self._users.user_ref_by_login_name(check.login_name or "")
        if user is None:
            raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")
        return user

    def _details(self, outcome: Outcome) -> wire.Details:
        state = outcome.state
        if state is None:
            return wire.Details(resource_owner=self._instance_id)
        return wire.Details(
            sequence=str(state.sequence),
            change_date=rfc3339_ms(state.change_ms),
            resource_owner=self._instance_id,
        )


def _page(request: wire.ListSessionsRequest) -> Page:
    query = request.query or wire.ListQuery()
    limit = query.limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise InvalidArgument("QUERY-4M0fs", "Errors.Query.LimitExceeded")
    sort = enum_value(request.sorting_column, SORTING_COLUMNS, "ListSessionsRequest.SortingColumn")
    descending = not (sort == SORT_CREATION_DATE and query.asc)
    return Page(offset=query.offset, limit=limit, descending=descending)
