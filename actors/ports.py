"""What the actor runtime needs from the outside world, as Protocols.

These exist for the import direction (actors never import storage or app) and for mypy; the
tests use the real Redis implementations, not fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from actors.commands import IssuedCode, OtpChallenge, WebAuthnChallenge
from actors.delivery import DeliveryJob
from actors.events import Event
from actors.model import PendingCode, PendingWebAuthn, SessionState
from actors.permissions import Caller
from actors.tokens import IssuedToken


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """Proof of being the one writer of a session: the owner id and its fencing token."""

    session_id: str
    owner: str
    fence: int


class Acquired(msgspec.Struct, frozen=True, kw_only=True):
    lease: Lease
    state: SessionState | None


class SessionStore(Protocol):
    async def acquire(self, session_id: str, owner: str, ttl_ms: int) -> Acquired | None:
        """Take the lease and load the state in one step; None while another owner holds it."""

    async def commit(
        self,
        lease: Lease,
        before: SessionState | None,
        after: SessionState,
        events: list[Event],
        *,
        at_ms: int,
        creator_id: str,
        release: bool,
        jobs: Sequence[DeliveryJob] = (),
    ) -> list[str]:
        """Write state, streams, indexes and delivery jobs atomically, if ``lease`` is current.

        Returns the sessions of the same user this write pushed over the per-user cap (to
        be ended). Raises ``LeaseLost`` when the lease expired or was taken over.
        """

    async def release(self, lease: Lease) -> None:
        """Give the lease up if we still own it."""

    async def create(
        self,
        state: SessionState,
        events: list[Event],
        *,
        at_ms: int,
        creator_id: str,
        jobs: Sequence[DeliveryJob] = (),
    ) -> list[str]:
        """Write a brand-new session; raises ``AlreadyExists`` if the id is taken.

        Returns the sessions pushed over the per-user cap, as ``commit``.
        """

    async def forget_eviction(self, session_id: str) -> None:
        """The evicted session was ended: drop it from the pending evictions."""

    async def pending_evictions(self, before_ms: int, limit: int) -> list[str]:
        """Evictions recorded before ``before_ms`` that were never finished (a crash)."""


class PasswordVerifier(Protocol):
    async def verify_password(self, user_id: str, password: str, *, caller: Caller) -> None:
        """Return if the password is right; else record the failure (and lockout) and raise.

        Raises ServiceErrors in ZITADEL's order: user missing (COMMAND-3n77z), locked
        (COMMAND-JLK35), no password (COMMAND-3nJ4t), wrong (COMMAND-3M0fs with
        ``failedAttempts``), locked meanwhile (COMMAND-SFA3t); and ResourceExhausted when
        the user, the caller or its client IP checked too many credentials lately.
        """


class DrawnCode(msgspec.Struct, frozen=True, kw_only=True):
    """A new OTP challenge: its code, and the delivery job when the code is to be sent."""

    code: IssuedCode
    job: DeliveryJob | None = None


class VerifiedFactor(msgspec.Struct, frozen=True, kw_only=True):
    """A second factor whose code was right, not used up yet (``confirm`` does that)."""

    kind: str
    user_id: str
    #: The lockout reservation held for it ("" when the lockout is off).
    attempt_id: str
    #: TOTP: the time step of the accepted code (the replay guard's new mark).
    totp_step: int = 0
    #: Recovery codes: the code's keyed hash under every known key (one is removed).
    recovery_candidates: tuple[str, ...] = ()
    #: TOTP sealed by a previous master key: (as stored, re-sealed under the current key).
    reseal: tuple[str, str] | None = None
    #: WebAuthn: the passkey or U2F key used, its new sign count, and the UV flag.
    token_id: str = ""
    sign_count: int = 0
    user_verified: bool = False


class SecondFactorVerifier(Protocol):
    """Second-factor checks and OTP challenges against the user's registered factors.

    Each verification follows ZITADEL's order for its factor (spec §4.5-4.7): factor not
    ready, locked, wrong (counted toward ``SESSIOND_LOCKOUT_MAX_OTP_ATTEMPTS``; the lock
    lands at the limit even under concurrent attempts), and raises the ZITADEL error. A
    right code is returned as a ``VerifiedFactor`` and used up only by ``confirm``, once
    the whole command succeeded; a command that fails after verifying calls ``release``,
    so a request that changes nothing never burns a one-use code.
    """

    async def verify_web_authn(
        self,
        user_id: str,
        assertion: bytes,
        pending: PendingWebAuthn | None,
        *,
        caller: Caller,
    ) -> VerifiedFactor:
        """An assertion for the session's pending challenge, by one of the user's keys.

        The challenge is used by this attempt whatever its outcome; a sign count that went
        back is a cloned key (recorded on the user, and refused).
        """

    async def draw_web_authn(self, user_id: str, request: WebAuthnChallenge) -> PendingWebAuthn:
        """A fresh challenge offering the user's keys (REQUIRED: passkeys only)."""

    async def verify_totp(self, user_id: str, code: str, *, caller: Caller) -> VerifiedFactor:
        """RFC 6238, ±1 step; a code of an already used time step is a replay (TOTP-Auw0a)."""

    async def verify_otp(
        self,
        user_id: str,
        channel: str,
        code: str,
        pending: PendingCode | None,
        *,
        caller: Caller,
    ) -> VerifiedFactor:
        """``channel`` otp_sms | otp_email: ``code`` against the session's pending challenge."""

    async def verify_recovery_code(
        self, user_id: str, code: str, *, caller: Caller
    ) -> VerifiedFactor:
        """One of the user's unused recovery codes."""

    async def confirm(self, verified: Sequence[VerifiedFactor]) -> None:
        """Use the factors up and record the successes; raises if one was used meanwhile."""

    async def release(self, verified: Sequence[VerifiedFactor]) -> None:
        """Give the reservations back: the command failed, nothing was used."""

    async def draw_code(
        self, user_id: str, session_id: str, channel: str, request: OtpChallenge
    ) -> DrawnCode:
        """A fresh code for an OTP challenge; NotReady if the user lacks the factor."""


class IntentVerifier(Protocol):
    """The ``idpIntent`` check: a succeeded IdP intent of the session's user, used once."""

    async def verify_intent(self, user_id: str, intent_id: str, token: str) -> VerifiedFactor:
        """Token, state, expiry and user in ZITADEL's order (spec §4.4); raises on the first."""

    async def consume(self, factor: VerifiedFactor, session_id: str) -> None:
        """Use the intent up; raises NotSucceeded if another session consumed it meanwhile."""


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""


class IdSource(Protocol):
    def new_id(self) -> str:
        """A fresh numeric, roughly time-ordered id (users, orgs, sessions, PATs)."""


class TokenMinter(Protocol):
    def session_token(self, session_id: str) -> IssuedToken:
        """A fresh session token for ``session_id`` (random secret, stored as hash)."""
