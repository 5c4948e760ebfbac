"""Password checks with lockout, password changes, and personal-access-token callers.

``verify_password`` follows ZITADEL's order (spec §4.2): user missing, locked, no password,
then the hash; a wrong password counts toward the lockout and reports ``failedAttempts``.

The lockout must hold under concurrency: if many wrong passwords for one user arrive at once,
each would read "2 failures so far" before any of them wrote the third. So a verification
first takes a reservation in Redis (``password_begin.lua``), admitted only while failed +
reserved < max; the outcome is written by ``password_finish.lua``, which locks the user at
max. Hence at most ``max`` wrong passwords are ever verified before the lock; the others get
Locked, or ResourceExhausted ("busy", 429) while the reserved ones are being verified.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Awaitable

import msgspec
import structlog

from actors import tokens
from actors import users as rules
from actors.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, ServiceError
from actors.limits import UNLIMITED, Rate
from actors.permissions import Caller
from actors.ports import Clock
from actors.users import User
from app.services.ports import (
    Hasher,
    PasswordCheckEnd,
    PasswordCheckStart,
    PatRecord,
    RateLimiter,
    UserDirectory,
)
from app.services.reservations import ATTEMPT_TTL_MS, BUSY_WAIT_S, reserve


class CheckRates(msgspec.Struct, frozen=True, kw_only=True):
    user: Rate = UNLIMITED
    ip: Rate = UNLIMITED
    caller: Rate = UNLIMITED


NO_RATES = CheckRates()
log = structlog.get_logger("sessiond.credentials")

_NOT_ADMITTED: dict[str, ServiceError] = {
    "NOTFOUND": FailedPrecondition("COMMAND-3n77z", "Errors.User.NotFound"),
    "LOCKED": FailedPrecondition("COMMAND-JLK35", "Errors.User.Locked"),
    "NOPW": FailedPrecondition("COMMAND-3nJ4t", "Errors.User.Password.NotSet"),
    "BUSY": ResourceExhausted("COMMAND-pwBusy", "Errors.User.Password.Busy"),
}


def _not_admitted(status: str) -> ServiceError:
    """A fresh error per request (exceptions carry tracebacks; never share instances)."""
    template = _NOT_ADMITTED[status]
    return type(template)(template.error_id, template.key)


def _outcome_error(end: PasswordCheckEnd, ok: bool) -> ServiceError | None:
    if end.status == "NOTFOUND":
        return _not_admitted("NOTFOUND")
    if end.status == "LOCKED":  # locked by someone else while we verified (ZITADEL step 5)
        return FailedPrecondition("COMMAND-SFA3t", "Errors.User.Locked")
    if not ok:
        return InvalidArgument(
            "COMMAND-3M0fs", "Errors.User.Password.Invalid", extra={"failedAttempts": end.failed}
        )
    return None


class PasswordService:
    """``actors.ports.PasswordVerifier`` plus the caller lookups of ``app.services.auth``."""

    def __init__(
        self,
        users: UserDirectory,
        hasher: Hasher,
        clock: Clock,
        *,
        max_attempts: int,
        limiter: RateLimiter | None = None,
        rates: CheckRates = NO_RATES,
        busy_wait_s: float = BUSY_WAIT_S,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._max_attempts = max_attempts
        self._clock = clock
        self._limiter = limiter
        self._rates = rates
        self._busy_wait_s = busy_wait_s

    async def verify_password(self, user_id: str, password: str, *, caller: Caller) -> None:
        """Return if right; else record the failure (and maybe the lock) and raise."""
        await self.admit(user_id, caller)
        attempt_id = secrets.token_hex(8)
        start = await self._begin(user_id, attempt_id)
        if start.status != "OK":
            raise _not_admitted(start.status)
        ok = await self._verify_reserved(user_id, attempt_id, start.password_hash, password)
        end = await self._users.finish_password_check(
            user_id, attempt_id, ok, self._max_attempts, self._clock.now_ms()
        )
        error = _outcome_error(end, ok)
        if error is not None:
            raise error
        if self._hasher.needs_rehash(start.password_hash):
            await self._rehash(user_id, start.password_hash, password)

    async def admit(self, user_id: str, caller: Caller) -> None:
        """The rate limits of credential checks: per user, per client IP, per caller."""
        if self._limiter is None:
            return
        rates = self._rates
        wait_ms = await self._limiter.admit(
            [
                ("user", user_id, rates.user),
                ("ip", caller.client_ip, rates.ip),
                ("caller", caller.user_id, rates.caller),
            ]
        )
        if wait_ms:
            raise ResourceExhausted(
                "COMMAND-rateLimit",
                "Errors.User.RateLimited",
                retry_after_s=max(1, math.ceil(wait_ms / 1000)),
            )

    async def _begin(self, user_id: str, attempt_id: str) -> PasswordCheckStart:
        """Reserve a verification, waiting while the reserved ones fill the budget."""

        def attempt() -> Awaitable[PasswordCheckStart]:
            return self._users.begin_password_check(
                user_id, attempt_id, self._clock.now_ms() + ATTEMPT_TTL_MS, self._max_attempts
            )

        return await reserve(attempt, self._busy_wait_s)

    async def _verify_reserved(
        self, user_id: str, attempt_id: str, encoded: str, password: str
    ) -> bool:
        try:
            return await self._hasher.verify(encoded, password)
        except BaseException:
            # Cancelled before the outcome was known: the caller learns nothing, so the
            # attempt does not count; free the reservation instead of waiting for its TTL.
            await asyncio.shield(self._users.release_password_check(user_id, attempt_id))
            raise

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        """Upgrade the hash to the configured parameters; best effort, never fails a check."""
        try:
            new_hash = await self._hasher.hash(password)
            await self._users.replace_password_hash(user_id, old_hash, new_hash)
        except ServiceError as exc:
            log.warning("password rehash skipped", user_id=user_id, error_id=exc.error_id)

    async def set_password(
        self,
        user_id: str,
        password: str,
        change_required: bool,
        *,
        creator_id: str = "",
        reset_code: str | None = None,
    ) -> User:
        """Hash and store a new password; the caller checked permission, or passes the code."""
        password_hash = await self._hasher.hash(password)
        return await self._users.set_password(
            user_id, password_hash, change_required, creator_id=creator_id, reset_code=reset_code
        )

    async def change_password(
        self, user_id: str, current: str, new: str, change_required: bool, *, caller: Caller
    ) -> User:
        """SetPassword with ``currentPassword``: the check counts toward the lockout."""
        await self.verify_password(user_id, current, caller=caller)
        return await self.set_password(user_id, new, change_required, creator_id=user_id)

    async def authenticate_pat(self, token: str) -> Caller | None:
        """The machine user behind ``p.<tokenId>.<secret>``, if valid, unexpired and enabled."""
        parts = tokens.split(token)
        if parts is None or parts[0] != tokens.PAT_PREFIX:
            return None
        record: PatRecord | None = await self._users.get_pat(parts[1])
        if record is None or not tokens.verify(
            token,
            prefix=tokens.PAT_PREFIX,
            owner_id=record.token_id,
            stored_hash=record.secret_hash,
        ):
            return None
        if record.expires_ms and record.expires_ms <= self._clock.now_ms():
            return None
        return await self.caller_for_user(record.user_id)

    async def caller_for_user(self, user_id: str) -> Caller | None:
        """A deactivated, locked or deleted user is nobody."""
        user = await self._users.get_user(user_id)
        if user is None or not rules.is_enabled(user):
            return None
        return rules.caller_of(user)
