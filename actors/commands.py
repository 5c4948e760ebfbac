"""What callers ask of a session: the actor's mailbox messages, named after ZITADEL's RPCs.

Commands are already validated for shape by the HTTP edge; the rules in ``machine`` check
everything that depends on state.
"""

from __future__ import annotations

import msgspec

from actors.model import UserAgent, UserRef


class UserCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``user_id`` / ``login_name``; the edge resolves it to a ``UserRef``."""

    user_id: str | None = None
    login_name: str | None = None


class Checks(msgspec.Struct, frozen=True, kw_only=True):
    user: UserCheck | None = None
    password: str | None = None

    @property
    def empty(self) -> bool:
        return self.user is None and self.password is None


class CreateSession(msgspec.Struct, frozen=True, kw_only=True, tag="create"):
    checks: Checks = Checks()
    metadata: dict[str, bytes] = {}
    user_agent: UserAgent | None = None
    lifetime_ms: int | None = None


class SetSession(msgspec.Struct, frozen=True, kw_only=True, tag="set"):
    checks: Checks = Checks()
    metadata: dict[str, bytes] = {}
    lifetime_ms: int | None = None


class DeleteSession(msgspec.Struct, frozen=True, kw_only=True, tag="delete"):
    session_token: str | None = None


Command = CreateSession | SetSession | DeleteSession


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Facts gathered by I/O before deciding: the resolved user and a verified password."""

    user: UserRef | None = None
    password_verified: bool = False
