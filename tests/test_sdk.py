"""The official ZITADEL Python SDK (``zitadel-client``) against a real ``python -m app``.

The SDK is an OpenAPI-generated client that posts JSON to ZITADEL's Connect unary paths; it
knows nothing about sessiond. Every call here goes through its public API only (service
attributes, request models, ``ApiError``), so a passing test proves that an unmodified
ZITADEL client can drive the service: organizations, users, sessions (v2 and v2beta),
lock/unlock, password changes, administrators and personal access tokens. Errors are read
the way a Connect client reads them: HTTP status, the snake_case ``code``, and the
``zitadel.v1.ErrorDetail`` in ``details[0]``, whose protobuf ``value`` is decoded here with
the protobuf runtime from a descriptor written in this file (not the app's), so the wire is
checked independently of the code that produced it.

The SDK is blocking (urllib3), so the tests are plain sync functions; the server runs in its
own process, one per test, on a freshly flushed database.
"""

from __future__ import annotations

import base64
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from tests.processes import server
from tests.support import ADMIN_TOKEN, PASSWORD, RP_ID, WEBAUTHN_ORIGIN, b64
from tests.webauthn_authenticator import FLAG_UV, SoftAuthenticator, authenticator_flags, b64u

# zitadel_client imports authlib.jose, which warns (AuthlibDeprecationWarning) at import time.
# authlib's own import adds an "always" filter for it in front of pytest's "error", so the
# warning would not fail collection but would show in every run's summary: record it here
# and drop it. Any other warning raised by the import is re-raised below.
with warnings.catch_warnings(record=True) as _import_warnings:
    warnings.simplefilter("always")
    # The package's __init__ re-exports these without __all__, which mypy's strict
    # no-implicit-reexport rejects; import them from the modules that define them.
    from zitadel_client.exceptions import ApiError
    from zitadel_client.models.beta_session_service_check_password import (
        BetaSessionServiceCheckPassword,
    )
    from zitadel_client.models.beta_session_service_check_user import BetaSessionServiceCheckUser
    from zitadel_client.models.beta_session_service_checks import BetaSessionServiceChecks
    from zitadel_client.models.beta_session_service_create_session_request import (
        BetaSessionServiceCreateSessionRequest,
    )
    from zitadel_client.models.beta_session_service_get_session_request import (
        BetaSessionServiceGetSessionRequest,
    )
    from zitadel_client.models.internal_permission_service_create_administrator_request import (
        InternalPermissionServiceCreateAdministratorRequest,
    )
    from zitadel_client.models.internal_permission_service_resource_type import (
        InternalPermissionServiceResourceType,
    )
    from zitadel_client.models.organization_service_add_organization_request import (
        OrganizationServiceAddOrganizationRequest,
    )
    from zitadel_client.models.session_service_check_otp import SessionServiceCheckOTP
    from zitadel_client.models.session_service_check_password import SessionServiceCheckPassword
    from zitadel_client.models.session_service_check_recovery_code import (
        SessionServiceCheckRecoveryCode,
    )
    from zitadel_client.models.session_service_check_totp import SessionServiceCheckTOTP
    from zitadel_client.models.session_service_check_user import SessionServiceCheckUser
    from zitadel_client.models.session_service_check_web_auth_n import (
        SessionServiceCheckWebAuthN,
    )
    from zitadel_client.models.session_service_checks import SessionServiceChecks
    from zitadel_client.models.session_service_create_session_request import (
        SessionServiceCreateSessionRequest,
    )
    from zitadel_client.models.session_service_create_session_response import (
        SessionServiceCreateSessionResponse,
    )
    from zitadel_client.models.session_service_delete_session_request import (
        SessionServiceDeleteSessionRequest,
    )
    from zitadel_client.models.session_service_get_session_request import (
        SessionServiceGetSessionRequest,
    )
    from zitadel_client.models.session_service_list_query import SessionServiceListQuery
    from zitadel_client.models.session_service_list_sessions_request import (
        SessionServiceListSessionsRequest,
    )
    from zitadel_client.models.session_service_otp_email import SessionServiceOTPEmail
    from zitadel_client.models.session_service_request_challenges import (
        SessionServiceRequestChallenges,
    )
    from zitadel_client.models.session_service_search_query import SessionServiceSearchQuery
    from zitadel_client.models.session_service_session import SessionServiceSession
    from zitadel_client.models.session_service_set_session_request import (
        SessionServiceSetSessionRequest,
    )
    from zitadel_client.models.session_service_user_id_query import SessionServiceUserIDQuery
    from zitadel_client.models.session_service_user_verification_requirement import (
        SessionServiceUserVerificationRequirement,
    )
    from zitadel_client.models.session_service_web_auth_n import SessionServiceWebAuthN
    from zitadel_client.models.user_service_add_human_user_request import (
        UserServiceAddHumanUserRequest,
    )
    from zitadel_client.models.user_service_add_otp_email_request import (
        UserServiceAddOTPEmailRequest,
    )
    from zitadel_client.models.user_service_add_personal_access_token_request import (
        UserServiceAddPersonalAccessTokenRequest,
    )
    from zitadel_client.models.user_service_auth_factor_state import UserServiceAuthFactorState
    from zitadel_client.models.user_service_create_passkey_registration_link_request import (
        UserServiceCreatePasskeyRegistrationLinkRequest,
    )
    from zitadel_client.models.user_service_create_user_request import (
        UserServiceCreateUserRequest,
    )
    from zitadel_client.models.user_service_generate_recovery_codes_request import (
        UserServiceGenerateRecoveryCodesRequest,
    )
    from zitadel_client.models.user_service_get_user_by_id_request import (
        UserServiceGetUserByIDRequest,
    )
    from zitadel_client.models.user_service_list_authentication_method_types_request import (
        UserServiceListAuthenticationMethodTypesRequest,
    )
    from zitadel_client.models.user_service_list_passkeys_request import (
        UserServiceListPasskeysRequest,
    )
    from zitadel_client.models.user_service_lock_user_request import UserServiceLockUserRequest
    from zitadel_client.models.user_service_machine import UserServiceMachine
    from zitadel_client.models.user_service_organization import UserServiceOrganization
    from zitadel_client.models.user_service_passkey import UserServicePasskey
    from zitadel_client.models.user_service_passkey_authenticator import (
        UserServicePasskeyAuthenticator,
    )
    from zitadel_client.models.user_service_passkey_registration_code import (
        UserServicePasskeyRegistrationCode,
    )
    from zitadel_client.models.user_service_password import UserServicePassword
    from zitadel_client.models.user_service_register_passkey_request import (
        UserServiceRegisterPasskeyRequest,
    )
    from zitadel_client.models.user_service_register_totp_request import (
        UserServiceRegisterTOTPRequest,
    )
    from zitadel_client.models.user_service_register_u2_f_request import (
        UserServiceRegisterU2FRequest,
    )
    from zitadel_client.models.user_service_register_u2_f_response import (
        UserServiceRegisterU2FResponse,
    )
    from zitadel_client.models.user_service_remove_passkey_request import (
        UserServiceRemovePasskeyRequest,
    )
    from zitadel_client.models.user_service_remove_u2_f_request import UserServiceRemoveU2FRequest
    from zitadel_client.models.user_service_set_human_email import UserServiceSetHumanEmail
    from zitadel_client.models.user_service_set_human_profile import UserServiceSetHumanProfile
    from zitadel_client.models.user_service_set_password_request import (
        UserServiceSetPasswordRequest,
    )
    from zitadel_client.models.user_service_unlock_user_request import (
        UserServiceUnlockUserRequest,
    )
    from zitadel_client.models.user_service_user_state import UserServiceUserState
    from zitadel_client.models.user_service_verify_passkey_registration_request import (
        UserServiceVerifyPasskeyRegistrationRequest,
    )
    from zitadel_client.models.user_service_verify_totp_registration_request import (
        UserServiceVerifyTOTPRegistrationRequest,
    )
    from zitadel_client.models.user_service_verify_u2_f_registration_request import (
        UserServiceVerifyU2FRegistrationRequest,
    )
    from zitadel_client.zitadel import Zitadel

for _caught in _import_warnings:
    if _caught.category.__name__ != "AuthlibDeprecationWarning":
        warnings.warn_explicit(_caught.message, _caught.category, _caught.filename, _caught.lineno)

NEW_PASSWORD = "N3w-Battery-Staple!"


# ---------------------------------------------------------------------------------------------
# zitadel.v1 error details, from ZITADEL's proto/zitadel/message.proto
# ---------------------------------------------------------------------------------------------


def _error_detail_classes() -> dict[str, type[Message]]:
    """``zitadel.v1.ErrorDetail`` and ``CredentialsCheckError`` built from a descriptor."""
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    int32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    shapes = {
        "ErrorDetail": [("id", 1, string), ("message", 2, string)],
        "CredentialsCheckError": [
            ("id", 1, string),
            ("message", 2, string),
            ("failed_attempts", 3, int32),
        ],
    }
    file = descriptor_pb2.FileDescriptorProto(
        name="tests/zitadel_message.proto", package="zitadel.v1", syntax="proto3"
    )
    for name, fields in shapes.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind in fields:
            message.field.add(name=field_name, number=number, type=kind, label=optional)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        f"zitadel.v1.{name}": message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"zitadel.v1.{name}")
        )
        for name in shapes
    }


DETAIL_CLASSES = _error_detail_classes()


def decode_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """``details[i].value`` (base64, padded or not) parsed as the message its ``type`` names."""
    value = str(detail["value"])
    raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    message = DETAIL_CLASSES[str(detail["type"])].FromString(raw)
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@dataclass
class ConnectError:
    status: int
    code: str
    message: str
    detail: dict[str, Any]


def connect_error(call: Callable[[], object]) -> ConnectError:
    """Run an SDK call that must fail; its status, Connect code, message and only detail."""
    with pytest.raises(ApiError) as info:
        call()
    body = info.value.response_body
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    details = body.get("details") or []
    assert len(details) == 1, body
    return ConnectError(info.value.code, body["code"], body["message"], details[0])


def assert_error(
    error: ConnectError, status: int, code: str, error_id: str, text: str
) -> dict[str, Any]:
    """The error is exactly this one; returns the detail's ``debug`` object.

    ``text`` is ZITADEL's English translation of the i18n key (the key itself where ZITADEL
    has no translation); the message is ``"<text> (<id>)"``, as ZITADEL writes it.
    """
    assert (error.status, error.code) == (status, code), error
    assert error.message == f"{text} ({error_id})"
    debug = error.detail["debug"]
    assert (debug["id"], debug["message"]) == (error_id, text)
    return dict(debug)


def sequence(details: Any) -> int:
    """``.sequence`` of details or a session (an int64: the SDK passes the JSON string on)."""
    assert details is not None
    assert details.sequence is not None
    return int(details.sequence)


# ---------------------------------------------------------------------------------------------
# Fixtures: a real server per test, the SDK pointed at it
# ---------------------------------------------------------------------------------------------


@pytest.fixture(name="base_url")
def _base_url(redis: object, redis_url: str) -> Iterator[str]:
    """``python -m app`` on a flushed database (``redis`` flushes before the server starts)."""
    with server(redis_url) as running:
        yield running.url


@pytest.fixture(name="client")
def _client(base_url: str) -> Zitadel:
    """The SDK with the bootstrap admin's PAT (IAM_OWNER)."""
    return Zitadel.with_access_token(base_url, ADMIN_TOKEN)


@dataclass
class Human:
    org_id: str
    user_id: str
    username: str


def add_org_and_human(client: Zitadel) -> Human:
    # Request models are built with the JSON names: they are the pydantic aliases, the only
    # keywords mypy knows without the pydantic plugin (the field names work at runtime too).
    org = client.organizations.add_organization(
        OrganizationServiceAddOrganizationRequest(name=f"sdk-org-{secrets.token_hex(4)}")
    )
    assert org is not None
    assert org.organization_id
    username = f"ada-{secrets.token_hex(4)}"
    user = client.users.add_human_user(
        UserServiceAddHumanUserRequest(
            organization=UserServiceOrganization(orgId=org.organization_id),
            username=username,
            profile=UserServiceSetHumanProfile(givenName="Ada", familyName="Lovelace"),
            email=UserServiceSetHumanEmail(email=f"{username}@example.com", isVerified=True),
            password=UserServicePassword(password=PASSWORD, changeRequired=False),
        )
    )
    assert user is not None
    assert user.user_id
    return Human(org_id=org.organization_id, user_id=user.user_id, username=username)


@pytest.fixture(name="human")
def _human(client: Zitadel) -> Human:
    return add_org_and_human(client)


def create_session(
    client: Zitadel, user_id: str, password: str | None = PASSWORD
) -> SessionServiceCreateSessionResponse:
    checks = SessionServiceChecks(
        user=SessionServiceCheckUser(userId=user_id),
        password=None if password is None else SessionServiceCheckPassword(password=password),
    )
    created = client.sessions.create_session(
        SessionServiceCreateSessionRequest(checks=checks, lifetime="3600s")
    )
    assert created is not None
    assert created.session_id
    assert created.session_token
    return created


def get_session(client: Zitadel, session_id: str | None) -> SessionServiceSession:
    got = client.sessions.get_session(SessionServiceGetSessionRequest(sessionId=session_id))
    assert got is not None
    assert got.session is not None
    return got.session


def session_user_id(session: SessionServiceSession) -> str | None:
    assert session.factors is not None
    assert session.factors.user is not None
    return session.factors.user.id


def password_verified(session: SessionServiceSession) -> bool:
    assert session.factors is not None
    return session.factors.password is not None and session.factors.password.verified_at is not None


def get_user_state(client: Zitadel, user_id: str) -> UserServiceUserState | None:
    got = client.users.get_user_by_id(UserServiceGetUserByIDRequest(userId=user_id))
    assert got is not None
    assert got.user is not None
    return got.user.state


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_an_organization_and_a_verified_human_with_a_password_can_be_added(client: Zitadel):
    human = add_org_and_human(client)
    got = client.users.get_user_by_id(UserServiceGetUserByIDRequest(userId=human.user_id))
    assert got is not None
    user = got.user
    assert user is not None
    assert user.user_id == human.user_id
    assert user.username == human.username
    assert user.state == UserServiceUserState.USER_STATE_ACTIVE
    assert user.details is not None
    assert user.details.resource_owner == human.org_id
    assert user.human is not None
    assert user.human.email is not None
    assert user.human.email.email == f"{human.username}@example.com"
    assert user.human.email.is_verified is True
    assert user.human.profile is not None
    assert (user.human.profile.given_name, user.human.profile.family_name) == ("Ada", "Lovelace")
    # the password really is set: it verifies in a session
    assert password_verified(get_session(client, create_session(client, human.user_id).session_id))


def test_a_session_with_user_and_password_checks_is_created(client: Zitadel, human: Human):
    created = create_session(client, human.user_id)
    assert created.session_id
    assert created.session_token
    assert sequence(created.details) > 0
    assert created.details is not None
    assert created.details.change_date is not None


def test_set_session_metadata_issues_a_new_token_and_get_shows_the_value(
    client: Zitadel, human: Human
):
    created = create_session(client, human.user_id)
    updated = client.sessions.set_session(
        SessionServiceSetSessionRequest(sessionId=created.session_id, metadata={"step": b64("4")})
    )
    assert updated is not None
    assert updated.session_token
    assert updated.session_token != created.session_token
    assert sequence(updated.details) > sequence(created.details)
    session = get_session(client, created.session_id)
    assert session.metadata == {"step": "NA=="}  # bytes stay base64 in the SDK's model
    assert sequence(session) == sequence(updated.details)


def test_get_session_shows_the_checked_user_and_password_factors(client: Zitadel, human: Human):
    created = create_session(client, human.user_id)
    session = get_session(client, created.session_id)
    assert session.id == created.session_id
    assert session.factors is not None
    assert session.factors.user is not None
    assert session.factors.user.id == human.user_id
    assert session.factors.user.organization_id == human.org_id
    assert session.factors.user.verified_at is not None
    assert session.factors.password is not None
    assert session.factors.password.verified_at is not None
    assert session.expiration_date is not None
    assert session.creation_date is not None
    lifetime = session.expiration_date - session.creation_date
    assert abs(lifetime - timedelta(hours=1)) < timedelta(seconds=5)


def test_list_sessions_by_user_id_finds_exactly_that_session(client: Zitadel, human: Human):
    other = add_org_and_human(client)
    create_session(client, other.user_id)
    created = create_session(client, human.user_id)
    listed = client.sessions.list_sessions(
        SessionServiceListSessionsRequest(
            query=SessionServiceListQuery(limit=10),
            queries=[
                SessionServiceSearchQuery(userIdQuery=SessionServiceUserIDQuery(id=human.user_id))
            ],
        )
    )
    assert listed is not None
    assert [s.id for s in listed.sessions or []] == [created.session_id]
    assert listed.details is not None
    assert listed.details.total_result is not None
    assert int(listed.details.total_result) == 1
    (session,) = listed.sessions or []
    assert session_user_id(session) == human.user_id


def test_a_deleted_session_is_not_found_with_a_connect_error_and_error_detail(
    client: Zitadel, human: Human
):
    created = create_session(client, human.user_id)
    deleted = client.sessions.delete_session(
        SessionServiceDeleteSessionRequest(sessionId=created.session_id)
    )
    assert deleted is not None
    assert sequence(deleted.details) > sequence(created.details)

    error = connect_error(lambda: get_session(client, created.session_id))
    debug = assert_error(error, 404, "not_found", "QUERY-SFeaa", "Session does not exist")
    assert error.detail["type"] == "zitadel.v1.ErrorDetail"
    assert decode_detail(error.detail) == {"id": "QUERY-SFeaa", "message": "Session does not exist"}
    assert debug == {"id": "QUERY-SFeaa", "message": "Session does not exist"}


def test_a_locked_user_cannot_start_a_session_until_unlocked(client: Zitadel, human: Human):
    locked = client.users.lock_user(UserServiceLockUserRequest(userId=human.user_id))
    assert locked is not None
    assert locked.details is not None
    assert get_user_state(client, human.user_id) == UserServiceUserState.USER_STATE_LOCKED

    error = connect_error(lambda: create_session(client, human.user_id, password=None))
    # ZITADEL has no translation for this key, so its message is the key itself; ZITADEL's
    # login app matches "Errors.User.NotActive (SESSION-Gj4ko)" literally.
    assert_error(error, 400, "failed_precondition", "SESSION-Gj4ko", "Errors.User.NotActive")
    assert error.detail["type"] == "zitadel.v1.ErrorDetail"
    assert decode_detail(error.detail) == {
        "id": "SESSION-Gj4ko",
        "message": "Errors.User.NotActive",
    }

    unlocked = client.users.unlock_user(UserServiceUnlockUserRequest(userId=human.user_id))
    assert unlocked is not None
    assert unlocked.details is not None
    assert get_user_state(client, human.user_id) == UserServiceUserState.USER_STATE_ACTIVE
    created = create_session(client, human.user_id, password=None)
    assert session_user_id(get_session(client, created.session_id)) == human.user_id


def test_set_password_makes_the_new_password_work_and_the_old_one_fail(
    client: Zitadel, human: Human
):
    changed = client.users.set_password(
        UserServiceSetPasswordRequest(
            userId=human.user_id,
            newPassword=UserServicePassword(password=NEW_PASSWORD, changeRequired=False),
        )
    )
    assert changed is not None
    assert changed.details is not None

    created = create_session(client, human.user_id, password=NEW_PASSWORD)
    assert password_verified(get_session(client, created.session_id))

    error = connect_error(lambda: create_session(client, human.user_id, password=PASSWORD))
    debug = assert_error(error, 400, "invalid_argument", "COMMAND-3M0fs", "Password is invalid")
    assert error.detail["type"] == "zitadel.v1.CredentialsCheckError"
    assert debug["failedAttempts"] == 1
    assert decode_detail(error.detail) == {
        "id": "COMMAND-3M0fs",
        "message": "Password is invalid",
        "failed_attempts": 1,
    }


def test_a_list_limit_above_1000_is_an_invalid_argument(client: Zitadel):
    error = connect_error(
        lambda: client.sessions.list_sessions(
            SessionServiceListSessionsRequest(query=SessionServiceListQuery(limit=1001))
        )
    )
    assert_error(error, 400, "invalid_argument", "QUERY-4M0fs", "Limit exceeded")
    assert error.detail["type"] == "zitadel.v1.ErrorDetail"
    assert decode_detail(error.detail) == {"id": "QUERY-4M0fs", "message": "Limit exceeded"}


def test_the_v2beta_session_service_creates_and_gets_a_session(client: Zitadel, human: Human):
    created = client.beta_sessions.create_session(
        BetaSessionServiceCreateSessionRequest(
            checks=BetaSessionServiceChecks(
                user=BetaSessionServiceCheckUser(userId=human.user_id),
                password=BetaSessionServiceCheckPassword(password=PASSWORD),
            ),
            metadata={"via": b64("beta")},
        )
    )
    assert created is not None
    assert created.session_id
    assert created.session_token
    assert created.details is not None
    assert sequence(created.details) > 0

    got = client.beta_sessions.get_session(
        BetaSessionServiceGetSessionRequest(sessionId=created.session_id)
    )
    assert got is not None
    session = got.session
    assert session is not None
    assert session.id == created.session_id
    assert session.metadata == {"via": b64("beta")}
    assert session.factors is not None
    assert session.factors.user is not None
    assert session.factors.user.id == human.user_id
    assert session.factors.password is not None
    assert session.factors.password.verified_at is not None
    # the same session, read through v2
    assert session_user_id(get_session(client, created.session_id)) == human.user_id


def _machine_with_pat(client: Zitadel, org_id: str, roles: list[str]) -> str:
    """A machine user in ``org_id``, holding ``roles`` on the instance; returns its PAT."""
    machine = client.users.create_user(
        UserServiceCreateUserRequest(
            organizationId=org_id,
            username=f"login-client-{secrets.token_hex(4)}",
            machine=UserServiceMachine(name="Login client"),
        )
    )
    assert machine is not None
    assert machine.id
    if roles:
        granted = client.internal_permissions.create_administrator(
            InternalPermissionServiceCreateAdministratorRequest(
                userId=machine.id,
                resource=InternalPermissionServiceResourceType(instance=True),
                roles=roles,
            )
        )
        assert granted is not None
        assert granted.creation_date is not None
    pat = client.users.add_personal_access_token(
        UserServiceAddPersonalAccessTokenRequest(
            userId=machine.id, expirationDate=datetime.now(UTC) + timedelta(days=1)
        )
    )
    assert pat is not None
    assert pat.token_id
    assert pat.token
    return pat.token


def test_a_login_client_pat_can_create_sessions_and_a_roleless_pat_is_refused(
    client: Zitadel, human: Human, base_url: str
):
    login_client = Zitadel.with_access_token(
        base_url, _machine_with_pat(client, human.org_id, ["IAM_LOGIN_CLIENT"])
    )
    created = create_session(login_client, human.user_id)
    assert password_verified(get_session(login_client, created.session_id))
    assert session_user_id(get_session(client, created.session_id)) == human.user_id

    nobody = Zitadel.with_access_token(base_url, _machine_with_pat(client, human.org_id, []))
    error = connect_error(lambda: create_session(nobody, human.user_id))
    assert_error(error, 403, "permission_denied", "AUTHZ-HKJD33", "No matching permissions found")
    assert decode_detail(error.detail) == {
        "id": "AUTHZ-HKJD33",
        "message": "No matching permissions found",
    }


def test_second_factors_register_and_check_through_the_sdk(client: Zitadel, human: Human):
    """TOTP, OTP e-mail with a returned code, and a recovery code, all via the SDK."""
    if 30 - time.time() % 30 < 6:  # registration and check must share a ±1-step window
        time.sleep(30 - time.time() % 30 + 0.05)
    registered = client.users.register_totp(UserServiceRegisterTOTPRequest(userId=human.user_id))
    assert registered is not None
    assert registered.secret
    assert registered.uri is not None
    assert registered.uri.startswith("otpauth://totp/")
    totp = pyotp.TOTP(registered.secret)
    client.users.verify_totp_registration(
        UserServiceVerifyTOTPRegistrationRequest(userId=human.user_id, code=totp.now())
    )
    client.users.add_otp_email(UserServiceAddOTPEmailRequest(userId=human.user_id))
    codes = client.users.generate_recovery_codes(
        UserServiceGenerateRecoveryCodesRequest(userId=human.user_id, count=2)
    )
    assert codes is not None
    assert codes.recovery_codes is not None
    recovery = codes.recovery_codes
    methods = client.users.list_authentication_method_types(
        UserServiceListAuthenticationMethodTypesRequest(userId=human.user_id)
    )
    assert methods is not None
    assert {
        str(t.value if hasattr(t, "value") else t) for t in methods.auth_method_types or []
    } >= {
        "AUTHENTICATION_METHOD_TYPE_PASSWORD",
        "AUTHENTICATION_METHOD_TYPE_TOTP",
        "AUTHENTICATION_METHOD_TYPE_OTP_EMAIL",
        "AUTHENTICATION_METHOD_TYPE_RECOVERY_CODE",
    }

    created = create_session(client, human.user_id)
    checked = client.sessions.set_session(
        SessionServiceSetSessionRequest(
            sessionId=created.session_id,
            checks=SessionServiceChecks(
                totp=SessionServiceCheckTOTP(code=totp.at(time.time() + 30))
            ),
            challenges=SessionServiceRequestChallenges(
                otpEmail=SessionServiceOTPEmail(returnCode={})
            ),
        )
    )
    assert checked is not None
    assert checked.challenges is not None
    assert checked.challenges.otp_email
    client.sessions.set_session(
        SessionServiceSetSessionRequest(
            sessionId=created.session_id,
            checks=SessionServiceChecks(
                otpEmail=SessionServiceCheckOTP(code=checked.challenges.otp_email),
                recoveryCode=SessionServiceCheckRecoveryCode(code=recovery[0]),
            ),
        )
    )
    factors = get_session(client, created.session_id).factors
    assert factors is not None
    assert factors.totp is not None
    assert factors.otp_email is not None
    assert factors.recovery_code is not None
    reused = connect_error(  # a recovery code is used once
        lambda: client.sessions.set_session(
            SessionServiceSetSessionRequest(
                sessionId=created.session_id,
                checks=SessionServiceChecks(
                    recoveryCode=SessionServiceCheckRecoveryCode(code=recovery[0])
                ),
            )
        )
    )
    assert_error(
        reused,
        400,
        "invalid_argument",
        "DOMAIN-6uvh0",
        "Invalid recovery code provided",
    )


# ---------------------------------------------------------------------------------------------
# Passkeys, U2F keys and WebAuthn session checks
#
# The SDK carries the WebAuthn JSON as protobuf Structs (``Dict[str, Any]``): the creation
# options come back as a dict and ``SoftAuthenticator`` answers them like a browser would,
# on the origin the server accepts (``SESSIOND_WEBAUTHN_ORIGINS``, set in tests/processes.py).
#
# The assertion half stops short: the server answers a webAuthN challenge with
# ``challenges.webAuthN.publicKeyCredentialRequestOptions``, but zitadel-client types
# ``SessionServiceChallenges.web_auth_n`` as ``SessionServiceWebAuthN`` (the request message:
# ``domain``, ``userVerificationRequirement``), whose ``from_dict`` keeps only those keys. The
# options, and the challenge to sign with them, are dropped while the answer is parsed, so no
# SDK user can produce a valid assertion; tests/test_webauthn_session.py proves the signed
# check over REST and Connect instead.
# ---------------------------------------------------------------------------------------------


def security_key() -> SoftAuthenticator:
    """A U2F-style roaming key: no user verification, no resident credentials."""
    return SoftAuthenticator(user_verifying=False, attachment="cross-platform", transports=("usb",))


def register_passkey(
    client: Zitadel,
    user_id: str,
    code: UserServicePasskeyRegistrationCode | None = None,
) -> tuple[str, dict[str, Any]]:
    """RegisterPasskey on ``RP_ID``; the passkey id and the inner ``publicKey`` options."""
    started = client.users.register_passkey(
        UserServiceRegisterPasskeyRequest(
            userId=user_id,
            code=code,
            authenticator=UserServicePasskeyAuthenticator.PASSKEY_AUTHENTICATOR_PLATFORM,
            domain=RP_ID,
        )
    )
    assert started is not None
    assert started.passkey_id
    assert started.details is not None
    options = started.public_key_credential_creation_options
    assert isinstance(options, dict)
    return started.passkey_id, dict(options["publicKey"])


def add_passkey(client: Zitadel, user_id: str, authenticator: SoftAuthenticator) -> str:
    """RegisterPasskey + the authenticator's answer + VerifyPasskeyRegistration; the id."""
    passkey_id, options = register_passkey(client, user_id)
    credential = authenticator.create({"publicKey": options}, WEBAUTHN_ORIGIN)
    verified = client.users.verify_passkey_registration(
        UserServiceVerifyPasskeyRegistrationRequest(
            userId=user_id,
            passkeyId=passkey_id,
            publicKeyCredential=credential,
            passkeyName="my key",
        )
    )
    assert verified is not None
    assert verified.details is not None
    return passkey_id


def list_passkeys(client: Zitadel, user_id: str) -> list[UserServicePasskey]:
    listed = client.users.list_passkeys(UserServiceListPasskeysRequest(userId=user_id))
    assert listed is not None
    assert listed.details is not None
    assert listed.details.total_result is not None
    result = listed.result or []
    assert int(listed.details.total_result) == len(result)
    return result


def method_types(client: Zitadel, user_id: str) -> set[str]:
    methods = client.users.list_authentication_method_types(
        UserServiceListAuthenticationMethodTypesRequest(userId=user_id)
    )
    assert methods is not None
    return {str(t.value) for t in methods.auth_method_types or []}


def webauthn_challenge(
    requirement: SessionServiceUserVerificationRequirement,
) -> SessionServiceRequestChallenges:
    return SessionServiceRequestChallenges(
        webAuthN=SessionServiceWebAuthN(domain=RP_ID, userVerificationRequirement=requirement)
    )


def test_a_passkey_registers_lists_ready_is_challenged_and_removed_through_the_sdk(
    client: Zitadel, human: Human
):
    authenticator = SoftAuthenticator()
    passkey_id, options = register_passkey(client, human.user_id)
    assert options["rp"]["id"] == RP_ID
    assert options["timeout"] == 300000
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["authenticatorAttachment"] == "platform"
    listed = list_passkeys(client, human.user_id)
    assert [(p.id, p.state) for p in listed] == [
        (passkey_id, UserServiceAuthFactorState.AUTH_FACTOR_STATE_NOT_READY)
    ]

    credential = authenticator.create({"publicKey": options}, WEBAUTHN_ORIGIN)
    assert authenticator_flags(credential) & FLAG_UV
    verified = client.users.verify_passkey_registration(
        UserServiceVerifyPasskeyRegistrationRequest(
            userId=human.user_id,
            passkeyId=passkey_id,
            publicKeyCredential=credential,
            passkeyName="my key",
        )
    )
    assert verified is not None
    assert verified.details is not None
    (ready,) = list_passkeys(client, human.user_id)
    assert (ready.id, ready.state, ready.name) == (
        passkey_id,
        UserServiceAuthFactorState.AUTH_FACTOR_STATE_READY,
        "my key",
    )
    assert "AUTHENTICATION_METHOD_TYPE_PASSKEY" in method_types(client, human.user_id)

    # the server answers a REQUIRED challenge for the ready passkey (the options themselves
    # are lost in the SDK's model, see above)
    created = client.sessions.create_session(
        SessionServiceCreateSessionRequest(
            checks=SessionServiceChecks(user=SessionServiceCheckUser(userId=human.user_id)),
            challenges=webauthn_challenge(
                SessionServiceUserVerificationRequirement.USER_VERIFICATION_REQUIREMENT_REQUIRED
            ),
        )
    )
    assert created is not None
    assert created.session_id
    assert created.challenges is not None
    assert created.challenges.web_auth_n is not None

    removed = client.users.remove_passkey(
        UserServiceRemovePasskeyRequest(userId=human.user_id, passkeyId=passkey_id)
    )
    assert removed is not None
    assert removed.details is not None
    assert list_passkeys(client, human.user_id) == []
    assert "AUTHENTICATION_METHOD_TYPE_PASSKEY" not in method_types(client, human.user_id)
    # with no passkey left, a REQUIRED challenge has nothing to offer
    error = connect_error(
        lambda: client.sessions.set_session(
            SessionServiceSetSessionRequest(
                sessionId=created.session_id,
                challenges=webauthn_challenge(
                    SessionServiceUserVerificationRequirement.USER_VERIFICATION_REQUIREMENT_REQUIRED
                ),
            )
        )
    )
    webauthn_error(error, 400, "failed_precondition", "WEBAU-4G8sw")


def webauthn_error(error: ConnectError, status: int, code: str, error_id: str) -> None:
    """A WebAuthn error by status, Connect code and ErrorDetail id (read on the wire too).

    Unlike ``assert_error`` it does not pin the message text: ZITADEL translates these keys
    ("Session without WebAuthN challenge", "WebAuthN begin login failed"), the service does
    not (yet) and sends the i18n key.
    """
    assert (error.status, error.code) == (status, code), error
    assert error.detail["type"] == "zitadel.v1.ErrorDetail"
    assert error.detail["debug"]["id"] == error_id
    assert decode_detail(error.detail)["id"] == error_id
    assert error.message.endswith(f" ({error_id})")


def register_u2f(client: Zitadel, user_id: str) -> UserServiceRegisterU2FResponse:
    started = client.users.register_u2_f(
        UserServiceRegisterU2FRequest(userId=user_id, domain=RP_ID)
    )
    assert started is not None
    assert started.u2f_id
    assert started.details is not None
    assert isinstance(started.public_key_credential_creation_options, dict)
    return started


def test_a_u2f_key_registers_is_challenged_preferred_and_removed_through_the_sdk(
    client: Zitadel, human: Human
):
    key = security_key()
    started = register_u2f(client, human.user_id)
    options = started.public_key_credential_creation_options
    assert options is not None
    selection = options["publicKey"]["authenticatorSelection"]
    assert (selection["userVerification"], selection["residentKey"]) == (
        "discouraged",
        "discouraged",
    )
    assert options["publicKey"]["rp"]["id"] == RP_ID
    assert "AUTHENTICATION_METHOD_TYPE_U2F" not in method_types(client, human.user_id)

    credential = key.create(options, WEBAUTHN_ORIGIN)
    assert authenticator_flags(credential) & FLAG_UV == 0
    verified = client.users.verify_u2_f_registration(
        UserServiceVerifyU2FRegistrationRequest(
            userId=human.user_id,
            u2fId=started.u2f_id,
            publicKeyCredential=credential,
            tokenName="security key",
        )
    )
    assert verified is not None
    assert verified.details is not None
    assert "AUTHENTICATION_METHOD_TYPE_U2F" in method_types(client, human.user_id)
    assert list_passkeys(client, human.user_id) == []  # a U2F key is no passkey

    # user + password, then a PREFERRED challenge, which offers U2F keys; as for passkeys, the
    # SDK's model of the answer has no room for the request options
    created = create_session(client, human.user_id)
    challenged = client.sessions.set_session(
        SessionServiceSetSessionRequest(
            sessionId=created.session_id,
            challenges=webauthn_challenge(
                SessionServiceUserVerificationRequirement.USER_VERIFICATION_REQUIREMENT_PREFERRED
            ),
        )
    )
    assert challenged is not None
    assert challenged.session_token
    assert challenged.challenges is not None
    assert challenged.challenges.web_auth_n is not None
    assert sequence(challenged.details) == sequence(created.details) + 2

    removed = client.users.remove_u2_f(
        UserServiceRemoveU2FRequest(userId=human.user_id, u2fId=started.u2f_id)
    )
    assert removed is not None
    assert removed.details is not None
    assert "AUTHENTICATION_METHOD_TYPE_U2F" not in method_types(client, human.user_id)
    error = connect_error(
        lambda: client.sessions.set_session(
            SessionServiceSetSessionRequest(
                sessionId=created.session_id,
                challenges=webauthn_challenge(
                    SessionServiceUserVerificationRequirement.USER_VERIFICATION_REQUIREMENT_PREFERRED
                ),
            )
        )
    )
    webauthn_error(error, 400, "failed_precondition", "WEBAU-4G8sw")
    again = connect_error(
        lambda: client.users.remove_u2_f(
            UserServiceRemoveU2FRequest(userId=human.user_id, u2fId=started.u2f_id)
        )
    )
    assert (again.status, again.code) == (404, "not_found"), again


def test_a_returned_registration_code_lets_a_login_client_register_a_passkey_once(
    client: Zitadel, human: Human, base_url: str
):
    link = client.users.create_passkey_registration_link(
        UserServiceCreatePasskeyRegistrationLinkRequest(userId=human.user_id, returnCode={})
    )
    assert link is not None
    assert link.details is not None
    assert link.code is not None
    assert link.code.id
    assert link.code.code
    code = UserServicePasskeyRegistrationCode(id=link.code.id, code=link.code.code)

    login_client = Zitadel.with_access_token(
        base_url, _machine_with_pat(client, human.org_id, ["IAM_LOGIN_CLIENT"])
    )
    passkey_id, options = register_passkey(login_client, human.user_id, code=code)
    assert options["user"]["name"] == human.username
    assert options["rp"]["id"] == RP_ID
    credential = SoftAuthenticator().create({"publicKey": options}, WEBAUTHN_ORIGIN)
    verified = login_client.users.verify_passkey_registration(
        UserServiceVerifyPasskeyRegistrationRequest(
            userId=human.user_id,
            passkeyId=passkey_id,
            publicKeyCredential=credential,
            passkeyName="from the link",
        )
    )
    assert verified is not None
    (ready,) = list_passkeys(client, human.user_id)
    assert (ready.id, ready.state, ready.name) == (
        passkey_id,
        UserServiceAuthFactorState.AUTH_FACTOR_STATE_READY,
        "from the link",
    )

    reused = connect_error(lambda: register_passkey(login_client, human.user_id, code=code))
    assert_error(reused, 400, "invalid_argument", "COMMAND-Dhz8i", "Code is invalid")
    assert decode_detail(reused.detail) == {"id": "COMMAND-Dhz8i", "message": "Code is invalid"}
    assert [p.id for p in list_passkeys(client, human.user_id)] == [passkey_id]


def test_a_webauthn_check_without_a_challenge_is_a_failed_precondition(
    client: Zitadel, human: Human
):
    authenticator = SoftAuthenticator()
    add_passkey(client, human.user_id, authenticator)
    created = create_session(client, human.user_id, password=None)
    # a well-formed assertion by the user's own passkey, over a challenge the server never gave
    assertion = authenticator.get(
        {"challenge": b64u(secrets.token_bytes(32)), "rpId": RP_ID, "userVerification": "required"},
        WEBAUTHN_ORIGIN,
    )
    error = connect_error(
        lambda: client.sessions.set_session(
            SessionServiceSetSessionRequest(
                sessionId=created.session_id,
                checks=SessionServiceChecks(
                    webAuthN=SessionServiceCheckWebAuthN(credentialAssertionData=assertion)
                ),
            )
        )
    )
    webauthn_error(error, 400, "failed_precondition", "COMMAND-Ioqu5")
    factors = get_session(client, created.session_id).factors
    assert factors is not None
    assert factors.web_auth_n is None
