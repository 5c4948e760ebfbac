"""Every RPC the service answers, described once; both transports are tables over this.

An ``Rpc`` names the ZITADEL service and method, the request and (documented) response
messages, and the service method that implements it: an ``async (self, caller, request) ->
response`` of one of the service classes. REST maps an HTTP method and path to an ``Rpc``,
Connect maps ``/<package>.<Service>/<Method>`` to one; neither holds any use-case logic.

``UNIMPLEMENTED`` lists the other methods ZITADEL defines on the same services: Connect
answers them ``unimplemented`` (501) instead of 404, so a client can tell "not built yet"
from "no such thing".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from actors.permissions import Caller
from app.services import factor_wire as fw
from app.services import idp_config_wire as cw
from app.services import intent_wire as iw
from app.services import passkey_wire as pw
from app.services import session_wire as sw
from app.services import user_wire as uw
from app.services.administrators import InternalPermissionService
from app.services.idp_configs import AdminIdpService, IdpConfigService, ManagementIdpService
from app.services.intents import IntentService
from app.services.organizations import OrganizationService
from app.services.sessions import SessionService
from app.services.users import UserService

SESSION_V2 = "zitadel.session.v2.SessionService"
SESSION_V2BETA = "zitadel.session.v2beta.SessionService"
USER_V2 = "zitadel.user.v2.UserService"
ORG_V2 = "zitadel.org.v2.OrganizationService"
PERMISSION_V2 = "zitadel.internal_permission.v2.InternalPermissionService"
ADMIN_V1 = "zitadel.admin.v1.AdminService"
MANAGEMENT_V1 = "zitadel.management.v1.ManagementService"

Impl = Callable[[Any, Caller, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Rpc:
    service: str
    name: str
    request: type
    #: The documented response message; the method's return value encodes to this shape.
    response: type
    impl: Impl
    owner: type

    @property
    def path(self) -> str:
        """The Connect path, ``/<package>.<Service>/<Method>``."""
        return f"/{self.service}/{self.name}"


@dataclass(frozen=True, slots=True)
class Services:
    """The service instances of one worker process, built by the composition root."""

    sessions: SessionService
    users: UserService
    organizations: OrganizationService
    permissions: InternalPermissionService
    intents: IntentService
    admin_idps: AdminIdpService
    management_idps: ManagementIdpService

    def instance(self, owner: type) -> object:
        return _INSTANCE_OF[owner](self)


_INSTANCE_OF: dict[type, Callable[[Services], object]] = {
    SessionService: lambda s: s.sessions,
    UserService: lambda s: s.users,
    OrganizationService: lambda s: s.organizations,
    InternalPermissionService: lambda s: s.permissions,
    IntentService: lambda s: s.intents,
    AdminIdpService: lambda s: s.admin_idps,
    ManagementIdpService: lambda s: s.management_idps,
}


def _session_rpcs(service: str) -> list[Rpc]:
    owner = SessionService
    return [
        Rpc(
            service,
            "CreateSession",
            sw.CreateSessionRequest,
            sw.CreateSessionResponse,
            owner.create_session,
            owner,
        ),
        Rpc(
            service,
            "SetSession",
            sw.SetSessionRequest,
            sw.SetSessionResponse,
            owner.set_session,
            owner,
        ),
        Rpc(
            service,
            "GetSession",
            sw.GetSessionRequest,
            sw.GetSessionResponse,
            owner.get_session,
            owner,
        ),
        Rpc(
            service,
            "ListSessions",
            sw.ListSessionsRequest,
            sw.ListSessionsResponse,
            owner.list_sessions,
            owner,
        ),
        Rpc(
            service,
            "DeleteSession",
            sw.DeleteSessionRequest,
            sw.DeleteSessionResponse,
            owner.delete_session,
            owner,
        ),
    ]


def _user_rpc(name: str, request: type, response: type, impl: Impl) -> Rpc:
    return Rpc(USER_V2, name, request, response, impl, UserService)


U = UserService
USER_RPCS = [
    _user_rpc("AddHumanUser", uw.AddHumanUserRequest, uw.AddHumanUserResponse, U.add_human_user),
    _user_rpc("CreateUser", uw.CreateUserRequest, uw.CreateUserResponse, U.create_user),
    _user_rpc("GetUserByID", uw.GetUserByIDRequest, uw.GetUserResponse, U.get_user_by_id),
    _user_rpc("DeleteUser", uw.DeleteUserRequest, uw.DetailsResponse, U.delete_user),
    _user_rpc("DeactivateUser", uw.DeactivateUserRequest, uw.DetailsResponse, U.deactivate_user),
    _user_rpc("ReactivateUser", uw.ReactivateUserRequest, uw.DetailsResponse, U.reactivate_user),
    _user_rpc("LockUser", uw.LockUserRequest, uw.DetailsResponse, U.lock_user),
    _user_rpc("UnlockUser", uw.UnlockUserRequest, uw.DetailsResponse, U.unlock_user),
    _user_rpc("SetPassword", uw.SetPasswordRequest, uw.DetailsResponse, U.set_password),
    _user_rpc("PasswordReset", uw.PasswordResetRequest, uw.PasswordResetResponse, U.password_reset),
    _user_rpc("VerifyEmail", uw.VerifyEmailRequest, uw.DetailsResponse, U.verify_email),
    _user_rpc("VerifyPhone", uw.VerifyPhoneRequest, uw.DetailsResponse, U.verify_phone),
    _user_rpc(
        "AddPersonalAccessToken",
        uw.AddPersonalAccessTokenRequest,
        uw.AddPersonalAccessTokenResponse,
        U.add_personal_access_token,
    ),
    _user_rpc("RegisterTOTP", fw.RegisterTOTPRequest, fw.RegisterTOTPResponse, U.register_totp),
    _user_rpc(
        "VerifyTOTPRegistration",
        fw.VerifyTOTPRegistrationRequest,
        uw.DetailsResponse,
        U.verify_totp_registration,
    ),
    _user_rpc("RemoveTOTP", fw.RemoveTOTPRequest, uw.DetailsResponse, U.remove_totp),
    _user_rpc("AddOTPSMS", fw.AddOTPSMSRequest, uw.DetailsResponse, U.add_otp_sms),
    _user_rpc("RemoveOTPSMS", fw.RemoveOTPSMSRequest, uw.DetailsResponse, U.remove_otp_sms),
    _user_rpc("AddOTPEmail", fw.AddOTPEmailRequest, uw.DetailsResponse, U.add_otp_email),
    _user_rpc("RemoveOTPEmail", fw.RemoveOTPEmailRequest, uw.DetailsResponse, U.remove_otp_email),
    _user_rpc(
        "GenerateRecoveryCodes",
        fw.GenerateRecoveryCodesRequest,
        fw.GenerateRecoveryCodesResponse,
        U.generate_recovery_codes,
    ),
    _user_rpc(
        "RemoveRecoveryCodes",
        fw.RemoveRecoveryCodesRequest,
        uw.DetailsResponse,
        U.remove_recovery_codes,
    ),
    _user_rpc(
        "RegisterPasskey", pw.RegisterPasskeyRequest, pw.RegisterPasskeyResponse, U.register_passkey
    ),
    _user_rpc(
        "VerifyPasskeyRegistration",
        pw.VerifyPasskeyRegistrationRequest,
        uw.DetailsResponse,
        U.verify_passkey_registration,
    ),
    _user_rpc("ListPasskeys", pw.ListPasskeysRequest, pw.ListPasskeysResponse, U.list_passkeys),
    _user_rpc("RemovePasskey", pw.RemovePasskeyRequest, uw.DetailsResponse, U.remove_passkey),
    _user_rpc(
        "CreatePasskeyRegistrationLink",
        pw.CreatePasskeyRegistrationLinkRequest,
        pw.CreatePasskeyRegistrationLinkResponse,
        U.create_passkey_registration_link,
    ),
    _user_rpc("RegisterU2F", pw.RegisterU2FRequest, pw.RegisterU2FResponse, U.register_u2f),
    _user_rpc(
        "VerifyU2FRegistration",
        pw.VerifyU2FRegistrationRequest,
        uw.DetailsResponse,
        U.verify_u2f_registration,
    ),
    _user_rpc("RemoveU2F", pw.RemoveU2FRequest, uw.DetailsResponse, U.remove_u2f),
    _user_rpc(
        "ListAuthenticationMethodTypes",
        fw.ListAuthenticationMethodTypesRequest,
        fw.ListAuthenticationMethodTypesResponse,
        U.list_authentication_method_types,
    ),
    _user_rpc("AddIDPLink", iw.AddIDPLinkRequest, uw.DetailsResponse, U.add_idp_link),
    _user_rpc("ListIDPLinks", iw.ListIDPLinksRequest, iw.ListIDPLinksResponse, U.list_idp_links),
    _user_rpc("RemoveIDPLink", iw.RemoveIDPLinkRequest, uw.DetailsResponse, U.remove_idp_link),
    Rpc(
        USER_V2,
        "StartIdentityProviderIntent",
        iw.StartIdentityProviderIntentRequest,
        iw.StartIdentityProviderIntentResponse,
        IntentService.start_intent,
        IntentService,
    ),
    Rpc(
        USER_V2,
        "RetrieveIdentityProviderIntent",
        iw.RetrieveIdentityProviderIntentRequest,
        iw.RetrieveIdentityProviderIntentResponse,
        IntentService.retrieve_intent,
        IntentService,
    ),
]
del U

ADD_ORGANIZATION = Rpc(
    ORG_V2,
    "AddOrganization",
    uw.AddOrganizationRequest,
    uw.AddOrganizationResponse,
    OrganizationService.add_organization,
    OrganizationService,
)
CREATE_ADMINISTRATOR = Rpc(
    PERMISSION_V2,
    "CreateAdministrator",
    uw.CreateAdministratorRequest,
    uw.CreateAdministratorResponse,
    InternalPermissionService.create_administrator,
    InternalPermissionService,
)


def _idp_rpcs(service: str, owner: type[IdpConfigService]) -> list[Rpc]:
    """The IdP configuration RPCs, the same on the admin and the management service."""
    o = owner
    return [
        Rpc(
            service,
            "AddGenericOIDCProvider",
            cw.AddGenericOIDCProviderRequest,
            cw.AddProviderResponse,
            o.add_generic_oidc_provider,
            o,
        ),
        Rpc(
            service,
            "UpdateGenericOIDCProvider",
            cw.UpdateGenericOIDCProviderRequest,
            cw.DetailsOnlyResponse,
            o.update_generic_oidc_provider,
            o,
        ),
        Rpc(
            service,
            "AddGenericOAuthProvider",
            cw.AddGenericOAuthProviderRequest,
            cw.AddProviderResponse,
            o.add_generic_oauth_provider,
            o,
        ),
        Rpc(
            service,
            "UpdateGenericOAuthProvider",
            cw.UpdateGenericOAuthProviderRequest,
            cw.DetailsOnlyResponse,
            o.update_generic_oauth_provider,
            o,
        ),
        Rpc(
            service,
            "GetProviderByID",
            cw.GetProviderByIDRequest,
            cw.GetProviderByIDResponse,
            o.get_provider_by_id,
            o,
        ),
        Rpc(
            service,
            "ListProviders",
            cw.ListProvidersRequest,
            cw.ListProvidersResponse,
            o.list_providers,
            o,
        ),
        Rpc(
            service,
            "DeleteProvider",
            cw.DeleteProviderRequest,
            cw.DetailsOnlyResponse,
            o.delete_provider,
            o,
        ),
    ]


ADMIN_IDP_RPCS = _idp_rpcs(ADMIN_V1, AdminIdpService)
MANAGEMENT_IDP_RPCS = _idp_rpcs(MANAGEMENT_V1, ManagementIdpService)
SESSION_RPCS = _session_rpcs(SESSION_V2)
RPCS: list[Rpc] = [
    *SESSION_RPCS,
    *_session_rpcs(SESSION_V2BETA),
    *USER_RPCS,
    ADD_ORGANIZATION,
    CREATE_ADMINISTRATOR,
    *ADMIN_IDP_RPCS,
    *MANAGEMENT_IDP_RPCS,
]


def rpc(service: str, name: str) -> Rpc:
    """The one descriptor of ``service``/``name`` (KeyError if it is not served)."""
    return _BY_PATH[f"/{service}/{name}"]


_BY_PATH = {entry.path: entry for entry in RPCS}

_ZITADEL_METHODS: dict[str, str] = {
    USER_V2: (
        "AddHumanUser AddIDPLink AddKey AddOTPEmail AddOTPSMS AddPersonalAccessToken AddSecret"
        " CreateInviteCode CreatePasskeyRegistrationLink CreateUser DeactivateUser DeleteUser"
        " DeleteUserMetadata GenerateRecoveryCodes GetUserByID HumanMFAInitSkipped"
        " ListAuthenticationFactors ListAuthenticationMethodTypes ListIDPLinks ListKeys"
        " ListPasskeys ListPersonalAccessTokens ListUserMetadata ListUsers LockUser"
        " PasswordReset ReactivateUser RegisterPasskey RegisterTOTP RegisterU2F RemoveIDPLink"
        " RemoveKey RemoveOTPEmail RemoveOTPSMS RemovePasskey RemovePersonalAccessToken"
        " RemovePhone RemoveRecoveryCodes RemoveSecret RemoveTOTP RemoveU2F ResendEmailCode"
        " ResendInviteCode ResendPhoneCode RetrieveIdentityProviderIntent SendEmailCode"
        " SetEmail SetPassword SetPhone SetUserMetadata StartIdentityProviderIntent UnlockUser"
        " UpdateHumanUser UpdateUser VerifyEmail VerifyInviteCode VerifyPasskeyRegistration"
        " VerifyPhone VerifyTOTPRegistration VerifyU2FRegistration"
    ),
    ORG_V2: (
        "ActivateOrganization AddOrganization AddOrganizationDomain DeactivateOrganization"
        " DeleteOrganization DeleteOrganizationDomain DeleteOrganizationMetadata"
        " GenerateOrganizationDomainValidation ListOrganizationDomains"
        " ListOrganizationMetadata ListOrganizations SetOrganizationMetadata"
        " UpdateOrganization VerifyOrganizationDomain"
    ),
    PERMISSION_V2: (
        "CreateAdministrator DeleteAdministrator ListAdministrators UpdateAdministrator"
    ),
}

#: ZITADEL's other methods of these services (v4 protos, as the official SDKs call them):
#: answered ``unimplemented``, never 404.
UNIMPLEMENTED: dict[str, tuple[str, ...]] = {
    service: tuple(name for name in names.split() if f"/{service}/{name}" not in _BY_PATH)
    for service, names in _ZITADEL_METHODS.items()
}
