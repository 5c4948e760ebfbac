"""The REST transport: ZITADEL's grpc-gateway mapping of each RPC onto an HTTP route.

A route names its RPC, HTTP method and path; path parameters and the listed query
parameters are merged into the request message (a path value overrides the body's, as
grpc-gateway does), and the success status is 201 where ZITADEL's REST says so. The session
routes are also served under ``/v2beta`` and ``/v2alpha``. Errors get grpc-gateway's body
(``app.transports.errors``). No use-case logic lives here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from actors.errors import ValidationFailed
from app.services import catalog
from app.services.catalog import Rpc
from app.transports.appkeys import SERVICES
from app.transports.http import MAX_DEPTH, caller, decode, read_body, require_fields, respond

_PARAM = re.compile(r"\{(\w+)\}")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    rpc: Rpc
    status: int = 200
    #: Whether the request body is decoded into the message (grpc-gateway ``body: "*"``).
    body: bool = True
    #: Message fields also taken from the query string (camelCase or snake_case names).
    query: tuple[str, ...] = ()

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)


def _session_routes(prefix: str) -> list[Route]:
    def rpc(name: str) -> Rpc:
        return catalog.rpc(catalog.SESSION_V2, name)

    one = f"{prefix}/sessions/{{sessionId}}"
    return [
        Route("POST", f"{prefix}/sessions", rpc("CreateSession"), status=201),
        Route("POST", f"{prefix}/sessions/search", rpc("ListSessions")),
        Route("GET", one, rpc("GetSession"), body=False, query=("sessionToken",)),
        Route("PATCH", one, rpc("SetSession")),
        Route("DELETE", one, rpc("DeleteSession"), query=("sessionToken",)),
    ]


def _idp_routes(prefix: str, service: str) -> list[Route]:
    def rpc(name: str) -> Rpc:
        return catalog.rpc(service, name)

    idps = f"{prefix}/idps"
    return [
        Route("POST", f"{idps}/generic_oidc", rpc("AddGenericOIDCProvider")),
        Route("PUT", f"{idps}/generic_oidc/{{id}}", rpc("UpdateGenericOIDCProvider")),
        Route("POST", f"{idps}/generic_oauth", rpc("AddGenericOAuthProvider")),
        Route("PUT", f"{idps}/generic_oauth/{{id}}", rpc("UpdateGenericOAuthProvider")),
        Route("POST", f"{idps}/_search", rpc("ListProviders")),
        Route("GET", f"{idps}/{{id}}", rpc("GetProviderByID"), body=False),
        Route("DELETE", f"{idps}/{{id}}", rpc("DeleteProvider"), body=False),
    ]


def _user(name: str) -> Rpc:
    return catalog.rpc(catalog.USER_V2, name)


_USER = "/v2/users/{userId}"
ROUTES: list[Route] = [
    *_session_routes("/v2"),
    *_session_routes("/v2beta"),
    *_session_routes("/v2alpha"),
    Route("POST", "/v2/users/human", _user("AddHumanUser"), status=201),
    Route("POST", "/v2/users/new", _user("CreateUser"), status=201),
    Route("GET", _USER, _user("GetUserByID"), body=False),
    Route("DELETE", _USER, _user("DeleteUser")),
    Route("POST", f"{_USER}/deactivate", _user("DeactivateUser")),
    Route("POST", f"{_USER}/reactivate", _user("ReactivateUser")),
    Route("POST", f"{_USER}/lock", _user("LockUser")),
    Route("POST", f"{_USER}/unlock", _user("UnlockUser")),
    Route("POST", f"{_USER}/password", _user("SetPassword")),
    Route("POST", f"{_USER}/password_reset", _user("PasswordReset")),
    Route("POST", f"{_USER}/email/verify", _user("VerifyEmail")),
    Route("POST", f"{_USER}/phone/verify", _user("VerifyPhone")),
    Route("POST", f"{_USER}/pats", _user("AddPersonalAccessToken")),
    Route("POST", f"{_USER}/totp", _user("RegisterTOTP")),
    Route("POST", f"{_USER}/totp/verify", _user("VerifyTOTPRegistration")),
    Route("DELETE", f"{_USER}/totp", _user("RemoveTOTP")),
    Route("POST", f"{_USER}/otp_sms", _user("AddOTPSMS")),
    Route("DELETE", f"{_USER}/otp_sms", _user("RemoveOTPSMS")),
    Route("POST", f"{_USER}/otp_email", _user("AddOTPEmail")),
    Route("DELETE", f"{_USER}/otp_email", _user("RemoveOTPEmail")),
    Route("POST", f"{_USER}/recovery_codes", _user("GenerateRecoveryCodes")),
    Route("DELETE", f"{_USER}/recovery_codes", _user("RemoveRecoveryCodes")),
    Route("POST", f"{_USER}/passkeys", _user("RegisterPasskey")),
    Route("POST", f"{_USER}/passkeys/registration_link", _user("CreatePasskeyRegistrationLink")),
    Route("POST", f"{_USER}/passkeys/_search", _user("ListPasskeys")),
    Route("POST", f"{_USER}/passkeys/{{passkeyId}}", _user("VerifyPasskeyRegistration")),
    Route("DELETE", f"{_USER}/passkeys/{{passkeyId}}", _user("RemovePasskey")),
    Route("POST", f"{_USER}/u2f", _user("RegisterU2F")),
    Route("POST", f"{_USER}/u2f/{{u2fId}}", _user("VerifyU2FRegistration")),
    Route("DELETE", f"{_USER}/u2f/{{u2fId}}", _user("RemoveU2F")),
    Route(
        "GET", f"{_USER}/authentication_methods", _user("ListAuthenticationMethodTypes"), body=False
    ),
    Route("POST", f"{_USER}/links", _user("AddIDPLink")),
    Route("POST", f"{_USER}/links/_search", _user("ListIDPLinks")),
    Route("DELETE", f"{_USER}/links/{{idpId}}/{{linkedUserId}}", _user("RemoveIDPLink")),
    Route("POST", "/v2/idp_intents", _user("StartIdentityProviderIntent")),
    Route("POST", "/v2/idp_intents/{idpIntentId}", _user("RetrieveIdentityProviderIntent")),
    *_idp_routes("/admin/v1", catalog.ADMIN_V1),
    *_idp_routes("/management/v1", catalog.MANAGEMENT_V1),
    Route("POST", "/v2/organizations", catalog.ADD_ORGANIZATION, status=201),
    Route("POST", "/v2/administrators", catalog.CREATE_ADMINISTRATOR),
]


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


@dataclass(frozen=True, slots=True)
class _Binding:
    """One path or query parameter: its wire name, the message field and its typed form."""

    param: str
    field: str
    kind: Any


def _bindings(route: Route, names: list[str] | tuple[str, ...]) -> list[_Binding]:
    types = {field.name: field.type for field in msgspec.structs.fields(route.rpc.request)}
    return [_Binding(name, snake(name), types[snake(name)]) for name in names]


def _convert(binding: _Binding, value: str) -> Any:
    try:
        return msgspec.convert(value, binding.kind)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"invalid request: {exc} - at `{binding.param}`") from None


def handler(
    route: Route, max_depth: int = MAX_DEPTH
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of one route: decode and merge, call the service, encode."""
    rpc, status = route.rpc, route.status
    path = _bindings(route, route.path_params)
    query = _bindings(route, route.query)

    async def handle(request: web.Request) -> web.Response:
        if route.body:
            message: Any = decode(
                _json_or_nothing(await read_body(request)), rpc.request, max_depth
            )
            message = _merged(message, request, path, query)
        else:  # the parameters are the whole message: one validating conversion
            message = _from_parameters(request, rpc.request, path, query)
        require_fields(message)
        service = request.app[SERVICES].instance(rpc.owner)
        return respond(await rpc.impl(service, caller(request), message), status=status)

    return handle


def _json_or_nothing(raw: bytes) -> bytes:
    """No body is the empty message; a body is a JSON document, and whitespace is not one."""
    if raw and not raw.strip():
        raise ValidationFailed("invalid JSON: the body is only whitespace; send {} or no body")
    return raw


def _merged(message: Any, request: web.Request, path: list[_Binding], query: list[_Binding]) -> Any:
    """The body's message with the path's values (they win) and missing query values."""
    updates = {b.field: _convert(b, request.match_info[b.param]) for b in path}
    for binding in query:
        value = request.query.get(binding.param) or request.query.get(binding.field)
        if value is None:
            continue
        converted = _convert(binding, value)  # validated even when the body's value wins
        if getattr(message, binding.field) is None:
            updates[binding.field] = converted
    return msgspec.structs.replace(message, **updates) if updates else message


def _from_parameters(
    request: web.Request, kind: type, path: list[_Binding], query: list[_Binding]
) -> Any:
    params = {b.param: request.match_info[b.param] for b in path}
    for binding in query:
        value = request.query.get(binding.param) or request.query.get(binding.field)
        if value is not None:
            params[binding.param] = value
    try:
        return msgspec.convert(params, kind)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"invalid request: {exc}") from None


def shadowed(route: Route) -> dict[str, list[str]]:
    """Path parameter → the literal segments of other routes its pattern would also match.

    ``/v2/sessions/{sessionId}`` would answer ``GET /v2/sessions/search`` (the search route's
    path) as GetSession("search"), and so list GET in a 405's ``Allow`` there; those values
    are carved out of the parameter, so that such a path has exactly its own methods.
    """
    parts = route.path.split("/")
    found: dict[str, list[str]] = {}
    for other in ROUTES:
        others = other.path.split("/")
        if len(others) != len(parts):
            continue
        differing = [i for i, (a, b) in enumerate(zip(parts, others, strict=True)) if a != b]
        if (
            len(differing) == 1
            and _PARAM.fullmatch(parts[differing[0]])
            and not _PARAM.fullmatch(others[differing[0]])
        ):
            literals = found.setdefault(parts[differing[0]][1:-1], [])
            if others[differing[0]] not in literals:
                literals.append(others[differing[0]])
    return found


def router_path(route: Route) -> str:
    """``route.path`` with the shadowed literals excluded from its parameters' patterns."""
    path = route.path
    for name, literals in shadowed(route).items():
        if not path.endswith(f"/{{{name}}}"):
            raise ValueError(f"{route.path}: only a last parameter may shadow another route")
        excluded = "|".join(re.escape(literal) for literal in literals)
        path = path.replace(f"{{{name}}}", f"{{{name}:(?!(?:{excluded})$)[^{{}}/]+}}")
    return path


def setup_rest_routes(app: web.Application, *, max_depth: int = MAX_DEPTH) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, router_path(route), handler(route, max_depth))
