"""The password-attempt protocol: reserve a verification, then record its outcome.

``password_begin.lua`` admits a verification only while failed + reserved attempts stay
below the maximum; ``password_finish.lua`` records the outcome, locks the user at the maximum
and emits the check events. See ``app.credentials`` for why the lockout needs both halves.
"""

from __future__ import annotations

import msgspec

from storage import keys
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import counted


class PasswordCheckStart(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | NOTFOUND | LOCKED | NOPW | BUSY; the hash only with OK."""

    status: str
    password_hash: str = ""
    view_version: int = 0


class PasswordCheckEnd(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | LOCKED (locked by someone else meanwhile) | NOTFOUND."""

    status: str
    failed: int
    locked_now: bool


class PasswordCheckStore(UserStoreBase):
    async def begin_password_check(
        self, user_id: str, attempt_id: str, deadline_ms: int, max_attempts: int
    ) -> PasswordCheckStart:
        """Admit one verification (see password_begin.lua); OK carries the hash."""
        status, password_hash, version = await self._run(
            "password_begin",
            [keys.user(user_id), keys.user_attempts(user_id)],
            [attempt_id, deadline_ms, max_attempts, self._clock.now_ms()],
        )
        return PasswordCheckStart(
            status=status, password_hash=password_hash, view_version=int(version or 0)
        )

    async def finish_password_check(
        self, user_id: str, attempt_id: str, ok: bool, max_attempts: int, now_ms: int
    ) -> PasswordCheckEnd:
        """Record the outcome, lock at ``max_attempts`` failures, emit the check events."""
        status, failed, locked_now = await self._run(
            "password_finish",
            [
                keys.user(user_id),
                keys.user_attempts(user_id),
                keys.aggregate_relay(keys.user(user_id)),
            ],
            [
                attempt_id,
                1 if ok else 0,
                max_attempts,
                now_ms,
                *counted(self._envelope("user", user_id, user_id, now_ms)),
            ],
            relayed=keys.user(user_id),
        )
        return PasswordCheckEnd(status=status, failed=int(failed), locked_now=bool(locked_now))

    async def release_password_check(self, user_id: str, attempt_id: str) -> None:
        """Drop a reservation whose outcome will never be known (the request was cancelled)."""
        with mapped_errors():
            await self._redis.execute("ZREM", keys.user_attempts(user_id), attempt_id)
