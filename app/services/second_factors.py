"""Second-factor checks and OTP challenges (``actors.ports.SecondFactorVerifier``).

Every check runs the attempt protocol of ``storage.otp_checks``: rate limits first, then a
reservation that keeps concurrent wrong codes within ``SESSIOND_LOCKOUT_MAX_OTP_ATTEMPTS``,
the comparison here, and the outcome recorded with the factor's one-use rule in one script.
Errors follow ZITADEL's ids and order per factor (spec §4.5-4.7, §11.3).

Secrets: the TOTP seed is opened from its sealed form only for the comparison; OTP and
recovery codes exist here only as keyed hashes (``Keyring``). A challenge code is drawn from
``secrets``; sent codes travel sealed in their delivery job.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Sequence

from actors import machine
from actors import users as rules
from actors import webauthn_tokens as keys_rules
from actors.commands import IssuedCode, OtpChallenge, WebAuthnChallenge
from actors.delivery import Channel, DeliveryJob
from actors.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from actors.model import PendingCode, PendingWebAuthn
from actors.permissions import Caller
from actors.ports import Clock, DrawnCode, VerifiedFactor
from actors.user_records import ACTIVE, INITIAL, U2F, Change, User
from app.services import webauthn_ceremony as ceremony
from app.services.messages import MessageComposer
from app.services.ports import CheckGate, OtpChecks, OtpCheckStart
from app.services.reservations import ATTEMPT_TTL_MS, BUSY_WAIT_S, reserve
from app.services.sealing import Keyring, SealError

#: ZITADEL's OTP SMS / e-mail generators: 8 digits, valid for 5 minutes.
OTP_DIGITS = 8
OTP_TTL_MS = 300_000


def totp_purpose(user_id: str) -> str:
    return f"totp:{user_id}"


def recovery_purpose(user_id: str) -> str:
    return f"recovery-code:{user_id}"


def otp_purpose(user_id: str) -> str:
    return f"otp:{user_id}"


_LOCKED = {
    "totp": ("COMMAND-SF3fg", "Errors.User.Locked"),
    "otp_sms": ("COMMAND-S6h4R", "Errors.User.Locked"),
    "otp_email": ("COMMAND-S6h4R", "Errors.User.Locked"),
}
_NOT_READY_CHECK = {
    "totp": "COMMAND-3Mif9s",
    "otp_sms": "COMMAND-d2r52",
    "otp_email": "COMMAND-d2r52",
}


def _not_admitted(kind: str, status: str) -> ServiceError:
    """otp_begin's refusal as ZITADEL's error for that factor."""
    if status == "BUSY":
        return ResourceExhausted("COMMAND-otpBusy", "Errors.User.MFA.OTP.Busy")
    if kind == "recovery_code":
        if status == "LOCKED":
            return NotFound("COMMAND-2w6oa", "Errors.User.MFA.RecoveryCodes.Locked")  # sic
        if status == "NOTREADY":
            return InvalidArgument("COMMAND-84rgg", "Errors.User.RecoveryCodes.NotReady")
    elif status == "NOTREADY":
        return FailedPrecondition(_NOT_READY_CHECK[kind], "Errors.User.MFA.OTP.NotReady")
    elif status == "LOCKED":
        return FailedPrecondition(*_LOCKED[kind])
    return NotFound("COMMAND-otpUser", "Errors.User.NotFound")


def _reused() -> InvalidArgument:
    return InvalidArgument("TOTP-Auw0a", "Errors.User.MFA.OTP.Reused")


def _locked_meanwhile(kind: str) -> ServiceError:
    if kind == "recovery_code":
        return NotFound("COMMAND-2w6oa", "Errors.User.MFA.RecoveryCodes.Locked")
    return FailedPrecondition(*_LOCKED[kind])


class SecondFactorService:
    def __init__(
        self,
        users: OtpChecks,
        keyring: Keyring,
        clock: Clock,
        gate: CheckGate,
        messages: MessageComposer,
        *,
        max_attempts: int,
        busy_wait_s: float = BUSY_WAIT_S,
        webauthn_origins: tuple[str, ...] = (),
    ) -> None:
        self._users = users
        self._keyring = keyring
        self._clock = clock
        self._gate = gate
        self._max_attempts = max_attempts
        self._messages = messages
        self._busy_wait_s = busy_wait_s
        self._origins = webauthn_origins

    # -- checks ----------------------------------------------------------------------------
    # A right code is only *verified* here: its reservation is held and nothing is used up
    # until ``confirm``, which the actor calls once the whole command succeeded; a command
    # that fails afterwards ``release``s it, so a code is never burnt by a request that
    # changed nothing. A wrong code is recorded (and counted toward the lockout) at once.
    async def verify_web_authn(
        self,
        user_id: str,
        assertion: bytes,
        pending: PendingWebAuthn | None,
        *,
        caller: Caller,
    ) -> VerifiedFactor:
        """Spec §4.3, with the challenge used by the first attempt at it, right or wrong.

        No lockout counter (as ZITADEL), but the rate limits of every credential check.
        """
        found = machine.check_web_authn_challenge(pending, self._now())
        if isinstance(found, ServiceError):
            await self._gate.admit(user_id, caller)  # a missing challenge is an attempt too
            raise found
        ttl_ms = max(1, found.expires_ms - self._now()) + 1000
        # Independent round trips, issued together so they share one pipeline flush: the
        # rate limits, the challenge's one-use mark, the user's keys. Their verdicts are
        # then taken in that order, so a refused attempt still used its challenge up.
        admitted, first_use, keys_read = await asyncio.gather(
            self._gate.admit(user_id, caller),
            self._users.use_webauthn_challenge(user_id, found.challenge, ttl_ms),
            self._users.user_keys(user_id),
            return_exceptions=True,
        )
        for outcome in (admitted, first_use, keys_read):
            if isinstance(outcome, BaseException):
                raise outcome
        if not first_use:
            raise FailedPrecondition("COMMAND-Ioqu5", "Errors.Session.WebAuthN.NoChallenge")
        parsed = ceremony.parse_assertion(assertion)
        user = keys_read
        assert not isinstance(user, BaseException)  # noqa: S101 - raised above
        if user is None or not user.human or user.state not in (ACTIVE, INITIAL):
            raise FailedPrecondition("COMMAND-Df4b3", "Errors.User.NotFound")
        credential = ceremony.credential_id(parsed)
        token = keys_rules.ready_token(user.tokens, credential)
        offered = credential in found.allowed_credentials
        if (
            token is None
            or not offered
            or (found.user_verification == keys_rules.REQUIRED and token.kind == U2F)
        ):
            raise FailedPrecondition("COMMAND-Aej7i", "Errors.User.WebAuthN.NotFound")
        if not ceremony.user_handle_matches(parsed, user_id):
            raise InvalidArgument("WEBAU-3M9si", "Errors.User.WebAuthN.ValidateLoginFailed")
        verified = ceremony.verify_assertion(
            parsed,
            raw=assertion,
            pending=found,
            public_key=token.public_key,
            origins=self._origins,
        )
        if keys_rules.is_clone(token.sign_count, verified.sign_count):
            await self._record_use(user_id, token.id, verified.sign_count)  # raises: a clone
            raise keys_rules.clone_warning()  # not reached
        return VerifiedFactor(
            kind="web_authn",
            user_id=user_id,
            attempt_id="",
            token_id=token.id,
            sign_count=verified.sign_count,
            user_verified=verified.user_verified,
        )

    async def _record_use(self, user_id: str, token_id: str, sign_count: int) -> None:
        def transition(current: User | None, now_ms: int) -> Change:
            return keys_rules.record_use(current, token_id, sign_count, now_ms)

        await self._users.mutate(user_id, transition)

    async def verify_totp(self, user_id: str, code: str, *, caller: Caller) -> VerifiedFactor:
        attempt, start = await self._begin(user_id, "totp", caller)
        try:
            secret = self._keyring.open(totp_purpose(user_id), start.sealed_totp).decode()
        except SealError:
            await self._release(user_id, attempt)
            raise FailedPrecondition("COMMAND-3Mif9s", "Errors.User.MFA.OTP.NotReady") from None
        step = rules.matching_totp_step(secret, code, self._clock.now_ms())
        if step is None:
            end = await self._users.finish_otp_check(
                user_id, "totp", attempt, False, self._max_attempts
            )
            self._raise_unless_ok("totp", end.status, end.failed)
        assert step is not None  # noqa: S101 - a wrong code raised above
        if step <= start.totp_step:  # seen already: a replay, not a guess (not counted)
            await self._release(user_id, attempt)
            raise _reused()
        reseal = None
        if self._keyring.needs_reseal(start.sealed_totp):  # a rotation: re-seal as it is used
            reseal = (start.sealed_totp, self._keyring.seal(totp_purpose(user_id), secret.encode()))
        return VerifiedFactor(
            kind="totp", user_id=user_id, attempt_id=attempt, totp_step=step, reseal=reseal
        )

    async def verify_otp(
        self,
        user_id: str,
        channel: str,
        code: str,
        pending: PendingCode | None,
        *,
        caller: Caller,
    ) -> VerifiedFactor:
        attempt, start = await self._begin(user_id, channel, caller)
        purpose = otp_purpose(user_id)
        error = machine.check_otp(
            pending, lambda stored: self._keyring.matches(purpose, code, stored), self._now()
        )
        if start.status == "LOCKED":  # a missing, expired or wrong code is reported first
            raise error or _not_admitted(channel, "LOCKED")
        if error is None:  # used up by the session's commit, which clears the challenge
            return VerifiedFactor(kind=channel, user_id=user_id, attempt_id=attempt)
        if not machine.counts_as_failure(error):
            await self._release(user_id, attempt)  # no code asked: no attempt
            raise error
        end = await self._users.finish_otp_check(
            user_id, channel, attempt, False, self._max_attempts
        )
        if end.status == "WRONG":
            raise _with_failures(error, end.failed)
        self._raise_unless_ok(channel, end.status, end.failed)
        raise error  # not reached: a failure is never OK

    async def verify_recovery_code(
        self, user_id: str, code: str, *, caller: Caller
    ) -> VerifiedFactor:
        attempt, start = await self._begin(user_id, "recovery_code", caller)
        candidates = tuple(self._keyring.digests(recovery_purpose(user_id), code))
        stored = set(start.recovery_hashes)
        if not any(candidate in stored for candidate in candidates):
            end = await self._users.finish_otp_check(
                user_id, "recovery_code", attempt, False, self._max_attempts
            )
            self._raise_unless_ok("recovery_code", end.status, end.failed)
        return VerifiedFactor(
            kind="recovery_code",
            user_id=user_id,
            attempt_id=attempt,
            recovery_candidates=candidates,
        )

    async def confirm(self, verified: Sequence[VerifiedFactor]) -> None:
        """Use the verified factors up, in order (the command succeeded).

        Each one-use rule is re-checked atomically: a TOTP step or a recovery code used by a
        concurrent request meanwhile fails this command (and the factors after it are
        released, not used).
        """
        for index, factor in enumerate(verified):
            if factor.kind == "web_authn":
                if factor.sign_count:  # a counter of 0 ("none") changes nothing
                    try:
                        await self._record_use(factor.user_id, factor.token_id, factor.sign_count)
                    except ServiceError:
                        await self.release(verified[index + 1 :])
                        raise
                continue
            end = await self._users.finish_otp_check(
                factor.user_id,
                factor.kind,
                factor.attempt_id,
                True,
                self._max_attempts,
                totp_step=factor.totp_step,
                recovery_candidates=factor.recovery_candidates,
                reseal=factor.reseal,
            )
            if end.status == "OK":
                continue
            await self.release(verified[index + 1 :])
            if end.status == "REUSED":
                raise _reused()
            self._raise_unless_ok(factor.kind, end.status, end.failed)

    async def release(self, verified: Sequence[VerifiedFactor]) -> None:
        """The command failed after these were verified: nothing used, nothing counted."""
        for factor in verified:
            await self._release(factor.user_id, factor.attempt_id)

    async def _release(self, user_id: str, attempt: str) -> None:
        if attempt:  # without a lockout nothing was reserved
            await self._users.release_otp_check(user_id, attempt)

    async def _begin(self, user_id: str, kind: str, caller: Caller) -> tuple[str, OtpCheckStart]:
        """Rate limits, then a reservation; waits while in-flight checks fill the budget."""
        await self._gate.admit(user_id, caller)
        attempt = secrets.token_hex(8) if self._max_attempts > 0 else ""  # no reservation

        def try_once() -> Awaitable[OtpCheckStart]:
            return self._users.begin_otp_check(
                user_id, kind, attempt, self._now() + ATTEMPT_TTL_MS, self._max_attempts
            )

        start = await reserve(try_once, self._busy_wait_s)
        if start.status == "LOCKED" and kind in ("otp_sms", "otp_email"):
            return "", start  # ZITADEL compares the code first (spec §4.6): see verify_otp
        if start.status != "OK":
            raise _not_admitted(kind, start.status)
        return attempt, start

    def _raise_unless_ok(self, kind: str, status: str, failed: int) -> None:
        if status == "OK":
            return
        if status == "LOCKED":
            raise _locked_meanwhile(kind)
        if status == "NOTFOUND":
            raise _not_admitted(kind, "NOTFOUND")
        if kind == "recovery_code":
            raise _with_failures(
                InvalidArgument("DOMAIN-6uvh0", "Errors.User.MFA.RecoveryCodes.InvalidCode"),
                failed,
            )
        if kind == "totp":
            raise _with_failures(
                InvalidArgument("EVENT-8isk2", "Errors.User.MFA.OTP.InvalidCode"), failed
            )
        raise _with_failures(InvalidArgument("CODE-woT0xc", "Errors.User.Code.Invalid"), failed)

    # -- challenges ------------------------------------------------------------------------
    async def draw_web_authn(self, user_id: str, request: WebAuthnChallenge) -> PendingWebAuthn:
        ceremony.check_rp_id(request.domain, self._origins)
        user = await self._users.get_user(user_id)
        offered = keys_rules.offered(user, request.user_verification) if user else []
        if not offered:  # ZITADEL: the library refuses to begin (WEBAU-4G8sw, a 500 there)
            raise FailedPrecondition("WEBAU-4G8sw", "Errors.User.WebAuthN.BeginLoginFailed")
        return PendingWebAuthn(
            challenge=ceremony.new_challenge(),
            rp_id=request.domain,
            user_verification=request.user_verification,
            allowed_credentials=tuple(token.credential_id for token in offered),
            expires_ms=self._now() + ceremony.TIMEOUT_MS,
        )

    async def draw_code(
        self, user_id: str, session_id: str, channel: str, request: OtpChallenge
    ) -> DrawnCode:
        user = await self._users.get_user(user_id)
        recipient = _recipient(user, channel)
        if recipient is None or user is None:
            error_id = "COMMAND-BJ2g3" if channel == "otp_sms" else "COMMAND-JKLJ3"
            raise FailedPrecondition(error_id, "Errors.User.MFA.OTP.NotReady")
        now_ms = self._now()
        plain = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
        code = IssuedCode(
            plain=plain,
            code_hash=self._keyring.digest(otp_purpose(user_id), plain),
            expires_ms=now_ms + OTP_TTL_MS,
        )
        if request.return_code:
            return DrawnCode(code=code)
        return DrawnCode(code=code, job=self._job(user, session_id, channel, request, code))

    def _job(
        self, user: User, session_id: str, channel: str, request: OtpChallenge, code: IssuedCode
    ) -> DeliveryJob:
        medium: Channel = "sms" if channel == "otp_sms" else "email"
        return self._messages.compose(
            user,
            channel=medium,
            template=channel,
            recipient=_recipient(user, channel) or "",
            code=code.plain,
            url_template=request.url_template,
            session_id=session_id,
            sent_event=f"session.otp.{medium}.sent",
        )

    def _now(self) -> int:
        return self._clock.now_ms()


def _recipient(user: User | None, channel: str) -> str | None:
    """The verified address of a ready OTP factor, or None (not ready)."""
    human = user.human if user is not None else None
    if human is None:
        return None
    if channel == "otp_sms":
        phone = human.phone
        ready = human.factors.otp_sms and phone is not None and phone.verified
        return phone.number if ready and phone is not None else None
    ready = human.factors.otp_email and human.email.verified
    return human.email.address if ready else None


def _with_failures(error: ServiceError, failed: int) -> ServiceError:
    """ZITADEL reports the failed attempts of a wrong credential (CredentialsCheckError)."""
    return type(error)(error.error_id, error.key, extra={"failedAttempts": failed})
