"""The second-factor attempt protocol: reserve a verification, then record its outcome.

Like ``storage.password_checks``, with its own failure counter (``failed_otp``) and budget:
``otp_begin.lua`` admits a verification only while failed + reserved attempts stay below the
maximum and hands out what the verifier needs (the sealed TOTP seed, the recovery codes'
hashes); ``otp_finish.lua`` records the outcome atomically with the factor's own one-use
rules (TOTP time steps, recovery codes) and locks the user at the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from actors.webauthn_tokens import UserKeys
from storage import keys
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import KEY_FIELDS, counted, user_keys_from

#: ZITADEL's user events per factor kind: (success, failure).
CHECK_EVENTS = {
    "totp": ("user.human.mfa.otp.check.succeeded", "user.human.mfa.otp.check.failed"),
    "otp_sms": ("user.human.mfa.otp.sms.check.succeeded", "user.human.mfa.otp.sms.check.failed"),
    "otp_email": (
        "user.human.mfa.otp.email.check.succeeded",
        "user.human.mfa.otp.email.check.failed",
    ),
    "recovery_code": (
        "user.human.mfa.recoverycode.check.succeeded",
        "user.human.mfa.recoverycode.check.failed",
    ),
}


class OtpCheckStart(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | NOTFOUND | NOTREADY | LOCKED | BUSY; the factor's data with OK."""

    status: str
    sealed_totp: str = ""
    totp_step: int = 0
    recovery_hashes: tuple[str, ...] = ()


class OtpCheckEnd(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | WRONG | REUSED | LOCKED (meanwhile) | NOTFOUND."""

    status: str
    failed: int
    locked_now: bool


class OtpCheckStore(UserStoreBase):
    async def user_keys(self, user_id: str) -> UserKeys | None:
        """A user's state and WebAuthn keys, without reading (or decoding) the rest."""
        with mapped_errors():
            values = await self._redis.execute("HMGET", keys.user(user_id), *KEY_FIELDS)
        return user_keys_from(values)

    async def use_webauthn_challenge(self, user_id: str, challenge: str, ttl_ms: int) -> bool:
        """True for the first attempt at ``challenge`` only (SET NX, kept ``ttl_ms``)."""
        with mapped_errors():
            reply = await self._redis.execute(
                "SET", keys.used_webauthn_challenge(user_id, challenge), "1", "NX", "PX", ttl_ms
            )
        return reply is not None

    async def begin_otp_check(
        self, user_id: str, kind: str, attempt_id: str, deadline_ms: int, max_attempts: int
    ) -> OtpCheckStart:
        status, sealed, step, hashes = await self._run(
            "otp_begin",
            [keys.user(user_id), keys.user_otp_attempts(user_id)],
            [attempt_id, deadline_ms, max_attempts, self._clock.now_ms(), kind],
        )
        return OtpCheckStart(
            status=status,
            sealed_totp=sealed,
            totp_step=int(step or 0),
            recovery_hashes=tuple(hashes.split()),
        )

    async def finish_otp_check(
        self,
        user_id: str,
        kind: str,
        attempt_id: str,
        ok: bool,
        max_attempts: int,
        *,
        totp_step: int = 0,
        recovery_candidates: Sequence[str] = (),
        reseal: tuple[str, str] | None = None,
    ) -> OtpCheckEnd:
        """Record the outcome; ``reseal`` (old, new) replaces a seed sealed by an old key."""
        now_ms = self._clock.now_ms()
        succeeded, failed_event = CHECK_EVENTS[kind]
        status, failed, locked_now = await self._run(
            "otp_finish",
            [
                keys.user(user_id),
                keys.user_otp_attempts(user_id),
                keys.aggregate_relay(keys.user(user_id)),
            ],
            [
                attempt_id,
                1 if ok else 0,
                max_attempts,
                now_ms,
                kind,
                totp_step,
                succeeded,
                failed_event,
                *counted(list(recovery_candidates)),
                *counted(self._envelope("user", user_id, user_id, now_ms)),
                *counted(list(reseal or ())),
            ],
            relayed=keys.user(user_id),
        )
        return OtpCheckEnd(status=status, failed=int(failed), locked_now=bool(locked_now))

    async def release_otp_check(self, user_id: str, attempt_id: str) -> None:
        """Drop a reservation whose outcome will not be recorded (no challenge, cancelled)."""
        with mapped_errors():
            await self._redis.execute("ZREM", keys.user_otp_attempts(user_id), attempt_id)
