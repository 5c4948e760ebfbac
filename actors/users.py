"""Users and organizations as the rules see them: records, login names, state transitions.

Pure: no I/O, no clock, no randomness. Times come in as ``now_ms``; verification codes and
password hashes arrive already generated/hashed. Every transition returns a ``Change``: the
new record plus the ZITADEL events it produces (``user.deactivated``, ...), which storage
writes in one script. Error ids and keys are ZITADEL's (``internal/command/user.go``).

``sequence`` (events so far) and the storage revision are owned by storage; a ``Change``
carries the loaded ``sequence`` and storage replaces it with the value it wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from actors.model import UserRef
from actors.permissions import INSTANCE_ROLES, ORG_ROLES, Caller, Grant
from actors.timefmt import rfc3339_ms
from actors.views import UserView

ACTIVE = "USER_STATE_ACTIVE"
INACTIVE = "USER_STATE_INACTIVE"
LOCKED = "USER_STATE_LOCKED"
INITIAL = "USER_STATE_INITIAL"
DELETED = "USER_STATE_DELETED"
#: protojson enum names, by number (input accepts either).
GENDERS = ("GENDER_UNSPECIFIED", "GENDER_FEMALE", "GENDER_MALE", "GENDER_DIVERSE")
NS_PER_MS = 1_000_000
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


class Code(msgspec.Struct, frozen=True, kw_only=True):
    """A pending verification code: only its SHA-256 is kept, with its expiry."""

    hash: str
    expires_ms: int


class Profile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    given_name: str
    family_name: str
    nick_name: str = ""
    display_name: str = ""
    preferred_language: str = ""
    gender: str = ""


class Email(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    address: str
    verified: bool = False
    code: Code | None = None


class Phone(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    number: str
    verified: bool = False
    code: Code | None = None


class Human(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    profile: Profile
    email: Email
    phone: Phone | None = None
    password_hash: str = ""
    password_change_required: bool = False
    password_changed_ms: int = 0
    password_code: Code | None = None


class Machine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    description: str = ""


class User(msgspec.Struct, frozen=True, kw_only=True):
    """One user; exactly one of ``human`` / ``machine`` is set."""

    id: str
    org_id: str
    username: str
    creation_ms: int
    change_ms: int
    state: str = ACTIVE
    sequence: int = 0
    failed_password_attempts: int = 0
    #: Bumped whenever a fact sessions show changes (names, password, state).
    view_version: int = 0
    grants: tuple[Grant, ...] = ()
    human: Human | None = None
    machine: Machine | None = None


class Org(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    domain: str
    creation_ms: int
    sequence: int = 0


class UserEvent(msgspec.Struct, frozen=True):
    """A ZITADEL event type and its payload; never a password, hash or code."""

    type: str
    payload: dict[str, Any] = {}


@dataclass(frozen=True)
class Change:
    """A transition's result: the new record and its events.

    With ``error`` set, the events are stored and then the error is raised: ZITADEL records
    failed verifications even though the request fails.
    """

    user: User
    events: tuple[UserEvent, ...]
    error: ServiceError | None = None


# -- names --------------------------------------------------------------------------------


def slug(name: str) -> str:
    """Lower-case, runs of anything but ``a-z0-9`` become one ``-``."""
    return _SLUG_JUNK.sub("-", name.lower()).strip("-") or "org"


def org_domain(org_name: str, instance_domain: str) -> str:
    """ZITADEL's generated org domain: ``<slug(name)>.<instance domain>``."""
    return f"{slug(org_name)}.{instance_domain}"


def login_names(user: User, domain: str) -> list[str]:
    """``username`` and ``username@<org domain>``; the first is the preferred one."""
    return [user.username, f"{user.username}@{domain}"]


def login_name_keys(user: User, domain: str) -> list[str]:
    """The case-insensitive index entries of ``login_names`` (lower-cased)."""
    return [name.lower() for name in login_names(user, domain)]


def display_name(user: User) -> str:
    if user.human is not None:
        profile = user.human.profile
        return profile.display_name or f"{profile.given_name} {profile.family_name}".strip()
    return user.machine.name if user.machine is not None else user.username


def gender_name(value: str | int | None) -> str:
    """Enum input as name or number → name ("" for unspecified); unknown → InvalidArgument."""
    if value is None or value in ("", 0, GENDERS[0]):
        return ""
    if isinstance(value, int) and 0 < value < len(GENDERS):
        return GENDERS[value]
    if isinstance(value, str) and value in GENDERS:
        return value
    raise ValidationFailed("invalid Profile.Gender: value must be one of the defined enum values")


# -- codes ---------------------------------------------------------------------------------


def code_hash(user_id: str, code: str) -> str:
    """Bound to the user, so one hash cannot be replayed for another user's code."""
    return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()


def code_matches(user_id: str, code: Code | None, given: str, now_ms: int) -> bool:
    if code is None or code.expires_ms < now_ms:
        return False
    return hmac.compare_digest(code.hash, code_hash(user_id, given))


def new_code(user_id: str, plain: str, expires_ms: int) -> Code:
    return Code(hash=code_hash(user_id, plain), expires_ms=expires_ms)


# -- creation ------------------------------------------------------------------------------


class HumanSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What AddHumanUser/CreateUser ask for, with codes and hash already produced."""

    user_id: str
    org_id: str
    username: str
    profile: Profile
    email: Email
    phone: Phone | None = None
    password_hash: str = ""
    password_change_required: bool = False
    email_code_returned: bool = False
    phone_code_returned: bool = False


def new_human(spec: HumanSpec, now_ms: int) -> Change:
    """``user.human.added`` and the verification events of a new human user."""
    profile = spec.profile
    if not profile.display_name:
        profile = replace(profile, display_name=f"{profile.given_name} {profile.family_name}")
    human = Human(
        profile=profile,
        email=spec.email,
        phone=spec.phone,
        password_hash=spec.password_hash,
        password_change_required=spec.password_change_required,
        password_changed_ms=now_ms if spec.password_hash else 0,
    )
    user = User(
        id=spec.user_id,
        org_id=spec.org_id,
        username=spec.username,
        creation_ms=now_ms,
        change_ms=now_ms,
        human=human,
    )
    events = [UserEvent("user.human.added", _human_added_payload(user, human))]
    events += _contact_events(
        "email", spec.email.verified, spec.email.code, spec.email_code_returned, now_ms
    )
    if spec.phone is not None:
        events += _contact_events(
            "phone", spec.phone.verified, spec.phone.code, spec.phone_code_returned, now_ms
        )
    return Change(user, tuple(events))


def _human_added_payload(user: User, human: Human) -> dict[str, Any]:
    profile = human.profile
    payload: dict[str, Any] = {
        "userName": user.username,
        "firstName": profile.given_name,
        "lastName": profile.family_name,
        "displayName": profile.display_name,
        "email": human.email.address,
    }
    optional = {
        "nickName": profile.nick_name,
        "preferredLanguage": profile.preferred_language,
        "gender": profile.gender,
        "phone": human.phone.number if human.phone else "",
        "changeRequired": human.password_change_required,
    }
    payload.update({key: value for key, value in optional.items() if value})
    return payload


def _contact_events(
    kind: str, verified: bool, code: Code | None, returned: bool, now_ms: int
) -> list[UserEvent]:
    if verified:
        return [UserEvent(f"user.human.{kind}.verified")]
    if code is None:
        return []
    payload: dict[str, Any] = {"expiry": (code.expires_ms - now_ms) * NS_PER_MS}
    if returned:
        payload["codeReturned"] = True
    return [UserEvent(f"user.human.{kind}.code.added", payload)]


def new_machine(
    *,
    user_id: str,
    org_id: str,
    username: str,
    name: str,
    description: str,
    now_ms: int,
    grants: tuple[Grant, ...] = (),
) -> Change:
    user = User(
        id=user_id,
        org_id=org_id,
        username=username,
        creation_ms=now_ms,
        change_ms=now_ms,
        grants=grants,
        machine=Machine(name=name, description=description),
    )
    payload = {"userName": username, "name": name}
    if description:
        payload["description"] = description
    return Change(user, (UserEvent("user.machine.added", payload),))


def new_org(*, org_id: str, name: str, instance_domain: str, now_ms: int) -> tuple[Org, UserEvent]:
    org = Org(id=org_id, name=name, domain=org_domain(name, instance_domain), creation_ms=now_ms)
    return org, UserEvent("org.added", {"name": name})


# -- state transitions ---------------------------------------------------------------------


def _existing(user: User | None, error_id: str, key: str = "Errors.User.NotFound") -> User:
    if user is None or user.state == DELETED:
        raise NotFound(error_id, key)
    return user


def _changed(
    user: User, now_ms: int, events: tuple[UserEvent, ...], *, view: bool = False, **fields: Any
) -> Change:
    version = user.view_version + 1 if view else user.view_version
    return Change(replace(user, change_ms=now_ms, view_version=version, **fields), events)


def deactivate(user: User | None, now_ms: int) -> Change:
    user = _existing(user, "COMMAND-3M9ds")
    if user.state == INITIAL:
        raise NotFound("COMMAND-ke0fw", "Errors.User.CantDeactivateInitial")  # sic, NotFound
    if user.state == INACTIVE:
        raise FailedPrecondition("COMMAND-5M0sf", "Errors.User.AlreadyInactive")
    return _changed(user, now_ms, (UserEvent("user.deactivated"),), view=True, state=INACTIVE)


def reactivate(user: User | None, now_ms: int) -> Change:
    user = _existing(user, "COMMAND-4M0sd")
    if user.state != INACTIVE:
        raise FailedPrecondition("COMMAND-6M0sf", "Errors.User.NotInactive")
    return _changed(user, now_ms, (UserEvent("user.reactivated"),), view=True, state=ACTIVE)


def lock(user: User | None, now_ms: int) -> Change:
    user = _existing(user, "COMMAND-5M9fs")
    if user.state not in (ACTIVE, INITIAL):
        raise FailedPrecondition("COMMAND-3NN8v", "Errors.User.ShouldBeActiveOrInitial")
    return _changed(user, now_ms, (UserEvent("user.locked"),), view=True, state=LOCKED)


def unlock(user: User | None, now_ms: int) -> Change:
    """Unlocking also forgets the failed password attempts (ZITADEL resets the counter)."""
    user = _existing(user, "COMMAND-M0dos")
    if user.state != LOCKED:
        raise FailedPrecondition("COMMAND-4M0ds", "Errors.User.NotLocked")
    return _changed(
        user,
        now_ms,
        (UserEvent("user.unlocked"),),
        view=True,
        state=ACTIVE,
        failed_password_attempts=0,
    )


def remove(user: User | None, now_ms: int) -> Change:
    """A tombstone stays (ids are never reused); credentials and grants are dropped."""
    user = _existing(user, "COMMAND-m9od")
    human = user.human
    if human is not None:
        human = replace(human, password_hash="", password_code=None)
    return _changed(
        user,
        now_ms,
        (UserEvent("user.removed", {"userName": user.username}),),
        view=True,
        state=DELETED,
        human=human,
        grants=(),
    )


# -- credentials ---------------------------------------------------------------------------


def _human(user: User | None, error_id: str) -> tuple[User, Human]:
    user = _existing(user, error_id)
    if user.human is None:
        raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
    return user, user.human


def set_password(
    user: User | None, password_hash: str, change_required: bool, now_ms: int
) -> Change:
    """New hash; sessions' password factors checked before ``now_ms`` stop counting."""
    user, human = _human(user, "COMMAND-G8dh3")
    human = replace(
        human,
        password_hash=password_hash,
        password_change_required=change_required,
        password_changed_ms=now_ms,
        password_code=None,
    )
    event = UserEvent(
        "user.human.password.changed", {"changeRequired": True} if change_required else {}
    )
    return _changed(user, now_ms, (event,), view=True, human=human, failed_password_attempts=0)


def replace_password_hash(user: User | None, password_hash: str, now_ms: int) -> Change:
    """Same password, new parameters (transparent rehash): nothing sessions show changes."""
    user, human = _human(user, "COMMAND-3n77z")
    return _changed(
        user,
        now_ms,
        (UserEvent("user.human.password.hash.updated"),),
        human=replace(human, password_hash=password_hash),
    )


def set_password_code(user: User | None, code: Code, returned: bool, now_ms: int) -> Change:
    user, human = _human(user, "COMMAND-reset")
    payload: dict[str, Any] = {"expiry": (code.expires_ms - now_ms) * NS_PER_MS}
    if returned:
        payload["codeReturned"] = True
    return _changed(
        user,
        now_ms,
        (UserEvent("user.human.password.code.added", payload),),
        human=replace(human, password_code=code),
    )


def check_password_code(user: User, given: str, now_ms: int) -> None:
    """The reset code of SetPassword's ``verificationCode`` branch (crypto.VerifyCode ids)."""
    code = user.human.password_code if user.human is not None else None
    if code is None:
        raise FailedPrecondition("COMMAND-2M9fs", "Errors.User.Code.NotFound")
    if code.expires_ms < now_ms:
        raise FailedPrecondition("CODE-QvUQ4P", "Errors.User.Code.Expired")
    if not code_matches(user.id, code, given, now_ms):
        raise InvalidArgument("CODE-woT0xc", "Errors.User.Code.Invalid")


def verify_email(user: User | None, given: str, now_ms: int) -> Change:
    user = _existing(user, "COMMAND-ieJ2e", "Errors.User.Email.NotFound")
    human = user.human
    if human is not None and code_matches(user.id, human.email.code, given, now_ms):
        email = replace(human.email, verified=True, code=None)
        return _changed(
            user,
            now_ms,
            (UserEvent("user.human.email.verified"),),
            human=replace(human, email=email),
        )
    return _code_failed(user, now_ms, "user.human.email.verification.failed")


def verify_phone(user: User | None, given: str, now_ms: int) -> Change:
    user = _existing(user, "COMMAND-ieJ2e", "Errors.User.Phone.NotFound")
    human = user.human
    phone = human.phone if human is not None else None
    if human is not None and phone is not None and code_matches(user.id, phone.code, given, now_ms):
        verified = replace(phone, verified=True, code=None)
        return _changed(
            user,
            now_ms,
            (UserEvent("user.human.phone.verified"),),
            human=replace(human, phone=verified),
        )
    return _code_failed(user, now_ms, "user.human.phone.verification.failed")


def _code_failed(user: User, now_ms: int, event_type: str) -> Change:
    """Wrong, expired or missing code: all the same to the caller (ZITADEL COMMAND-eis9R)."""
    change = _changed(user, now_ms, (UserEvent(event_type),))
    return Change(
        change.user, change.events, InvalidArgument("COMMAND-eis9R", "Errors.User.Code.Invalid")
    )


# -- administrators ------------------------------------------------------------------------


def add_grant(user: User | None, grant: Grant, now_ms: int) -> Change:
    """Roles on the instance (``org_id`` "") or one org; one grant per resource."""
    user = _existing(user, "COMMAND-5N9ds")
    allowed = ORG_ROLES if grant.org_id else INSTANCE_ROLES
    if not grant.roles or any(role not in allowed for role in grant.roles):
        raise InvalidArgument("COMMAND-4m0fS", "Errors.Member.InvalidRole")
    if any(existing.org_id == grant.org_id for existing in user.grants):
        raise AlreadyExists("COMMAND-PtXi1", "Errors.Member.AlreadyExists")
    return _changed(user, now_ms, (), grants=(*user.grants, grant))


# -- what other parts see ------------------------------------------------------------------


def is_enabled(user: User) -> bool:
    return user.state in (ACTIVE, INITIAL)


def to_ref(user: User) -> UserRef:
    """For session user checks: preferred login name = username."""
    language = user.human.profile.preferred_language if user.human is not None else ""
    return UserRef(
        id=user.id,
        org_id=user.org_id,
        state=user.state,
        login_name=user.username,
        display_name=display_name(user),
        preferred_language=language,
        view_version=user.view_version,
    )


def to_view(user: User) -> UserView:
    changed = user.human.password_changed_ms if user.human is not None else 0
    return UserView(
        id=user.id,
        org_id=user.org_id,
        login_name=user.username,
        display_name=display_name(user),
        state=user.state,
        version=user.view_version,
        password_changed_ms=changed,
    )


def caller_of(user: User) -> Caller:
    return Caller(user_id=user.id, org_id=user.org_id, grants=user.grants)


def pat_added_event(token_id: str, expiration_ms: int | None) -> UserEvent:
    payload: dict[str, Any] = {"tokenId": token_id}
    if expiration_ms:
        payload["expiration"] = rfc3339_ms(expiration_ms)
    return UserEvent("user.personal.access.token.added", payload)
