"""The session rules: ``decide`` turns a command into events, ``evolve`` folds them in.

Pure: no I/O, no clock, no randomness; those come in via ``Context`` and ``Evidence``.

Theory of operation (ZITADEL's order, spec §3-§4):

1. A user check resolves the user first; a user that is not enabled fails before anything.
2. Permissions are checked on the session as loaded (or the instance for a new session).
3. Writes to a terminated or expired session fail.
4. Checks run in the fixed order user → password → idpIntent → webAuthN → totp → otpSms →
   otpEmail → recoveryCode;
   a check other than ``user``, and every challenge, needs a user on the session, stored or
   checked earlier in the same request. The first failure aborts the whole command and no
   event is produced (failed attempts are recorded on the user, outside this module).
5. Challenges (WebAuthn, OTP SMS, OTP e-mail): a new one replaces the pending one of its
   kind; a successful check clears its challenge, so a code or assertion is used once.
6. Metadata (merge; one event with the full map; bounded by ``Limits``), then lifetime (an
   expiration past year 9999 is refused), then — only if something was produced — a new
   token. A command that changes nothing produces nothing and keeps the token.

``preflight`` runs steps 1-4 without credential evidence, so the actor knows whose
credentials to verify before calling ``decide``; ``decide`` repeats it, so it alone is the
spec. Verification itself is I/O (hashes, the user's factors, lockout counters) and happens
in ``actors.execute``; ``check_otp`` is the pure part of the OTP check.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import msgspec

from actors import activity, limits, tokens
from actors.activity import ActivityPolicy
from actors.commands import (
    Checks,
    Command,
    CreateSession,
    DeleteSession,
    Evidence,
    ResetAuthentication,
    SetSession,
    SignOnReport,
    TouchSession,
)
from actors.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    permission_denied,
)
from actors.events import (
    ActivityEvent,
    ActivitySet,
    AuthenticationReset,
    Event,
    IdleTimeoutSet,
    IntentChecked,
    LifetimeSet,
    MetadataSet,
    OtpEmailChallenged,
    OtpEmailChecked,
    OtpSmsChallenged,
    OtpSmsChecked,
    PasswordChecked,
    RecoveryCodeChecked,
    SessionAdded,
    SignOnReported,
    Terminated,
    TokenSet,
    TotpChecked,
    UserChecked,
    WebAuthNChallenged,
    WebAuthNChecked,
)
from actors.limits import Limits
from actors.model import (
    CheckedFactor,
    Factors,
    PendingCode,
    PendingWebAuthn,
    SessionState,
    UserFactor,
    WebAuthnFactor,
)
from actors.permissions import Caller
from actors.tokens import IssuedToken


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What the outside world contributes to one decision."""

    now_ms: int
    caller: Caller
    token: IssuedToken
    limits: Limits = Limits()
    activity: ActivityPolicy = ActivityPolicy()


def _user_not_active() -> FailedPrecondition:
    return FailedPrecondition("SESSION-Gj4ko", "Errors.User.NotActive")


def session_not_found() -> NotFound:
    return NotFound("QUERY-SFeaa", "Errors.Session.NotExisting")


def _target_user(
    state: SessionState | None,
    checks: Checks,
    evidence_user_id: str | None,
) -> str | None:
    """The user the password (and later factors) must belong to."""
    if checks.user is not None:
        return evidence_user_id
    return state.user_id if state else None


def preflight(
    state: SessionState | None, command: Command, evidence: Evidence, ctx: Context
) -> str | None:
    """Validate everything that needs no credential evidence.

    Returns the user whose credentials the checks and challenges need (None if none do).
    """
    _check_presented_st_token(state, command)
    match command:
        case CreateSession(checks=checks):
            _check_user_evidence(checks, evidence)
            if not ctx.caller.has("session.write"):
                raise permission_denied()
            return _check_factor_prerequisites(None, command, evidence)
        case SetSession(checks=checks):
            _check_user_evidence(checks, evidence)
            live = _writable(state, ctx)
            return _check_factor_prerequisites(live, command, evidence)
        case DeleteSession() | TouchSession() | ResetAuthentication():
            return None


def _check_presented_st_token(state: SessionState | None, command: Command) -> None:
    """A request that named the session by its PingOne token: a replaced one names nothing."""
    presented = getattr(command, "presented_st_hash", None)
    if presented is None:
        return
    if state is None or not hmac.compare_digest(state.st_token_hash, presented):
        raise session_not_found()


def _check_user_evidence(checks: Checks, evidence: Evidence) -> None:
    if checks.user is None:
        return
    if evidence.user is None:
        raise Internal("SESSION-noUser", "Errors.Internal")
    if not evidence.user.is_enabled:
        raise _user_not_active()


def _writable(state: SessionState | None, ctx: Context) -> SessionState:
    if state is None:
        raise NotFound("COMMAND-Flk38", "Errors.Session.NotExisting")
    if not ctx.caller.has("session.write", state.user_org_id):
        raise permission_denied()
    if state.terminated:
        raise FailedPrecondition("COMMAND-Hewfq", "Errors.Session.Terminated")
    if state.is_expired(ctx.now_ms):
        raise FailedPrecondition("COMMAND-Hkl3d", "Errors.Session.Expired")
    return state


#: A check other than ``user`` with no user on the session: ZITADEL's error per check.
_USER_MISSING: dict[str, ServiceError] = {
    "password": FailedPrecondition("COMMAND-Sfw3f", "Errors.User.UserIDMissing"),
    "idp_intent": FailedPrecondition("COMMAND-Sfw3r", "Errors.User.UserIDMissing"),
    "web_authn": FailedPrecondition("COMMAND-Sfw3r", "Errors.User.UserIDMissing"),
    "totp": FailedPrecondition("COMMAND-8N9ds", "Errors.User.UserIDMissing"),
    "otp_sms": InvalidArgument("COMMAND-S453v", "Errors.User.UserIDMissing"),
    "otp_email": InvalidArgument("COMMAND-S453v", "Errors.User.UserIDMissing"),
    "recovery_code": InvalidArgument("COMMAND-4m9s2", "Errors.User.UserIDMissing"),
    "challenge_web_authn": FailedPrecondition("COMMAND-eeR2e", "Errors.User.UserIDMissing"),
    "challenge_otp_sms": FailedPrecondition("COMMAND-JKL3g", "Errors.User.UserIDMissing"),
    "challenge_otp_email": FailedPrecondition("COMMAND-JK3gp", "Errors.User.UserIDMissing"),
}
#: The credential checks after ``user``, in ZITADEL's fixed order.
CREDENTIAL_CHECKS = (
    "password",
    "idp_intent",
    "web_authn",
    "totp",
    "otp_sms",
    "otp_email",
    "recovery_code",
)


def _user_missing(check: str) -> ServiceError:
    template = _USER_MISSING[check]
    return type(template)(template.error_id, template.key)  # fresh: errors carry tracebacks


def _check_factor_prerequisites(
    state: SessionState | None, command: CreateSession | SetSession, evidence: Evidence
) -> str | None:
    checks = command.checks
    evidence_user_id = evidence.user.id if evidence.user else None
    if (
        checks.user is not None
        and state is not None
        and state.user_id
        not in (
            None,
            evidence_user_id,
        )
    ):
        raise InvalidArgument("", "user change not possible")
    target = _target_user(state, checks, evidence_user_id)
    asked = [name for name in CREDENTIAL_CHECKS if getattr(checks, name) is not None]
    challenges = command.challenges
    if challenges.web_authn is not None:
        asked.append("challenge_web_authn")
    if challenges.otp_sms is not None:
        asked.append("challenge_otp_sms")
    if challenges.otp_email is not None:
        asked.append("challenge_otp_email")
    if asked and target is None:
        raise _user_missing(asked[0])
    return target if asked else None


def decide(
    state: SessionState | None, command: Command, evidence: Evidence, ctx: Context
) -> list[Event]:
    """The events this command produces, or a ServiceError; never a partial list."""
    preflight(state, command, evidence, ctx)
    match command:
        case DeleteSession():
            return _decide_delete(state, command, ctx)
        case TouchSession():
            return _decide_touch(state, ctx)
        case ResetAuthentication():
            return _decide_reset(_writable(state, ctx))
        case _:
            pass
    events: list[Event] = []
    current = state
    if isinstance(command, CreateSession):
        limits.check_user_agent(command.user_agent, ctx.limits)
        events.append(SessionAdded(creator_id=ctx.caller.user_id, user_agent=command.user_agent))
    events.extend(_check_events(command.checks, evidence, ctx.now_ms))
    events.extend(_challenge_events(command, evidence))
    events.extend(_report_events(current, command, ctx))
    metadata = merge_metadata(current.metadata if current else {}, command.metadata)
    if metadata is not None and (current is not None or metadata):
        limits.check_metadata(metadata, ctx.limits)
        events.append(MetadataSet(metadata=metadata))
    if command.lifetime_ms is not None:
        if command.lifetime_ms <= 0:
            raise InvalidArgument("COMMAND-asEG4", "Errors.Session.PositiveLifetime")
        limits.check_expiration(ctx.now_ms, command.lifetime_ms)
        events.append(LifetimeSet(lifetime_ms=command.lifetime_ms))
    if events and command.report is None:  # PingOne writes leave ZITADEL's token alone
        events.append(TokenSet(token_id=ctx.token.token_id, token_hash=ctx.token.token_hash))
    return events


#: How far in the future a reported ``activeAt`` may lie (clock skew between systems).
ACTIVE_AT_SKEW_MS = 300_000


def _report_events(
    current: SessionState | None, command: CreateSession | SetSession, ctx: Context
) -> list[Event]:
    """A PingOne report's changes; on a new ZITADEL session, the default idle timeout."""
    report = command.report
    if report is None:
        default_idle = ctx.activity.default_idle_timeout_ms
        if current is None and default_idle > 0:
            return [IdleTimeoutSet(idle_timeout_ms=default_idle)]
        return []
    _check_report(report, ctx.now_ms)
    idle = report.idle_timeout_ms
    if idle is None and current is None and ctx.activity.default_idle_timeout_ms > 0:
        idle = ctx.activity.default_idle_timeout_ms
    token_hash = report.st_token_hash
    agent = report.agent
    return [
        SignOnReported(
            active_ms=report.active_ms,
            location=report.location,
            sign_on=report.sign_on,
            idle_timeout_ms=idle if current is None or current.idle_timeout_ms != idle else None,
            agent=agent if current is None or current.agent != agent else None,
            st_token_hash=token_hash
            if current is None or current.st_token_hash != token_hash
            else None,
        )
    ]


def _check_report(report: SignOnReport, now_ms: int) -> None:
    if report.active_ms > now_ms + ACTIVE_AT_SKEW_MS:
        raise InvalidArgument("SESSION-activeAt", "activeAt lies in the future")
    idle = report.idle_timeout_ms
    if idle is not None and not 0 < idle <= activity.MAX_IDLE_TIMEOUT_MS:
        raise InvalidArgument("SESSION-idleTimeout", "idleTimeoutInMinutes out of range")
    if idle is not None:
        limits.check_expiration(report.active_ms, idle)


def _decide_touch(state: SessionState | None, ctx: Context) -> list[Event]:
    """A read with the session's own PingOne token: activity, throttled."""
    if state is None or state.terminated or state.is_expired(ctx.now_ms):
        raise session_not_found()
    if not ctx.caller.has("session.read", state.user_org_id):
        raise permission_denied()
    if not activity.is_due(state, ctx.now_ms, ctx.activity):
        return []
    return [ActivitySet(active_ms=ctx.now_ms)]


def _decide_reset(state: SessionState) -> list[Event]:
    """Only the user stays; nothing to clear, nothing happens."""
    cleared = msgspec.structs.replace(
        state,
        factors=Factors(user=state.factors.user),
        otp_sms_challenge=None,
        otp_email_challenge=None,
        web_authn_challenge=None,
    )
    return [] if cleared == state else [AuthenticationReset()]


def _check_events(checks: Checks, evidence: Evidence, now_ms: int) -> list[Event]:
    events: list[Event] = []
    if checks.user is not None and evidence.user is not None:
        user = evidence.user
        events.append(
            UserChecked(
                user_id=user.id,
                user_org_id=user.org_id,
                checked_at_ms=now_ms,
                login_name=user.login_name,
                display_name=user.display_name,
                preferred_language=user.preferred_language,
                view_version=user.view_version,
            )
        )
    if checks.password is not None:
        if not evidence.password_verified:
            raise Internal("SESSION-noPassword", "Errors.Internal")
        events.append(PasswordChecked(checked_at_ms=now_ms))
    if checks.idp_intent is not None:
        if "idp_intent" not in evidence.verified:
            raise Internal("SESSION-notVerified", "Errors.Internal")
        events.append(IntentChecked(checked_at_ms=now_ms))
    if checks.web_authn is not None:
        if "web_authn" not in evidence.verified:
            raise Internal("SESSION-notVerified", "Errors.Internal")
        user_verified = evidence.web_authn_user_verified
        events.append(WebAuthNChecked(checked_at_ms=now_ms, user_verified=user_verified))
    for name, event_class in _SECOND_FACTOR_EVENTS:
        if getattr(checks, name) is None:
            continue
        if name not in evidence.verified:  # execute verifies first, or raises
            raise Internal("SESSION-notVerified", "Errors.Internal")
        events.append(event_class(checked_at_ms=now_ms))
    return events


_SECOND_FACTOR_EVENTS: tuple[
    tuple[str, type[TotpChecked | OtpSmsChecked | OtpEmailChecked | RecoveryCodeChecked]], ...
] = (
    ("totp", TotpChecked),
    ("otp_sms", OtpSmsChecked),
    ("otp_email", OtpEmailChecked),
    ("recovery_code", RecoveryCodeChecked),
)


def _challenge_events(command: CreateSession | SetSession, evidence: Evidence) -> list[Event]:
    """After the checks, WebAuthn first (ZITADEL's order); each replaces its pending kind.

    An OTP challenge stores only its code's hash.
    """
    events: list[Event] = []
    if command.challenges.web_authn is not None:
        pending = evidence.web_authn_challenge
        if pending is None:
            raise Internal("SESSION-noChallenge", "Errors.Internal")
        events.append(WebAuthNChallenged(pending=pending))
    sms, email = command.challenges.otp_sms, command.challenges.otp_email
    if sms is not None:
        code = evidence.otp_sms_code
        if code is None:
            raise Internal("SESSION-noCode", "Errors.Internal")
        events.append(
            OtpSmsChallenged(
                code_hash=code.code_hash, expires_ms=code.expires_ms, code_returned=sms.return_code
            )
        )
    if email is not None:
        code = evidence.otp_email_code
        if code is None:
            raise Internal("SESSION-noCode", "Errors.Internal")
        events.append(
            OtpEmailChallenged(
                code_hash=code.code_hash,
                expires_ms=code.expires_ms,
                return_code=email.return_code,
                url_template=email.url_template or "",
            )
        )
    return events


def check_otp(
    pending: PendingCode | None, code_matches: Callable[[str], bool], now_ms: int
) -> ServiceError | None:
    """The OTP SMS / e-mail check against the session's challenge (spec §4.6 steps 4-5).

    None if the code is right; else the error. Expired and wrong codes count as failures
    (``counts_as_failure``); a missing challenge does not.
    """
    if pending is None:
        return FailedPrecondition("COMMAND-S34gh", "Errors.User.Code.NotFound")
    if pending.expires_ms < now_ms:
        return FailedPrecondition("CODE-QvUQ4P", "Errors.User.Code.Expired")
    if not code_matches(pending.code_hash):
        return InvalidArgument("CODE-woT0xc", "Errors.User.Code.Invalid")
    return None


def check_web_authn_challenge(
    pending: PendingWebAuthn | None, now_ms: int
) -> PendingWebAuthn | ServiceError:
    """The session's WebAuthn challenge an assertion answers, or COMMAND-Ioqu5.

    An expired challenge (past the timeout its options advertised) is no challenge.
    """
    if pending is None or pending.expires_ms < now_ms:
        return FailedPrecondition("COMMAND-Ioqu5", "Errors.Session.WebAuthN.NoChallenge")
    return pending


def counts_as_failure(error: ServiceError) -> bool:
    """Whether an OTP check error is a failed attempt (toward the lockout)."""
    return error.error_id in ("CODE-QvUQ4P", "CODE-woT0xc")


def merge_metadata(current: dict[str, bytes], update: dict[str, bytes]) -> dict[str, bytes] | None:
    """ZITADEL's merge: set differing non-empty values, delete on empty; None if unchanged."""
    merged = dict(current)
    for key, value in update.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    return None if merged == current else merged


def _decide_delete(state: SessionState | None, command: DeleteSession, ctx: Context) -> list[Event]:
    if command.session_token is not None:
        if state is None or not tokens.verify(
            command.session_token,
            prefix=tokens.SESSION_PREFIX,
            owner_id=state.id,
            stored_hash=state.token_hash,
        ):
            raise PermissionDenied("COMMAND-sGr42", "Errors.Session.Token.Invalid")
    elif not (state is not None and state.user_id and state.user_id == ctx.caller.user_id):
        org = state.user_org_id if state else None
        if not ctx.caller.has("session.delete", org):
            raise permission_denied()
    if state is None or state.terminated:
        return []
    return [Terminated(reason=command.reason)]


def evolve(
    state: SessionState | None, event: Event, *, session_id: str, at_ms: int
) -> SessionState:
    """Fold one event into the state; every event bumps ``sequence`` and ``change_ms``."""
    if state is None:
        if not isinstance(event, SessionAdded):
            raise Internal("SESSION-evolve", "Errors.Internal")
        return SessionState(
            id=session_id,
            creation_ms=at_ms,
            change_ms=at_ms,
            sequence=1,
            creator_id=event.creator_id,
            user_agent=event.user_agent,
        )
    changes = _changes(state, event, at_ms)
    return msgspec.structs.replace(state, sequence=state.sequence + 1, change_ms=at_ms, **changes)


def _changes(state: SessionState, event: Event, at_ms: int) -> dict[str, object]:
    match event:
        case UserChecked():
            user = UserFactor(
                id=event.user_id,
                org_id=event.user_org_id,
                verified_at_ms=event.checked_at_ms,
                login_name=event.login_name,
                display_name=event.display_name,
                view_version=event.view_version,
            )
            return {"factors": msgspec.structs.replace(state.factors, user=user)}
        case PasswordChecked(checked_at_ms=at) | IntentChecked(checked_at_ms=at):
            name = "password" if isinstance(event, PasswordChecked) else "intent"
            checked = CheckedFactor(verified_at_ms=at)
            return {"factors": msgspec.structs.replace(state.factors, **{name: checked})}
        case WebAuthNChecked(checked_at_ms=at, user_verified=user_verified):
            web_authn = WebAuthnFactor(verified_at_ms=at, user_verified=user_verified)
            factors = msgspec.structs.replace(state.factors, web_authn=web_authn)
            return {"factors": factors, "web_authn_challenge": None}  # an assertion, once
        case WebAuthNChallenged(pending=challenge):
            return {"web_authn_challenge": challenge}
        case TotpChecked() | OtpSmsChecked() | OtpEmailChecked() | RecoveryCodeChecked():
            return _second_factor_checked(state, event)
        case (
            OtpSmsChallenged(code_hash=code_hash, expires_ms=expires_ms)
            | OtpEmailChallenged(code_hash=code_hash, expires_ms=expires_ms)
        ):
            field = (
                "otp_sms_challenge"
                if isinstance(event, OtpSmsChallenged)
                else "otp_email_challenge"
            )
            return {field: PendingCode(code_hash=code_hash, expires_ms=expires_ms)}
        case MetadataSet(metadata=metadata):
            return {"metadata": metadata}
        case LifetimeSet(lifetime_ms=lifetime_ms):
            return {"lifetime_ms": lifetime_ms, "expiration_ms": at_ms + lifetime_ms}
        case TokenSet(token_id=token_id, token_hash=token_hash):
            # A ZITADEL write is activity: ``last_active_ms`` falls back to this write's time.
            return {"token_id": token_id, "token_hash": token_hash, "active_ms": None}
        case SessionAdded():
            raise Internal("SESSION-added-twice", "Errors.Internal")
        case Terminated():
            return {"terminated": True}  # factors stay: a repeated delete by the user is allowed
        case _:
            return _activity_changes(state, event)


def _reported_changes(state: SessionState, event: SignOnReported) -> dict[str, object]:
    changes: dict[str, object] = {
        "active_ms": event.active_ms,
        "sign_on": event.sign_on if event.sign_on is not None else state.sign_on,
        "locations": activity.with_location(state.locations, event.location),
    }
    if event.idle_timeout_ms is not None:
        changes["idle_timeout_ms"] = event.idle_timeout_ms
    if event.agent is not None:
        changes["agent"] = event.agent
    if event.st_token_hash is not None:
        changes["st_token_hash"] = event.st_token_hash
    return changes


def _activity_changes(state: SessionState, event: ActivityEvent) -> dict[str, object]:
    """The events that are not ZITADEL's: activity and the PingOne fields."""
    match event:
        case ActivitySet(active_ms=active_ms):
            return {"active_ms": active_ms}
        case IdleTimeoutSet(idle_timeout_ms=idle_ms):
            return {"idle_timeout_ms": idle_ms}
        case SignOnReported():
            return _reported_changes(state, event)
        case _:  # AuthenticationReset
            return {
                "factors": Factors(user=state.factors.user),
                "otp_sms_challenge": None,
                "otp_email_challenge": None,
                "web_authn_challenge": None,
            }


def _second_factor_checked(
    state: SessionState,
    event: TotpChecked | OtpSmsChecked | OtpEmailChecked | RecoveryCodeChecked,
) -> dict[str, object]:
    """The factor's ``verifiedAt``; an OTP code is used once, so its challenge goes."""
    name = _FACTOR_OF_EVENT[type(event)]
    checked = CheckedFactor(verified_at_ms=event.checked_at_ms)
    changes: dict[str, object] = {
        "factors": msgspec.structs.replace(state.factors, **{name: checked})
    }
    if name in ("otp_sms", "otp_email"):
        changes[f"{name}_challenge"] = None
    return changes


_FACTOR_OF_EVENT: dict[type, str] = {cls: name for name, cls in _SECOND_FACTOR_EVENTS}


def evolve_all(
    state: SessionState | None, events: list[Event], *, session_id: str, at_ms: int
) -> SessionState | None:
    for event in events:
        state = evolve(state, event, session_id=session_id, at_ms=at_ms)
    return state
