"""Building and storing new users for AddHumanUser and CreateUser.

Checks what ZITADEL checks before writing (unsupported fields, the email's shape, a oneof of
password and hash), hashes the password, draws the verification codes and resolves the
organization; the handlers in ``app.users_api`` only decode, authorize and respond.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from actors import users as rules
from actors.errors import InvalidArgument, Unimplemented, ValidationFailed
from actors.user_records import Org, User
from app.appkeys import CLOCK, HASHER, USERS
from app.http import caller
from app.users_common import CODE_TTL_MS, code_text
from app.users_wire import CreateUserRequest, HumanIn, Organization, PhoneIn, ProfileIn
from storage.orgs import org_not_found
from storage.user_base import new_id


class Created(msgspec.Struct, frozen=True, kw_only=True):
    user: User
    email_code: str | None = None
    phone_code: str | None = None


def _refuse_unsupported(human: HumanIn) -> None:
    """Never pretend: a client sending these expects them to take effect."""
    pending = [
        name
        for name, value in (("idpLinks", human.idp_links), ("totpSecret", human.totp_secret))
        if value
    ]
    if pending:
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": pending}
        )
    if human.password is not None and human.hashed_password is not None:
        raise ValidationFailed("invalid request: password and hashedPassword are a oneof")
    email = human.email.email
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email:
        raise InvalidArgument("EMAIL-599BI", "Errors.User.Email.Invalid")


def _verification(
    user_id: str, verified: bool, return_code: bool, now_ms: int
) -> tuple[rules.Code | None, str | None]:
    """(stored code, code for the response); a verified address needs no code."""
    if verified:
        return None, None
    plain = code_text()
    return rules.new_code(user_id, plain, now_ms + CODE_TTL_MS), plain if return_code else None


def _phone(
    user_id: str, phone_in: PhoneIn | None, now_ms: int
) -> tuple[rules.Phone | None, str | None]:
    """(stored phone, code for the response); no phone when the request names no number."""
    if phone_in is None or not phone_in.phone:
        return None, None
    code, plain = _verification(
        user_id, phone_in.is_verified, phone_in.return_code is not None, now_ms
    )
    return rules.Phone(number=phone_in.phone, verified=phone_in.is_verified, code=code), plain


async def _password_hash(request: web.Request, human: HumanIn) -> tuple[str, bool]:
    if human.password is not None:
        hashed = await request.app[HASHER].hash(human.password.password)
        return hashed, human.password.change_required
    if human.hashed_password is not None:
        if not request.app[HASHER].accepts(human.hashed_password.hash):
            raise InvalidArgument("COMMAND-hashAlg", "Errors.User.Password.HashUnsupported")
        return human.hashed_password.hash, human.hashed_password.change_required
    return "", False


def _profile(profile: ProfileIn) -> rules.Profile:
    return rules.Profile(
        given_name=profile.given_name,
        family_name=profile.family_name,
        nick_name=profile.nick_name,
        display_name=profile.display_name,
        preferred_language=profile.preferred_language,
        gender=rules.gender_name(profile.gender),
    )


async def create_human(
    request: web.Request, org_id: str, user_id: str | None, username: str | None, human: HumanIn
) -> Created:
    _refuse_unsupported(human)
    now = request.app[CLOCK].now_ms()
    uid = user_id or new_id()
    email_in = human.email
    email_code, email_plain = _verification(
        uid, email_in.is_verified, email_in.return_code is not None, now
    )
    phone, phone_plain = _phone(uid, human.phone, now)
    password_hash, change_required = await _password_hash(request, human)
    spec = rules.HumanSpec(
        user_id=uid,
        org_id=org_id,
        username=username or email_in.email,
        profile=_profile(human.profile),
        phone=phone,
        password_hash=password_hash,
        email=rules.Email(address=email_in.email, verified=email_in.is_verified, code=email_code),
        password_change_required=change_required,
        email_code_returned=email_plain is not None,
        phone_code_returned=phone_plain is not None,
    )
    user = await request.app[USERS].create_user(
        rules.new_human(spec, now), creator_id=caller(request).user_id
    )
    return Created(user=user, email_code=email_plain, phone_code=phone_plain)


async def create_machine(request: web.Request, org_id: str, body: CreateUserRequest) -> Created:
    assert body.machine is not None  # noqa: S101 - checked by the caller
    user_id = body.user_id or new_id()
    change = rules.new_machine(
        user_id=user_id,
        org_id=org_id,
        username=body.username or user_id,
        name=body.machine.name,
        description=body.machine.description,
        now_ms=request.app[CLOCK].now_ms(),
    )
    user = await request.app[USERS].create_user(change, creator_id=caller(request).user_id)
    return Created(user=user)


async def organization(request: web.Request, wanted: Organization | None) -> Org:
    """By id or by domain; the default organization when the request names none."""
    users = request.app[USERS]
    if wanted is not None and wanted.org_id:
        org = await users.get_org(wanted.org_id)
    elif wanted is not None and wanted.org_domain:
        org = await users.org_by_domain(wanted.org_domain)
    else:
        org = await users.get_org(await users.default_org_id())
    if org is None:
        raise org_not_found()
    return org
