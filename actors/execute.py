"""Running one command against one state: the I/O around the pure rules.

For a command with a password check, ``execute`` asks ``preflight`` which user's password to
verify and verifies it through the ``PasswordVerifier`` port (a failure is recorded on the
user and raised); then ``decide`` produces the events and ``evolve`` the next state. Nothing
is written here; the caller commits.
"""

from __future__ import annotations

import msgspec

from actors import machine
from actors.commands import Command, Evidence
from actors.events import Event, TokenSet
from actors.limits import Limits
from actors.model import SessionState, UserRef
from actors.permissions import Caller, reports_end_users
from actors.ports import Clock, PasswordVerifier, TokenMinter


class Deps(msgspec.Struct, frozen=True, kw_only=True):
    """The ports a command needs besides storage."""

    passwords: PasswordVerifier
    clock: Clock
    minter: TokenMinter
    limits: Limits = Limits()


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A handled command: the state after it, and the new token if one was issued."""

    state: SessionState | None
    token: str | None = None
    events: tuple[Event, ...] = ()
    at_ms: int = 0


def _with_client_ip(state: SessionState | None, caller: Caller) -> Caller:
    """A login client's checks on a session count against the end user's stored address."""
    ua = state.user_agent if state is not None else None
    if ua is not None and ua.ip and reports_end_users(caller):
        return msgspec.structs.replace(caller, client_ip=ua.ip)
    return caller


async def execute(
    state: SessionState | None,
    session_id: str,
    command: Command,
    user: UserRef | None,
    caller: Caller,
    deps: Deps,
) -> Outcome:
    """Decide and evolve; raises a ServiceError if the command is refused."""
    ctx = machine.Context(
        now_ms=deps.clock.now_ms(),
        caller=caller,
        token=deps.minter.session_token(session_id),
        limits=deps.limits,
    )
    evidence = Evidence(user=user)
    password = getattr(getattr(command, "checks", None), "password", None)
    if password is not None:  # else decide() runs the same preflight itself, first thing
        password_user = machine.preflight(state, command, evidence, ctx)
        if password_user is not None:
            await deps.passwords.verify_password(
                password_user, password, caller=_with_client_ip(state, caller)
            )
            evidence = Evidence(user=user, password_verified=True)
    events = machine.decide(state, command, evidence, ctx)
    if not events:
        return Outcome(state=state)
    at_ms = max(deps.clock.now_ms(), ctx.now_ms)
    after = machine.evolve_all(state, events, session_id=session_id, at_ms=at_ms)
    token = None
    for event in events:  # a plain loop: cheaper than any() over a generator
        if isinstance(event, TokenSet):
            token = ctx.token.plain
    return Outcome(state=after, token=token, events=tuple(events), at_ms=at_ms)
