"""AddHumanUser and CreateUser: checking, hashing, drawing codes, storing a new user.

Checks what ZITADEL checks before writing (unsupported fields, the email's shape, a oneof of
password and hash, an imported TOTP seed's base32), hashes the password, seals the seed,
draws the verification codes and resolves the organization. A ``sendCode`` verification
is queued for delivery in the same write as the user (``app.services.messages``).
"""

from __future__ import annotations

import msgspec

from actors import url_templates
from actors import users as rules
from actors.delivery import DeliveryJob
from actors.errors import InvalidArgument, ValidationFailed
from actors.permissions import Caller
from actors.timefmt import rfc3339_ms
from actors.user_records import Org, User, org_not_found
from app.services.intent_ports import IdpLookup
from app.services.messages import MessageComposer
from app.services.sealing import Keyring
from app.services.user_common import CODE_TTL_MS, UserServiceBase, code_text, require
from app.services.user_factors import totp_purpose
from app.services.user_links import configured_links, with_links
from app.services.user_wire import (
    AddHumanUserRequest,
    AddHumanUserResponse,
    CreateUserRequest,
    CreateUserResponse,
    HumanIn,
    Organization,
    PhoneIn,
    ProfileIn,
    details,
)


class Created(msgspec.Struct, frozen=True, kw_only=True):
    user: User
    email_code: str | None = None
    phone_code: str | None = None


#: Path segments of the REST user routes: a user with such an id could not be addressed.
RESERVED_USER_IDS = frozenset({"human", "new"})


def _check_user_id(user_id: str | None) -> None:
    if user_id in RESERVED_USER_IDS:
        raise ValidationFailed(f"invalid request: userId {user_id!r} is reserved")


def _refuse_unsupported(human: HumanIn) -> None:
    """Never pretend: a client sending these expects them to take effect."""
    if human.password is not None and human.hashed_password is not None:
        raise ValidationFailed("invalid request: password and hashedPassword are a oneof")
    email = human.email.email
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email:
        raise InvalidArgument("EMAIL-599BI", "Errors.User.Email.Invalid")


def _verification(user_id: str, verified: bool, now_ms: int) -> tuple[rules.Code | None, str]:
    """(stored code, its plain text); a verified address needs no code ("")."""
    if verified:
        return None, ""
    plain = code_text()
    return rules.new_code(user_id, plain, now_ms + CODE_TTL_MS), plain


def _phone(user_id: str, phone_in: PhoneIn | None, now_ms: int) -> tuple[rules.Phone | None, str]:
    """(stored phone, plain code); no phone when the request names no number."""
    if phone_in is None or not phone_in.phone:
        return None, ""
    code, plain = _verification(user_id, phone_in.is_verified, now_ms)
    return rules.Phone(number=phone_in.phone, verified=phone_in.is_verified, code=code), plain


def _check_send_code(human: HumanIn) -> None:
    """A link template is validated when the request arrives, never at delivery."""
    send = human.email.send_code
    if send is not None and send.url_template:
        url_templates.validate(send.url_template, url_templates.USER_FIELDS)


def _profile(profile: ProfileIn) -> rules.Profile:
    return rules.Profile(
        given_name=profile.given_name,
        family_name=profile.family_name,
        nick_name=profile.nick_name,
        display_name=profile.display_name,
        preferred_language=profile.preferred_language,
        gender=rules.gender_name(profile.gender),
    )


class UserCreation(UserServiceBase):
    _keyring: Keyring
    _messages: MessageComposer
    _idps: IdpLookup

    async def add_human_user(
        self, caller: Caller, request: AddHumanUserRequest
    ) -> AddHumanUserResponse:
        org = await self._organization(request.organization)
        require(caller, "user.write", org.id)
        created = await self._create_human(
            caller, org.id, request.user_id, request.username, request
        )
        return AddHumanUserResponse(
            user_id=created.user.id,
            details=details(created.user),
            email_code=created.email_code,
            phone_code=created.phone_code,
        )

    async def create_user(self, caller: Caller, request: CreateUserRequest) -> CreateUserResponse:
        if (request.human is None) == (request.machine is None):
            raise ValidationFailed(
                "invalid CreateUserRequest.UserType: value is required"
                " (exactly one of human, machine)"
            )
        wanted = Organization(org_id=request.organization_id) if request.organization_id else None
        org = await self._organization(wanted)
        require(caller, "user.write", org.id)
        if request.human is not None:
            created = await self._create_human(
                caller, org.id, request.user_id, request.username, request.human
            )
        else:
            created = await self._create_machine(caller, org.id, request)
        return CreateUserResponse(
            id=created.user.id,
            creation_date=rfc3339_ms(created.user.creation_ms),
            email_code=created.email_code,
            phone_code=created.phone_code,
        )

    async def _password_hash(self, human: HumanIn) -> tuple[str, bool]:
        if human.password is not None:
            hashed = await self._hasher.hash(human.password.password)
            return hashed, human.password.change_required
        if human.hashed_password is not None:
            if not self._hasher.accepts(human.hashed_password.hash):
                raise InvalidArgument("COMMAND-hashAlg", "Errors.User.Password.HashUnsupported")
            return human.hashed_password.hash, human.hashed_password.change_required
        return "", False

    async def _create_human(
        self,
        caller: Caller,
        org_id: str,
        user_id: str | None,
        username: str | None,
        human: HumanIn,
    ) -> Created:
        _check_user_id(user_id)
        _refuse_unsupported(human)
        totp_secret = rules.normalized_totp_secret(human.totp_secret) if human.totp_secret else None
        now = self._clock.now_ms()
        uid = user_id or self._ids.new_id()
        email_in = human.email
        _check_send_code(human)
        email_code, email_plain = _verification(uid, email_in.is_verified, now)
        phone, phone_plain = _phone(uid, human.phone, now)
        email_returned = email_code is not None and email_in.return_code is not None
        phone_returned = (
            phone_plain != "" and human.phone is not None and (human.phone.return_code is not None)
        )
        password_hash, change_required = await self._password_hash(human)
        spec = rules.HumanSpec(
            user_id=uid,
            org_id=org_id,
            username=username or email_in.email,
            profile=_profile(human.profile),
            phone=phone,
            password_hash=password_hash,
            email=rules.Email(
                address=email_in.email, verified=email_in.is_verified, code=email_code
            ),
            password_change_required=change_required,
            email_code_returned=email_returned,
            phone_code_returned=phone_returned,
        )
        change = with_links(
            rules.new_human(spec, now), await configured_links(self._idps, human.idp_links), now
        )
        if totp_secret is not None:
            sealed = self._keyring.seal(totp_purpose(uid), totp_secret.encode())
            change = rules.import_totp(change, sealed)
        jobs = self._verification_jobs(change.user, human, email_plain, phone_plain)
        user = await self._users.create_user(change, creator_id=caller.user_id, jobs=jobs)
        return Created(
            user=user,
            email_code=email_plain if email_returned else None,
            phone_code=phone_plain if phone_returned else None,
        )

    def _verification_jobs(
        self, user: User, human: HumanIn, email_plain: str, phone_plain: str
    ) -> list[DeliveryJob]:
        """The verification messages ``sendCode`` asks for, queued with the new user."""
        jobs = []
        email_in, phone_in = human.email, human.phone
        if email_in.send_code is not None and email_plain:
            jobs.append(
                self._messages.compose(
                    user,
                    channel="email",
                    template="email_code",
                    recipient=email_in.email,
                    code=email_plain,
                    url_template=email_in.send_code.url_template,
                    sent_event="user.human.email.code.sent",
                )
            )
        if phone_in is not None and phone_in.send_code is not None and phone_plain:
            jobs.append(
                self._messages.compose(
                    user,
                    channel="sms",
                    template="phone_code",
                    recipient=phone_in.phone,
                    code=phone_plain,
                    sent_event="user.human.phone.code.sent",
                )
            )
        return jobs

    async def _create_machine(
        self, caller: Caller, org_id: str, request: CreateUserRequest
    ) -> Created:
        assert request.machine is not None  # noqa: S101 - checked by the caller
        _check_user_id(request.user_id)
        user_id = request.user_id or self._ids.new_id()
        change = rules.new_machine(
            user_id=user_id,
            org_id=org_id,
            username=request.username or user_id,
            name=request.machine.name,
            description=request.machine.description,
            now_ms=self._clock.now_ms(),
        )
        user = await self._users.create_user(change, creator_id=caller.user_id)
        return Created(user=user)

    async def _organization(self, wanted: Organization | None) -> Org:
        """By id or by domain; the default organization when the request names none."""
        users = self._users
        if wanted is not None and wanted.org_id:
            org = await users.get_org(wanted.org_id)
        elif wanted is not None and wanted.org_domain:
            org = await users.org_by_domain(wanted.org_domain)
        else:
            org = await users.get_org(await users.default_org_id())
        if org is None:
            raise org_not_found()
        return org
