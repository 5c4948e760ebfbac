"""Who is calling: the bearer token of a request, turned into a ``Caller``.

Two kinds of bearer are accepted:

- a personal access token (``p.<id>.<secret>``) of a machine user, hashed at rest, cached for
  ``cache_ttl_ms`` per process;
- a session token (``s.<sessionId>.<secret>``) of a session whose user is checked and active,
  with at least one authentication factor that is still valid (a password checked before the
  user's last password change no longer counts; a user with a ready second factor needs one
  checked), not expired and not terminated. It is checked
  against Redis on every request: a rotated or deleted session token stops working at once.

Transport-independent: the REST and Connect transports call ``authenticate`` from one
middleware.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from actors import tokens
from actors.errors import Unauthenticated
from actors.permissions import Caller
from actors.ports import Clock
from actors.queries import SessionSummary
from actors.views import UserView
from app.services.ports import SessionReads
from app.services.ttlcache import TTLCache
from app.services.user_views import UserViewCache


class CallerSource(Protocol):
    async def authenticate_pat(self, token: str) -> Caller | None: ...

    async def caller_for_user(self, user_id: str) -> Caller | None: ...


def invalid_token() -> Unauthenticated:
    return Unauthenticated("AUTH-7fs1e", "Errors.Token.Invalid")


class Authenticator:
    def __init__(
        self,
        callers: CallerSource,
        sessions: SessionReads,
        user_views: UserViewCache,
        clock: Clock,
        cache_ttl_ms: int,
    ) -> None:
        self._callers = callers
        self._sessions = sessions
        self._user_views = user_views
        self._clock = clock
        self._pats: TTLCache[str, Caller | None] = TTLCache(cache_ttl_ms)
        user_views.subscribe(self._forget_user)

    def _forget_user(self, user_id: str) -> None:
        """A user changed in this worker: its cached PAT callers must be looked up again."""
        self._pats.discard_if(lambda caller: caller is not None and caller.user_id == user_id)

    async def authenticate(self, token: str) -> Caller:
        parts = tokens.split(token)
        if parts is not None and parts[0] == tokens.SESSION_PREFIX:
            caller = await self._session_caller(token, parts[1])
        elif parts is not None and parts[0] == tokens.PAT_PREFIX:
            caller = await self._pat_caller(token)  # already a PAT: as_pat would split again
        else:  # a configured admin token of any shape (see tokens.as_pat)
            caller = await self._pat_caller(tokens.as_pat(token))
        if caller is None:
            raise invalid_token()
        return caller

    async def _pat_caller(self, token: str) -> Caller | None:
        cache_key = hashlib.sha256(token.encode()).hexdigest()
        hit, caller = self._pats.get(cache_key)
        if not hit:
            caller = await self._callers.authenticate_pat(token)
            self._pats.put(cache_key, caller)
        return caller

    async def _session_caller(self, token: str, session_id: str) -> Caller | None:
        meta, token_hash = await self._sessions.read_meta(session_id)
        if meta is None or meta.terminated or not meta.user_id:
            return None
        if not tokens.verify(
            token, prefix=tokens.SESSION_PREFIX, owner_id=session_id, stored_hash=token_hash
        ):
            return None
        if meta.expiration_ms is not None and meta.expiration_ms < self._clock.now_ms():
            return None
        view = await self._user_views.get(meta.user_id)
        if view is None or not _authenticated(view, meta):
            return None
        caller = await self._callers.caller_for_user(meta.user_id)
        if caller is None:
            return None
        return msgspec.structs.replace(caller, agent_id=meta.fingerprint_id)


def _authenticated(view: UserView, meta: SessionSummary) -> bool:
    """An active user, and factors that still satisfy its authentication (spec §7).

    A user-verified WebAuthn assertion (a passkey) is a login on its own (item 32), and so is
    a sign-in at an identity provider (an IdP intent: the provider authenticated). Else a
    password checked before the user's last password change no longer counts; once the
    user has a ready second factor, the password alone is not enough (MFA): a second factor
    must be checked too; while TOTP is only registered, not verified, the password alone is.
    """
    if view.state != "USER_STATE_ACTIVE":
        return False
    if meta.passkey_ms is not None or meta.intent_ms is not None:
        return True
    password_ms = meta.password_ms
    if password_ms is None or password_ms < view.password_changed_ms:
        return False
    return meta.second_factor_ms is not None or not view.second_factor
