"""Running one command against one state: the I/O around the pure rules.

For a command with credential checks or challenges, ``execute`` asks ``preflight`` whose
credentials they concern, verifies each check in ZITADEL's order through the ports
(``PasswordVerifier``, ``SecondFactorVerifier``: a failure is recorded on the user and
raised, and the first one ends the command) and draws the codes of OTP challenges; then
``decide`` produces the events and ``evolve`` the next state. Nothing is written here; the
caller commits, with the delivery jobs of codes to be sent.
"""

from __future__ import annotations

import asyncio

import msgspec

from actors import machine
from actors.activity import ActivityPolicy
from actors.commands import Command, CreateSession, Evidence, OtpChallenge, SetSession
from actors.delivery import DeliveryJob
from actors.errors import Internal
from actors.events import Event, TokenSet
from actors.limits import Limits
from actors.model import PendingWebAuthn, SessionState, UserRef
from actors.permissions import Caller, reports_end_users
from actors.ports import (
    Clock,
    DrawnCode,
    IntentVerifier,
    PasswordVerifier,
    SecondFactorVerifier,
    TokenMinter,
    VerifiedFactor,
)


class Deps(msgspec.Struct, frozen=True, kw_only=True):
    """The ports a command needs besides storage."""

    passwords: PasswordVerifier
    clock: Clock
    minter: TokenMinter
    #: None: a process that serves no second factors (tests of the core, the bench twin).
    second_factors: SecondFactorVerifier | None = None
    #: None: a process that serves no IdP sign-in (tests of the core, the bench twin).
    intents: IntentVerifier | None = None
    limits: Limits = Limits()
    activity: ActivityPolicy = ActivityPolicy()


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A handled command: the state after it, and the new token if one was issued."""

    state: SessionState | None
    token: str | None = None
    events: tuple[Event, ...] = ()
    at_ms: int = 0
    #: Codes of OTP challenges asked with ``returnCode``, for this response only.
    otp_sms_code: str | None = None
    otp_email_code: str | None = None
    #: A new WebAuthn challenge: the response carries its request options.
    web_authn_challenge: PendingWebAuthn | None = None
    #: Messages to send, committed with the events.
    jobs: tuple[DeliveryJob, ...] = ()
    #: Sessions of the same user the commit pushed over the per-user cap: to be ended.
    evicted: tuple[str, ...] = ()


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
        activity=deps.activity,
    )
    evidence = Evidence(user=user)
    drawn: _Drawn = _NOTHING_DRAWN
    verified: list[VerifiedFactor] = []
    if isinstance(command, CreateSession | SetSession) and _needs_credentials(command):
        target = machine.preflight(state, command, evidence, ctx)
        if target is not None:
            try:
                evidence = await _verify(state, command, target, evidence, caller, deps, verified)
                drawn = await _draw(session_id, command, target, deps)
                evidence = msgspec.structs.replace(
                    evidence,
                    otp_sms_code=drawn.sms.code if drawn.sms else None,
                    otp_email_code=drawn.email.code if drawn.email else None,
                    web_authn_challenge=drawn.web_authn,
                )
                events = machine.decide(state, command, evidence, ctx)
                if verified:  # the command stands: now the one-use codes are used up
                    await _use_up(verified, session_id, deps)
            except BaseException:
                codes = _codes(verified)
                if codes:
                    await asyncio.shield(_second_factors(deps).release(codes))
                raise
            return _outcome(state, session_id, command, events, ctx, deps, drawn)
    events = machine.decide(state, command, evidence, ctx)
    return _outcome(state, session_id, command, events, ctx, deps, drawn)


def _outcome(
    state: SessionState | None,
    session_id: str,
    command: Command,
    events: list[Event],
    ctx: machine.Context,
    deps: Deps,
    drawn: _Drawn,
) -> Outcome:
    if not events:
        return Outcome(state=state)
    at_ms = max(deps.clock.now_ms(), ctx.now_ms)
    after = machine.evolve_all(state, events, session_id=session_id, at_ms=at_ms)
    token = None
    for event in events:  # a plain loop: cheaper than any() over a generator
        if isinstance(event, TokenSet):
            token = ctx.token.plain
    if drawn is _NOTHING_DRAWN:
        return Outcome(state=after, token=token, events=tuple(events), at_ms=at_ms)
    return Outcome(
        state=after,
        token=token,
        events=tuple(events),
        at_ms=at_ms,
        otp_sms_code=_returned(drawn.sms, drawn.sms_request),
        otp_email_code=_returned(drawn.email, drawn.email_request),
        web_authn_challenge=drawn.web_authn,
        jobs=tuple(d.job for d in (drawn.sms, drawn.email) if d is not None and d.job),
    )


def _needs_credentials(command: CreateSession | SetSession) -> bool:
    """Else ``decide`` runs the same preflight itself, first thing (the hot path)."""
    checks = command.checks
    return checks.password is not None or checks.second_factors or command.challenges.any


async def _verify(
    state: SessionState | None,
    command: CreateSession | SetSession,
    user_id: str,
    evidence: Evidence,
    caller: Caller,
    deps: Deps,
    verified: list[VerifiedFactor],
) -> Evidence:
    """Each requested check in ZITADEL's order; the first failure raises.

    The second factors verified so far are appended to ``verified`` as they pass, so the
    caller can release them if a later check (or anything else) fails.
    """
    checks = command.checks
    checker = _with_client_ip(state, caller)
    if checks.password is not None:
        await deps.passwords.verify_password(user_id, checks.password, caller=checker)
        evidence = msgspec.structs.replace(evidence, password_verified=True)
    if not checks.second_factors:
        return evidence
    intent = checks.idp_intent
    if intent is not None:
        verified.append(await _intents(deps).verify_intent(user_id, intent.intent_id, intent.token))
    if checks.web_authn is None and not _codes_asked(command):
        return msgspec.structs.replace(evidence, verified=frozenset(f.kind for f in verified))
    factors = _second_factors(deps)
    if checks.web_authn is not None:
        challenge = state.web_authn_challenge if state else None
        used = await factors.verify_web_authn(user_id, checks.web_authn, challenge, caller=checker)
        verified.append(used)
        evidence = msgspec.structs.replace(evidence, web_authn_user_verified=used.user_verified)
    if checks.totp is not None:
        verified.append(await factors.verify_totp(user_id, checks.totp, caller=checker))
    if checks.otp_sms is not None:
        pending = state.otp_sms_challenge if state else None
        verified.append(
            await factors.verify_otp(user_id, "otp_sms", checks.otp_sms, pending, caller=checker)
        )
    if checks.otp_email is not None:
        pending = state.otp_email_challenge if state else None
        verified.append(
            await factors.verify_otp(
                user_id, "otp_email", checks.otp_email, pending, caller=checker
            )
        )
    if checks.recovery_code is not None:
        verified.append(
            await factors.verify_recovery_code(user_id, checks.recovery_code, caller=checker)
        )
    return msgspec.structs.replace(evidence, verified=frozenset(factor.kind for factor in verified))


class _Drawn(msgspec.Struct, frozen=True, kw_only=True):
    web_authn: PendingWebAuthn | None = None
    sms: DrawnCode | None = None
    sms_request: OtpChallenge | None = None
    email: DrawnCode | None = None
    email_request: OtpChallenge | None = None


_NOTHING_DRAWN = _Drawn()


async def _draw(
    session_id: str, command: CreateSession | SetSession, user_id: str, deps: Deps
) -> _Drawn:
    """The requested challenges: after the checks, WebAuthn first (ZITADEL's order)."""
    challenges = command.challenges
    if not challenges.any:
        return _NOTHING_DRAWN
    factors = _second_factors(deps)
    web_authn = sms = email = None
    if challenges.web_authn is not None:
        web_authn = await factors.draw_web_authn(user_id, challenges.web_authn)
    if challenges.otp_sms is not None:
        sms = await factors.draw_code(user_id, session_id, "otp_sms", challenges.otp_sms)
    if challenges.otp_email is not None:
        email = await factors.draw_code(user_id, session_id, "otp_email", challenges.otp_email)
    return _Drawn(
        web_authn=web_authn,
        sms=sms,
        sms_request=challenges.otp_sms,
        email=email,
        email_request=challenges.otp_email,
    )


def _codes_asked(command: CreateSession | SetSession) -> bool:
    checks = command.checks
    return not (
        checks.totp is None
        and checks.otp_sms is None
        and checks.otp_email is None
        and checks.recovery_code is None
    )


def _codes(verified: list[VerifiedFactor]) -> list[VerifiedFactor]:
    """The verified factors the second-factor service reserved (all but IdP intents)."""
    return [factor for factor in verified if factor.kind != "idp_intent"]


async def _use_up(verified: list[VerifiedFactor], session_id: str, deps: Deps) -> None:
    """The intent first: of two sessions racing for it, the loser fails before any code burns."""
    for factor in verified:
        if factor.kind == "idp_intent":
            await _intents(deps).consume(factor, session_id)
    codes = _codes(verified)
    if codes:
        await _second_factors(deps).confirm(codes)


def _intents(deps: Deps) -> IntentVerifier:
    if deps.intents is None:
        raise Internal("SESSION-noIntents", "Errors.Internal")
    return deps.intents


def _second_factors(deps: Deps) -> SecondFactorVerifier:
    if deps.second_factors is None:
        raise Internal("SESSION-noFactors", "Errors.Internal")
    return deps.second_factors


def _returned(drawn: DrawnCode | None, request: OtpChallenge | None) -> str | None:
    """The plain code goes into the response only when the client asked for it."""
    if drawn is None or request is None or not request.return_code:
        return None
    return drawn.code.plain
