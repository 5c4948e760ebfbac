"""The page's JSON endpoints: each one step of a sign-in, done through the API.

Every endpoint is ``POST /login/api/<step>`` and passes the CSRF guard first. The session id
and token travel only between this backend and the API; the browser gets the next step,
the user's names and the checked factors, never a token. An API error becomes a readable
message: the API's own (English) message for 4xx answers, a generic one otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import msgspec
import structlog
from aiohttp import web

from app.login import bodies, cookies
from app.login.api import Api, ApiError
from app.login.cookies import SessionCookie
from app.login.guard import csrf_failure
from app.login.steps import factor_list, next_step, user_summary

log = structlog.get_logger("sessiond.login")
B = TypeVar("B", bound=bodies.Body)
#: A signed-in session lasts half a day (the cookie the same).
SESSION_LIFETIME = "43200s"
UNAVAILABLE = "The sign-in service is unavailable, please try again."
NOT_SUPPORTED = "This server does not support that yet."


@dataclass(frozen=True, slots=True)
class LoginConfig:
    origins: tuple[str, ...]
    rp_id: str


@dataclass(slots=True)
class Outcome:
    """What a step answers: a JSON body and, when it changed, the new session cookie."""

    body: dict[str, Any]
    cookie: SessionCookie | None = None
    clear: bool = False


Step = Callable[[Api, web.Request, SessionCookie | None, B], Awaitable[Outcome]]
API = web.AppKey("login_api", Api)
CONFIG = web.AppKey("login_config", LoginConfig)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type="application/json"
    )


def _failure(exc: ApiError) -> web.Response:
    if exc.status == 501 or (exc.status == 404 and not exc.error_id):  # no such RPC here
        return _json({"error": NOT_SUPPORTED}, 501)
    if exc.status >= 500 or exc.status == 401 or not exc.message:
        log.warning("login api call failed", status=exc.status, error_id=exc.error_id)
        return _json({"error": UNAVAILABLE}, 502)
    return _json({"error": exc.message, "errorId": exc.error_id}, exc.status)


def endpoint(body_type: type[B], step: Step[B]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The guard, the body decoding and the error mapping around one step."""
    decoder = msgspec.json.Decoder(body_type)

    async def handler(request: web.Request) -> web.Response:
        config = request.app[CONFIG]
        refused = csrf_failure(request, config.origins)
        if refused is not None:
            return _json({"error": f"Request refused: {refused}."}, 403)
        try:
            body = decoder.decode(await request.read())
        except msgspec.ValidationError as exc:
            return _json({"error": f"Invalid request: {exc}"}, 400)
        except msgspec.DecodeError:
            return _json({"error": "Invalid request: the body is not JSON."}, 400)
        try:
            outcome = await step(request.app[API], request, cookies.read_session(request), body)
        except ApiError as exc:
            return _failure(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:  # the API did not answer at all
            log.warning("login api unreachable", error=type(exc).__name__)
            return _json({"error": UNAVAILABLE}, 502)
        response = _json(outcome.body)
        if outcome.clear:
            cookies.clear_session(response)
        elif outcome.cookie is not None:
            secure = cookies.is_secure(request, config.origins)
            cookies.write_session(response, outcome.cookie, secure=secure)
        return response

    return handler


def _required(cookie: SessionCookie | None) -> SessionCookie:
    if cookie is None:
        raise ApiError(400, 9, "LOGIN-noSession", "Start by entering your login name.")
    return cookie


async def _state(api: Api, cookie: SessionCookie | None) -> Outcome:
    """The session as the page shows it; a session the API no longer knows starts over."""
    if cookie is None:
        return Outcome({"step": "loginName"})
    try:
        session = await api.get_session(cookie.session_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return Outcome({"step": "loginName"}, clear=True)
    if _expired(session):
        return Outcome({"step": "loginName"}, clear=True)
    factors = session.get("factors") or {}
    user = user_summary(factors)
    methods = await api.authentication_methods(user["id"]) if user.get("id") else frozenset()
    step, options = next_step(factors, methods)
    body: dict[str, Any] = {
        "step": step,
        "options": options,
        "user": {k: v for k, v in user.items() if k != "id"},
        "factors": factor_list(factors),
        "expirationDate": session.get("expirationDate", ""),
    }
    if step == "signedIn":
        body["passkeys"] = await _passkeys(api, user["id"])
    return Outcome(body)


def _expired(session: dict[str, Any]) -> bool:
    """Expired sessions stay readable for a while; for the page they are over."""
    raw = session.get("expirationDate")
    if not isinstance(raw, str) or not raw:
        return False
    try:
        return datetime.fromisoformat(raw) <= datetime.now(UTC)
    except ValueError:
        return False


async def _passkeys(api: Api, user_id: str) -> list[dict[str, str]] | None:
    """The user's passkeys (name, state); None when this server has no passkey API."""
    try:
        found = await api.list_passkeys(user_id)
    except ApiError as exc:
        if exc.status in (404, 501):
            return None
        raise
    return [{"name": str(p.get("name", "")), "state": str(p.get("state", ""))} for p in found]


async def _after_set(api: Api, cookie: SessionCookie, reply: dict[str, Any]) -> Outcome:
    """The new state, with the rotated session token stored when the API sent one."""
    token = reply.get("sessionToken")
    if isinstance(token, str) and token:
        cookie = SessionCookie(cookie.session_id, token)
    outcome = await _state(api, cookie)
    outcome.cookie = outcome.cookie or (None if outcome.clear else cookie)
    return outcome


async def state(
    api: Api, _: web.Request, cookie: SessionCookie | None, __: bodies.Empty
) -> Outcome:
    return await _state(api, cookie)


async def start(
    api: Api, request: web.Request, cookie: SessionCookie | None, body: bodies.StartIn
) -> Outcome:
    """CreateSession with the user check; a previous session of this browser is ended."""
    if cookie is not None:
        await _delete_quietly(api, cookie)
    user_agent = {
        "ip": (request.remote or "")[:64],
        "description": request.headers.get("User-Agent", "")[:1024],
    }
    reply = await api.create_session(
        {
            "checks": {"user": {"loginName": body.login_name}},
            "lifetime": SESSION_LIFETIME,
            "userAgent": user_agent,
        }
    )
    fresh = SessionCookie(str(reply["sessionId"]), str(reply["sessionToken"]))
    return await _after_set(api, fresh, {})


async def _check(api: Api, cookie: SessionCookie | None, checks: dict[str, Any]) -> Outcome:
    """One SetSession with ``checks`` on the signed-in session, then where it stands."""
    current = _required(cookie)
    reply = await api.set_session(current.session_id, {"checks": checks})
    return await _after_set(api, current, reply)


async def password(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.PasswordIn
) -> Outcome:
    return await _check(api, cookie, {"password": {"password": body.password}})


async def webauthn_challenge(
    api: Api, request: web.Request, cookie: SessionCookie | None, body: bodies.ChallengeIn
) -> Outcome:
    """A webAuthN challenge for this RP id; the browser gets only the request options."""
    current = _required(cookie)
    requirement = "REQUIRED" if body.kind == "passkey" else "DISCOURAGED"
    challenge = {
        "domain": request.app[CONFIG].rp_id,
        "userVerificationRequirement": f"USER_VERIFICATION_REQUIREMENT_{requirement}",
    }
    reply = await api.set_session(current.session_id, {"challenges": {"webAuthN": challenge}})
    options = ((reply.get("challenges") or {}).get("webAuthN") or {}).get(
        "publicKeyCredentialRequestOptions"
    ) or {}
    return Outcome({"publicKey": options.get("publicKey", {})}, cookie=_rotated(current, reply))


def _rotated(current: SessionCookie, reply: dict[str, Any]) -> SessionCookie | None:
    """The cookie with the session's new token, when the write issued one."""
    token = reply.get("sessionToken")
    return SessionCookie(current.session_id, token) if isinstance(token, str) else None


async def webauthn_check(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.CredentialIn
) -> Outcome:
    return await _check(api, cookie, {"webAuthN": {"credentialAssertionData": body.credential}})


async def totp(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.CodeIn
) -> Outcome:
    return await _check(api, cookie, {"totp": {"code": body.code}})


#: How the API sends each OTP challenge's code: to the verified phone / e-mail address,
#: never back to this page (``returnCode`` would hand the browser the second factor).
_OTP_SEND: dict[str, dict[str, object]] = {"otpSms": {}, "otpEmail": {"sendCode": {}}}


async def otp_send(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.OtpSendIn
) -> Outcome:
    """An OTP challenge whose code the API delivers by SMS or e-mail."""
    current = _required(cookie)
    challenges = {body.channel: _OTP_SEND[body.channel]}
    reply = await api.set_session(current.session_id, {"challenges": challenges})
    return Outcome({"sent": body.channel}, cookie=_rotated(current, reply))


async def otp_check(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.OtpCheckIn
) -> Outcome:
    return await _check(api, cookie, {body.channel: {"code": body.code}})


async def _user_id(api: Api, cookie: SessionCookie) -> str:
    session = await api.get_session(cookie.session_id)
    user_id = user_summary(session.get("factors") or {}).get("id", "")
    if not user_id:
        raise ApiError(400, 9, "LOGIN-noUser", "Sign in first.")
    return user_id


async def passkey_options(
    api: Api, request: web.Request, cookie: SessionCookie | None, _: bodies.Empty
) -> Outcome:
    """RegisterPasskey as the user (their session token is the bearer), for this RP id."""
    current = _required(cookie)
    user_id = await _user_id(api, current)
    reply = await api.register_passkey(
        user_id, request.app[CONFIG].rp_id, session_token=current.token
    )
    options = reply.get("publicKeyCredentialCreationOptions") or {}
    return Outcome(
        {"passkeyId": str(reply.get("passkeyId", "")), "publicKey": options.get("publicKey", {})}
    )


async def passkey_verify(
    api: Api, _: web.Request, cookie: SessionCookie | None, body: bodies.PasskeyVerifyIn
) -> Outcome:
    current = _required(cookie)
    user_id = await _user_id(api, current)
    name = body.name.strip() or "passkey"
    await api.verify_passkey(
        user_id, body.passkey_id, body.credential, name, session_token=current.token
    )
    outcome = await _state(api, current)
    outcome.body["registered"] = name
    return outcome


async def logout(
    api: Api, _: web.Request, cookie: SessionCookie | None, __: bodies.Empty
) -> Outcome:
    """DeleteSession: the session ends for every client, not just this cookie."""
    if cookie is not None:
        await _delete_quietly(api, cookie)
    return Outcome({"step": "loginName"}, clear=True)


async def _delete_quietly(api: Api, cookie: SessionCookie) -> None:
    try:
        await api.delete_session(cookie.session_id)
    except ApiError as exc:
        if exc.status != 404:  # already gone is what we wanted
            raise


ROUTES: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = {
    "state": endpoint(bodies.Empty, state),
    "start": endpoint(bodies.StartIn, start),
    "password": endpoint(bodies.PasswordIn, password),
    "webauthn/challenge": endpoint(bodies.ChallengeIn, webauthn_challenge),
    "webauthn/check": endpoint(bodies.CredentialIn, webauthn_check),
    "totp": endpoint(bodies.CodeIn, totp),
    "otp/send": endpoint(bodies.OtpSendIn, otp_send),
    "otp/check": endpoint(bodies.OtpCheckIn, otp_check),
    "passkeys/options": endpoint(bodies.Empty, passkey_options),
    "passkeys/verify": endpoint(bodies.PasskeyVerifyIn, passkey_verify),
    "logout": endpoint(bodies.Empty, logout),
}
