"""Users and organizations as the rules see them: state transitions, and the rules namespace.

Pure: no I/O, no clock, no randomness. Times come in as ``now_ms``; verification codes and
password hashes arrive already generated/hashed. Every transition returns a ``Change``: the
new record plus the ZITADEL events it produces (``user.deactivated``, ...), which storage
writes in one script. Error ids and keys are ZITADEL's (``internal/command/user.go``).

This module holds the lifecycle (state changes, grants) and what other parts see of a user;
it re-exports the rest so callers use one namespace, ``from actors import users as rules``:
records in ``actors.user_records``, names in ``actors.user_names``, new users and orgs in
``actors.user_creation``, passwords and verifications in ``actors.user_credentials``, codes
in ``actors.codes``.
"""

from __future__ import annotations

from msgspec.structs import replace

from actors.codes import NS_PER_MS, Code, code_hash, code_matches, new_code
from actors.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from actors.model import UserRef
from actors.permissions import INSTANCE_ROLES, ORG_ROLES, Caller, Grant
from actors.user_creation import HumanSpec, new_human, new_machine, new_org
from actors.user_credentials import (
    check_password_code,
    pat_added_event,
    replace_password_hash,
    set_password,
    set_password_code,
    verify_email,
    verify_phone,
)
from actors.user_factors import (
    add_otp_email,
    add_otp_sms,
    auth_method_types,
    check_recovery_code_count,
    import_totp,
    matching_totp_step,
    normalized_totp_secret,
    register_totp,
    remove_otp_email,
    remove_otp_sms,
    remove_recovery_codes,
    remove_totp,
    set_recovery_codes,
    totp_issuer,
    totp_uri,
    verify_totp_registration,
)
from actors.user_names import (
    GENDERS,
    display_name,
    gender_name,
    login_name_keys,
    login_names,
    org_domain,
    slug,
)
from actors.user_records import (
    ACTIVE,
    DELETED,
    INACTIVE,
    INITIAL,
    LOCKED,
    Change,
    Email,
    Human,
    Machine,
    Org,
    Phone,
    Profile,
    User,
    UserEvent,
    changed,
    existing,
)
from actors.views import UserView

__all__ = [
    "ACTIVE",
    "DELETED",
    "GENDERS",
    "INACTIVE",
    "INITIAL",
    "LOCKED",
    "NS_PER_MS",
    "Change",
    "Code",
    "Email",
    "Human",
    "HumanSpec",
    "Machine",
    "Org",
    "Phone",
    "Profile",
    "User",
    "UserEvent",
    "add_grant",
    "add_otp_email",
    "add_otp_sms",
    "auth_method_types",
    "caller_of",
    "check_password_code",
    "check_recovery_code_count",
    "code_hash",
    "code_matches",
    "deactivate",
    "display_name",
    "gender_name",
    "import_totp",
    "is_enabled",
    "lock",
    "login_name_keys",
    "login_names",
    "matching_totp_step",
    "new_code",
    "new_human",
    "new_machine",
    "new_org",
    "normalized_totp_secret",
    "org_domain",
    "pat_added_event",
    "reactivate",
    "register_totp",
    "remove",
    "remove_otp_email",
    "remove_otp_sms",
    "remove_recovery_codes",
    "remove_totp",
    "replace_password_hash",
    "set_password",
    "set_password_code",
    "set_recovery_codes",
    "slug",
    "to_ref",
    "to_view",
    "totp_issuer",
    "totp_uri",
    "unlock",
    "verify_email",
    "verify_phone",
    "verify_totp_registration",
]


# -- state transitions ---------------------------------------------------------------------


def deactivate(user: User | None, now_ms: int) -> Change:
    user = existing(user, "COMMAND-3M9ds")
    if user.state == INITIAL:
        raise NotFound("COMMAND-ke0fw", "Errors.User.CantDeactivateInitial")  # sic, NotFound
    if user.state == INACTIVE:
        raise FailedPrecondition("COMMAND-5M0sf", "Errors.User.AlreadyInactive")
    return changed(user, now_ms, (UserEvent("user.deactivated"),), view=True, state=INACTIVE)


def reactivate(user: User | None, now_ms: int) -> Change:
    user = existing(user, "COMMAND-4M0sd")
    if user.state != INACTIVE:
        raise FailedPrecondition("COMMAND-6M0sf", "Errors.User.NotInactive")
    return changed(user, now_ms, (UserEvent("user.reactivated"),), view=True, state=ACTIVE)


def lock(user: User | None, now_ms: int) -> Change:
    user = existing(user, "COMMAND-5M9fs")
    if user.state not in (ACTIVE, INITIAL):
        raise FailedPrecondition("COMMAND-3NN8v", "Errors.User.ShouldBeActiveOrInitial")
    return changed(user, now_ms, (UserEvent("user.locked"),), view=True, state=LOCKED)


def unlock(user: User | None, now_ms: int) -> Change:
    """Unlocking also forgets the failed attempts (ZITADEL resets the counters)."""
    user = existing(user, "COMMAND-M0dos")
    if user.state != LOCKED:
        raise FailedPrecondition("COMMAND-4M0ds", "Errors.User.NotLocked")
    return changed(
        user,
        now_ms,
        (UserEvent("user.unlocked"),),
        view=True,
        state=ACTIVE,
        failed_password_attempts=0,
        failed_otp_attempts=0,
    )


def remove(user: User | None, now_ms: int) -> Change:
    """A tombstone stays (ids are never reused); credentials and grants are dropped."""
    user = existing(user, "COMMAND-m9od")
    human = user.human
    if human is not None:
        human = replace(human, password_hash="", password_code=None, idp_links=())
    return changed(
        user,
        now_ms,
        (UserEvent("user.removed", {"userName": user.username}),),
        view=True,
        state=DELETED,
        human=human,
        grants=(),
    )


# -- administrators ------------------------------------------------------------------------


def add_grant(user: User | None, grant: Grant, now_ms: int) -> Change:
    """Roles on the instance (``org_id`` "") or one org; one grant per resource."""
    user = existing(user, "COMMAND-5N9ds")
    allowed = ORG_ROLES if grant.org_id else INSTANCE_ROLES
    if not grant.roles or any(role not in allowed for role in grant.roles):
        raise InvalidArgument("COMMAND-4m0fS", "Errors.Member.InvalidRole")
    if any(held.org_id == grant.org_id for held in user.grants):
        raise AlreadyExists("COMMAND-PtXi1", "Errors.Member.AlreadyExists")
    return changed(user, now_ms, (), grants=(*user.grants, grant))


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
    password_changed = user.human.password_changed_ms if user.human is not None else 0
    return UserView(
        id=user.id,
        org_id=user.org_id,
        login_name=user.username,
        display_name=display_name(user),
        state=user.state,
        version=user.view_version,
        password_changed_ms=password_changed,
        second_factor=has_second_factor(user),
    )


def has_second_factor(user: User) -> bool:
    """A ready second factor: TOTP, OTP SMS / e-mail, recovery codes, passkey or U2F key."""
    factors = user.human.factors if user.human is not None else None
    if factors is None:
        return False
    totp_ready = factors.totp is not None and factors.totp.verified
    webauthn_ready = any(token.ready for token in factors.webauthn)
    return (
        totp_ready
        or factors.otp_sms
        or factors.otp_email
        or bool(factors.recovery_codes)
        or webauthn_ready
    )


def caller_of(user: User) -> Caller:
    return Caller(user_id=user.id, org_id=user.org_id, grants=user.grants)
