"""GET /openapi.json: an OpenAPI 3.1 document generated from the msgspec wire types.

One operation per REST route (``app.transports.rest.ROUTES``); the schemas come from
``msgspec.json.schema_components`` (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so the
document cannot drift from what the decoders accept. What a decoder cannot say (one-ofs,
enums given by name or number, the shape of an imported hash) the wire type states in its
``schema_rules`` class variable, next to the code that enforces it, and it is merged in here.

Every operation lists exactly the statuses it can answer (``_ERRORS``), each with the error
body grpc-gateway writes; ``tests/test_openapi_fuzz.py`` holds the server to the document
with schemathesis.

PingOne's Sessions API (``app.transports.pingone``) is described by its own table
(``_PINGONE``, one entry per route: a route without one fails the build of the document), with
HAL bodies, PingOne's error body, and the facade's own validation as rules (``pingone_wire``
has no ``schema_rules``; its decoder's leniency is not protojson's).
"""

from __future__ import annotations

import itertools
import re
from functools import cache
from typing import Any, Literal

import msgspec
from aiohttp import web

from actors.activity import MAX_IDLE_TIMEOUT_MS
from app.services import (
    factor_wire,
    idp_config_wire,
    intent_wire,
    passkey_wire,
    pingone_wire,
    session_wire,
    user_wire,
)
from app.services.user_agents import MAX_USER_AGENT_CHARS
from app.transports import pingone
from app.transports.idp_callback import CALLBACK_PARAMS, PRINTABLE_ASCII
from app.transports.rest import ROUTES, Route, shadowed, snake


class Parameter(msgspec.Struct, frozen=True):
    name: str
    schema: dict[str, Any]
    #: a query parameter's; path parameters always are
    required: bool = False


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    summary: str
    request: type | None = None
    response: type | None = None
    status: int = 200
    public: bool = False
    path_params: tuple[Parameter, ...] = ()
    query: tuple[Parameter, ...] = ()
    #: Error statuses besides the success status, ascending.
    errors: tuple[int, ...] = ()
    description: str = ""
    #: A body that is not JSON: its media type, described as text.
    text_media_type: str = ""
    #: The success is a redirect (``Location``), without a body.
    redirect: bool = False


class Probe(msgspec.Struct, omit_defaults=True):
    """The body of /healthz and /readyz (``app.transports.health``)."""

    status: Literal["SERVING", "NOT_SERVING"]
    #: Why Redis is not ready (an error id such as ``STORAGE-timeout``); only with 503.
    redis: str | None = None


class Document(msgspec.Struct):
    """This document (an OpenAPI 3.1 object)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


class ErrorDetail(msgspec.Struct, rename={"type_": "@type"}, omit_defaults=True):
    """``zitadel.v1.ErrorDetail`` (or ``CredentialsCheckError`` with ``failedAttempts``)."""

    type_: str = ""
    id: str = ""
    message: str = ""


class ErrorBody(msgspec.Struct):
    """google.rpc.Status as grpc-gateway writes it: the gRPC code, a message, details."""

    code: int
    message: str
    details: list[ErrorDetail]


#: Every authenticated operation: invalid input, a missing or bad bearer (the caller lookup
#: reads Redis, hence 503 too), and the generic 500 of the error middleware.
_ALWAYS = (400, 401, 500, 503)
#: What else each RPC can answer, traced through its service method: 403 permission, 404
#: unknown resource, 409 already exists or a concurrent write (session lease, user update),
#: 429 a bound (actor mailbox, password checks in flight or rate-limited, Redis out of
#: memory), 501 a field or check not built yet, 504 the session actor's deadline.
_ERRORS: dict[str, tuple[int, ...]] = {
    "CreateSession": (403, 404, 429),
    "SetSession": (403, 404, 409, 429, 504),
    "GetSession": (403, 404),
    "ListSessions": (),
    "DeleteSession": (403, 404, 409, 429, 504),
    "AddHumanUser": (403, 404, 409, 429, 501),
    "CreateUser": (403, 404, 409, 429, 501),
    "GetUserByID": (403, 404),
    "DeleteUser": (403, 404, 409, 429),
    "DeactivateUser": (403, 404, 409, 429),
    "ReactivateUser": (403, 404, 409, 429),
    "LockUser": (403, 404, 409, 429),
    "UnlockUser": (403, 404, 409, 429),
    "SetPassword": (403, 404, 409, 429),
    "PasswordReset": (403, 404, 409, 429),
    "VerifyEmail": (403, 404, 409, 429),
    "VerifyPhone": (403, 404, 409, 429),
    "AddPersonalAccessToken": (403, 404, 409, 429),
    "RegisterTOTP": (403, 404, 409, 429),
    "VerifyTOTPRegistration": (403, 404, 409, 429),
    "RemoveTOTP": (403, 404, 409, 429),
    "AddOTPSMS": (403, 404, 409, 429),
    "RemoveOTPSMS": (403, 404, 409, 429),
    "AddOTPEmail": (403, 404, 409, 429),
    "RemoveOTPEmail": (403, 404, 409, 429),
    "GenerateRecoveryCodes": (403, 404, 409, 429),
    "RemoveRecoveryCodes": (403, 404, 409, 429),
    "RegisterPasskey": (403, 404, 409, 429),
    "VerifyPasskeyRegistration": (403, 404, 409, 429),
    "ListPasskeys": (403, 404),
    "RemovePasskey": (403, 404, 409, 429),
    "CreatePasskeyRegistrationLink": (403, 404, 409, 429),
    "RegisterU2F": (403, 404, 409, 429),
    "VerifyU2FRegistration": (403, 404, 409, 429),
    "RemoveU2F": (403, 404, 409, 429),
    "ListAuthenticationMethodTypes": (403, 404),
    "AddGenericOIDCProvider": (403, 409),
    "UpdateGenericOIDCProvider": (403, 404, 409),
    "AddGenericOAuthProvider": (403, 409),
    "UpdateGenericOAuthProvider": (403, 404, 409),
    "GetProviderByID": (403, 404),
    "ListProviders": (403,),
    "DeleteProvider": (403, 404, 409),
    "AddIDPLink": (403, 404, 409, 429),
    "ListIDPLinks": (403, 404),
    "RemoveIDPLink": (403, 404, 409, 429),
    "StartIdentityProviderIntent": (403, 404, 501),
    "RetrieveIdentityProviderIntent": (403,),
    "AddOrganization": (403, 404, 409, 429, 501),
    "CreateAdministrator": (403, 404, 409, 429, 501),
}
_REASONS = {
    400: "invalid request (bad JSON, a field out of its bounds) or failed precondition",
    401: "no bearer token, or one that is not valid",
    403: "the caller lacks the permission",
    404: "no such resource",
    405: "the path is another route's (a parameter may not be its literal segment)",
    409: "already exists, or a concurrent update: retry",
    413: "request body larger than the configured limit",
    429: "a bound was hit: retry after Retry-After seconds",
    500: "internal error",
    501: "a field, check or challenge this server does not support yet",
    503: "Redis is not reachable: retry after Retry-After seconds",
    504: "the session update did not finish in time (it may still land)",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    }
}

#: The routes outside the API proper: probes and this document.
PUBLIC: list[Operation] = [
    Operation(
        method="get",
        path="/healthz",
        summary="Liveness: the process serves HTTP",
        response=Probe,
        public=True,
    ),
    Operation(
        method="get",
        path="/readyz",
        summary="Readiness: Redis answers (503 when not)",
        response=Probe,
        public=True,
        errors=(503,),
    ),
    Operation(
        method="get", path="/openapi.json", summary="This document", response=Document, public=True
    ),
    Operation(
        method="get",
        path="/idps/callback",
        summary="Where identity providers send the browser back: 302 to the login UI",
        public=True,
        status=302,
        query=tuple(
            Parameter(
                name,
                {
                    "type": "string",
                    "minLength": int(name == "state"),
                    "maxLength": bound,
                    "pattern": PRINTABLE_ASCII,
                },
                required=name == "state",
            )
            for name, bound in CALLBACK_PARAMS.items()
        ),
        errors=(400, 500, 503),
        redirect=True,
    ),
    Operation(
        method="get",
        path="/metrics",
        summary="Prometheus metrics of every worker (bearer SESSIOND_METRICS_TOKEN if set)",
        public=True,
        text_media_type="text/plain",
    ),
]


def _field_types(kind: type) -> dict[str, Any]:
    return {field.name: field.type for field in msgspec.structs.fields(kind)}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of ``T | None`` without its ``null``: a parameter is a string or absent."""
    branches = schema.get("anyOf")
    if branches is None:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    return kept[0] if len(kept) == 1 else {**schema, "anyOf": kept}


def _parameter(route: Route, name: str, *, query: bool) -> Parameter:
    schema = _not_null(msgspec.json.schema(_field_types(route.rpc.request)[snake(name)]))
    if query:
        # an empty query value counts as absent (the body's value, or none, is used)
        schema = {key: value for key, value in schema.items() if key != "minLength"}
    literals = shadowed(route).get(name)
    if literals and not query:
        schema = {**schema, "not": {"enum": literals}}  # other routes' paths (rest.shadowed)
    return Parameter(name, schema)


def _errors(route: Route) -> tuple[int, ...]:
    statuses = set(_ALWAYS) | set(_ERRORS[route.rpc.name])
    if route.body:
        statuses.add(413)  # aiohttp's client_max_size, only when the body is read
    if shadowed(route):
        statuses.add(405)  # the path names another route (``rest.shadowed``), not this one
    return tuple(sorted(statuses))


def operations() -> list[Operation]:
    """One operation per REST route, then the public ones."""
    api = [
        Operation(
            method=route.method.lower(),
            path=route.path,
            summary=route.rpc.name,
            request=route.rpc.request if route.body else None,
            response=route.rpc.response,
            status=route.status,
            path_params=tuple(_parameter(route, p, query=False) for p in route.path_params),
            query=tuple(_parameter(route, q, query=True) for q in route.query),
            errors=_errors(route),
            description=f"{route.rpc.service}/{route.rpc.name}",
        )
        for route in ROUTES
    ]
    return api + PUBLIC


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def _json(kind: type | None) -> dict[str, Any]:
    schema = _ref(kind) if kind is not None else {"type": "object"}
    return {"content": {"application/json": {"schema": schema}}}


def _operation_id(op: Operation) -> str:
    return f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", "")


#: Operations that create what other operations address: (RPC, path parameter, where the
#: response names the new resource). They become OpenAPI links, for clients and for the
#: stateful phase of the fuzz test.
_CREATES = (
    ("CreateSession", "sessionId", "$response.body#/sessionId"),
    ("AddHumanUser", "userId", "$response.body#/userId"),
    ("CreateUser", "userId", "$response.body#/id"),
)


def _links(op: Operation, ops: list[Operation]) -> dict[str, Any]:
    links: dict[str, Any] = {}
    prefix = op.path.split("/")[1] if op.path.count("/") > 1 else ""
    for rpc, param, source in _CREATES:
        if op.summary != rpc:
            continue
        for target in ops:
            same_api = target.path.split("/")[1] == prefix
            if same_api and any(p.name == param for p in target.path_params):
                links[_operation_id(target)] = {
                    "operationId": _operation_id(target),
                    "parameters": {param: source},
                }
    return links


_TEXT = {"type": "string"}


def _responses(op: Operation, ops: list[Operation]) -> dict[str, Any]:
    if op.text_media_type:
        text = {"content": {op.text_media_type: {"schema": {"type": "string"}}}}
        return {
            "200": {"description": "success", **text},
            "401": {"description": "SESSIOND_METRICS_TOKEN is set and not given", **text},
        }
    success: dict[str, Any] = {"description": "success", **_json(op.response)}
    if op.redirect:
        location = {"description": "where to go on", "schema": {"type": "string"}}
        success = {"description": "redirect to the login UI", "headers": {"Location": location}}
    links = _links(op, ops)
    if links:
        success["links"] = links
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.errors:
        body = _json(Probe if op.public and not op.redirect else ErrorBody)
        response: dict[str, Any] = {"description": _REASONS[status], **body}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        if status == 400 and op.query:
            # a request line over 8190 bytes is refused by the HTTP parser, in plain text
            response["content"] = {**response["content"], "text/plain": {"schema": _TEXT}}
        responses[str(status)] = response
    return responses


def _operation_doc(op: Operation, ops: list[Operation]) -> dict[str, Any]:
    params = [
        {"name": p.name, "in": "path", "required": True, "schema": p.schema} for p in op.path_params
    ] + [
        {"name": p.name, "in": "query", "required": p.required, "schema": p.schema}
        for p in op.query
    ]
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "responses": _responses(op, ops),
    }
    if op.description:
        doc["description"] = op.description
    if params:
        doc["parameters"] = params
    if op.request is not None:
        # an empty body is the empty message, which is enough unless a field is required
        doc["requestBody"] = {"required": not _empty_is_valid(op.request), **_json(op.request)}
    doc["security"] = [] if op.public else [{"bearer": []}]
    return doc


def _empty_is_valid(kind: type) -> bool:
    """Whether ``{}`` (what an absent body decodes as) is a valid ``kind``."""
    rules = _rules(kind.__name__)
    if "required" in rules or "oneOf" in rules:
        return False
    return not any(field.required for field in msgspec.structs.fields(kind))


#: Where the wire types live; their ``schema_rules`` are merged into their components.
_WIRE_MODULES = (session_wire, user_wire, factor_wire, passkey_wire, intent_wire, idp_config_wire)


def _rules(name: str) -> dict[str, Any]:
    for module in _WIRE_MODULES:
        kind = getattr(module, name, None)
        rules: dict[str, Any] | None = getattr(kind, "schema_rules", None)
        if isinstance(kind, type) and rules:
            return dict(rules)
    return {}


def at_most(limit: int) -> str:
    """A regex of the decimal numbers 0..``limit`` without leading zeros (anchored)."""
    digits = str(limit)
    options = ["0"]
    if len(digits) > 1:
        options.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    if limit > 0:
        options.extend(_same_length(digits))
    return f"^(?:{'|'.join(options)})$"


def _same_length(digits: str) -> list[str]:
    """The numbers of as many digits as ``digits`` (no leading zero) up to it, as regexes."""
    options = []
    for at, digit in enumerate(digits):  # a smaller digit here, anything after
        low = "1" if at == 0 else "0"
        if digit > low:
            rest = len(digits) - at - 1
            below = f"[{low}-{int(digit) - 1}]"
            options.append(digits[:at] + below + (f"[0-9]{{{rest}}}" if rest else ""))
    return [*options, digits]


def padded_at_most(limit: int, width: int) -> str:
    """A regex of the decimal numbers 1..``limit``, leading zeros allowed up to ``width`` digits."""
    digits = str(limit)
    options = [
        f"0{{0,{width - n}}}[1-9]" + (f"[0-9]{{{n - 1}}}" if n > 1 else "")
        for n in range(1, len(digits))
    ]
    options.append(f"0{{0,{width - len(digits)}}}(?:{'|'.join(_same_length(digits))})")
    return f"^(?:{'|'.join(options)})$"


#: ``app.transports.http.decode`` reads JSON leniently (msgspec ``strict=False``, for
#: protojson's quoted 64-bit integers), so a request's integers may also come as decimal
#: strings and its booleans as 0, 1 or "true"/"false"/"0"/"1" in any case.
_LAX_BOOLEAN = {
    "anyOf": [
        {"type": "boolean"},
        {"enum": [0, 1]},
        {"type": "string", "pattern": "^(?:[01]|[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"},
    ]
}


def _lax_const(value: bool) -> dict[str, Any]:
    word = "[Tt][Rr][Uu][Ee]" if value else "[Ff][Aa][Ll][Ss][Ee]"
    return {
        "anyOf": [
            {"const": value},
            {"const": int(value)},
            {"type": "string", "pattern": f"^(?:{int(value)}|{word})$"},
        ]
    }


def _lax(schema: Any) -> Any:
    """A request schema with the lenient forms of its booleans and integers."""
    if isinstance(schema, list):
        return [_lax(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _lax(value) for key, value in schema.items()}
    if out.get("const") in (True, False) and isinstance(out["const"], bool):
        out.update(_lax_const(out.pop("const")))
    elif out.get("type") == "boolean":
        del out["type"]
        out.update(_LAX_BOOLEAN)
    elif out.get("type") == "integer" and out.get("minimum", -1) >= 0 and "maximum" in out:
        out["type"] = ["integer", "string"]
        out["pattern"] = _decimal_pattern(int(out["minimum"]), int(out["maximum"]))
    return out


def _decimal_pattern(minimum: int, maximum: int) -> str:
    """The decimal strings of ``minimum..maximum``: a short range listed, else ``at_most``."""
    if minimum == 0:
        return at_most(maximum)
    if maximum - minimum > 100:
        raise ValueError("a string-lax integer with a lower bound needs a short range")
    return f"^(?:{'|'.join(str(n) for n in range(minimum, maximum + 1))})$"


def _schemas(kinds: set[type], rules: bool) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        sorted(kinds, key=lambda k: k.__name__), ref_template="#/components/schemas/{name}"
    )
    if rules:
        for name, schema in components.items():
            components[name] = _lax(_merge(schema, _rules(name)))
    return components


def _merge(schema: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """``schema`` narrowed by ``rules``: required names added, properties narrowed."""
    out = dict(schema)
    for key, rule in rules.items():
        if key not in out:
            out[key] = rule
        elif key == "required":
            out[key] = [*out[key], *(name for name in rule if name not in out[key])]
        elif key == "properties":
            out[key] = {**out[key]}
            for prop, narrowing in rule.items():
                current = out[key].get(prop)
                out[key][prop] = narrowing if current is None else _narrowed(current, narrowing)
        else:
            out.setdefault("allOf", []).append({key: rule})
    for name in rules.get("required", ()):  # a required field's default is never used
        prop = out.get("properties", {}).get(name)
        if prop is not None and "default" in prop:
            out["properties"][name] = {k: v for k, v in prop.items() if k != "default"}
    return out


def _narrowed(schema: dict[str, Any], narrowing: dict[str, Any]) -> dict[str, Any]:
    if schema.keys() & narrowing.keys():
        return {"allOf": [schema, narrowing]}
    return {**schema, **narrowing}


def _components(ops: list[Operation]) -> dict[str, Any]:
    """The request messages (and what they contain), then the responses and error bodies."""
    requests = _schemas({op.request for op in ops if op.request is not None}, rules=True)
    responses = _schemas(
        {ErrorBody} | {op.response for op in ops if op.response is not None}, rules=False
    )
    shared = {
        name for name in requests.keys() & responses.keys() if requests[name] != responses[name]
    }
    if shared:
        raise TypeError(f"types in both requests and responses: {sorted(shared)}")
    return {**responses, **requests}


def document() -> dict[str, Any]:
    ops = operations()
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation_doc(op, ops)
    pingone_ops = pingone_operations()
    for method, path, pingone_op in pingone_ops:
        paths.setdefault(path, {})[method] = _pingone_doc(path, pingone_op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sessiond",
            "version": "0.1.0",
            "description": "Authentication sessions, wire-compatible with ZITADEL's "
            "Session API v2 (also served under /v2beta and /v2alpha). The same RPCs are "
            "served over the Connect protocol at /<package>.<Service>/<Method>. Bounds on "
            "session metadata and user agent headers are the default settings "
            "(SESSIOND_MAX_METADATA_*, SESSIOND_MAX_HEADER_*); a deployment may configure "
            "tighter ones (400).",
        },
        "paths": paths,
        "components": {
            "schemas": _joined(_components(ops), _pingone_components(pingone_ops)),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@cache
def _encoded() -> bytes:
    """The document is a function of the code only: built once per process."""
    return msgspec.json.encode(document())


async def openapi_json(_request: web.Request) -> web.Response:
    return web.Response(body=_encoded(), content_type="application/json")


def setup_openapi_route(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)


# -- PingOne's Sessions API (``app.transports.pingone``) ----------------------------------------
PINGONE_TAG = "PingOne Sessions"
#: The content type of PingOne's resources (errors are ``application/json``).
HAL = "application/hal+json"
_MINUTE_MS = 60_000
#: ``pingone_wire._idle_ms``: a decimal string is at most 12 characters (leading zeros too).
_MINUTES_DIGITS = 12


class PingOneErrorDetail(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One entry of ``details``; ``target`` names the field at fault (``Cookie.ST``...)."""

    code: str
    target: str = ""
    message: str


class PingOneError(msgspec.Struct, omit_defaults=True):
    """PingOne's error body (``errors.pingone_body``): ``id`` finds the failure in the logs."""

    id: str
    code: str
    message: str
    details: list[PingOneErrorDetail] = []


class PingOneOperation(msgspec.Struct, frozen=True, kw_only=True):
    """What the document says of one route of ``app.transports.pingone.ROUTES``."""

    operation_id: str
    summary: str
    status: int
    request: type | None = None
    response: type | None = None
    #: The session is the one of the ``ST`` cookie (``/sessions/me``).
    cookie: bool = False
    #: The body is empty: its content type alone asks for the sign-off.
    logout: bool = False
    query: tuple[str, ...] = ()
    #: Statuses besides ``_PINGONE_ALWAYS``, traced through ``PingOneSessionService``.
    errors: tuple[int, ...] = ()


#: Every operation: a bad request, a missing or bad bearer (or Redis down while it is looked
#: up), a caller without the permission, another environment or an unknown session or user,
#: and the generic 500 (which a session actor's deadline also becomes, PINGONE_CODES).
_PINGONE_ALWAYS = (400, 401, 403, 404, 500, 503)
#: A write through the session actor: a concurrent one (lease), a bound (mailbox, memory).
_ACTOR = (409, 429)
_SESSION = pingone_wire.SessionOut
_PINGONE: dict[tuple[str, str], PingOneOperation] = {
    ("POST", "/sessions"): PingOneOperation(
        operation_id="PingOne_CreateSession",
        summary="Create a session",
        status=201,
        request=pingone_wire.SessionIn,
        response=_SESSION,
        errors=(*_ACTOR, 413),
    ),
    ("GET", "/sessions/me"): PingOneOperation(
        operation_id="PingOne_ReadSessionMe",
        summary="Read the session of the ST cookie (a read is activity)",
        status=200,
        response=_SESSION,
        cookie=True,
        errors=_ACTOR,
    ),
    ("PUT", "/sessions/me"): PingOneOperation(
        operation_id="PingOne_UpdateSessionMe",
        summary="Replace the session of the ST cookie",
        status=200,
        request=pingone_wire.SessionIn,
        response=_SESSION,
        cookie=True,
        errors=(*_ACTOR, 413),
    ),
    ("DELETE", "/sessions/me"): PingOneOperation(
        operation_id="PingOne_DeleteSessionMe",
        summary="Delete the session of the ST cookie",
        status=204,
        cookie=True,
        errors=_ACTOR,
    ),
    ("POST", "/sessions/me"): PingOneOperation(
        operation_id="PingOne_SignOffSessionMe",
        summary="Sign off: clear every factor of the ST cookie's session but its user",
        status=204,
        cookie=True,
        logout=True,
        errors=(*_ACTOR, 415),
    ),
    ("GET", "/sessions/{sessionId}"): PingOneOperation(
        operation_id="PingOne_ReadSession",
        summary="Read an unexpired session",
        status=200,
        response=_SESSION,
    ),
    ("GET", "/users/{userId}/sessions"): PingOneOperation(
        operation_id="PingOne_ReadUserSessions",
        summary="Read a user's sessions, newest first, expired ones included",
        status=200,
        response=pingone_wire.SessionList,
    ),
    ("DELETE", "/users/{userId}/sessions"): PingOneOperation(
        operation_id="PingOne_DeleteUserSessions",
        summary="Sign a user out everywhere, or everywhere but one session",
        status=204,
        query=("except",),
        errors=_ACTOR,
    ),
    ("GET", "/users/{userId}/sessions/{sessionId}"): PingOneOperation(
        operation_id="PingOne_ReadUserSession",
        summary="Read a session of a user, expired or not",
        status=200,
        response=_SESSION,
    ),
    ("DELETE", "/users/{userId}/sessions/{sessionId}"): PingOneOperation(
        operation_id="PingOne_DeleteUserSession",
        summary="Delete a session of a user",
        status=204,
        errors=_ACTOR,
    ),
}
_PINGONE_REASONS = {
    **_REASONS,
    400: "invalid request (bad JSON, a field out of its bounds, no such user, no ST cookie) "
    "or one the session's state forbids",
    404: "another environment than this instance's, or no such session or user",
    415: f"the Content-Type is not {pingone_wire.LOGOUT_CONTENT_TYPE}",
}
_PINGONE_PARAMS: dict[str, dict[str, Any]] = {
    "envId": {"description": "the environment: this instance's id (any other is a 404)"},
    "sessionId": {"description": "the session's id"},
    "userId": {"description": "the user's id"},
}
_ST_COOKIE = {
    "name": "ST",
    "in": "cookie",
    "required": True,
    "description": "the session's token, as its create or update gave it (``token``)",
    "schema": {
        "type": "string",
        "minLength": pingone_wire.MIN_TOKEN_CHARS,
        "maxLength": pingone_wire.MAX_TOKEN_CHARS,
    },
}
_QUERY = {
    "except": {
        "name": "except",
        "in": "query",
        "required": False,
        "description": "the id of a session of the user to keep (empty: none)",
        "schema": {"type": "string"},
    }
}
#: What a create links to, for clients and the fuzz test's stateful phase.
_PINGONE_LINKS = {
    "PingOne_CreateSession": {
        "PingOne_ReadSession": {
            "operationId": "PingOne_ReadSession",
            "parameters": {"envId": "$request.path.envId", "sessionId": "$response.body#/id"},
        }
    }
}


def pingone_operations() -> list[tuple[str, str, PingOneOperation]]:
    """(method, path, operation) of each PingOne route; one left undescribed is an error."""
    found = []
    for method, path, _handler in pingone.ROUTES:
        op = _PINGONE.get((method, path))
        if op is None:
            raise TypeError(f"the OpenAPI document does not describe {method} {path}")
        found.append((method.lower(), pingone.ENVIRONMENT + path, op))
    return found


def _literals(path: str, name: str) -> list[str]:
    """The literal segments of other PingOne routes that parameter ``name`` would match.

    ``GET /sessions/{sessionId}`` with ``me`` is ``GET /sessions/me``, another operation.
    """
    parts = path.split("/")
    at = parts.index(f"{{{name}}}")
    found: list[str] = []
    for _method, other, _handler in pingone.ROUTES:
        others = (pingone.ENVIRONMENT + other).split("/")
        if len(others) != len(parts) or others[at].startswith("{") or others[at] in found:
            continue
        if others[:at] + others[at + 1 :] == parts[:at] + parts[at + 1 :]:
            found.append(others[at])
    return found


def _path_parameter(path: str, name: str) -> dict[str, Any]:
    """Never empty; another route's literal is carved out (``/sessions/me`` is not an id)."""
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    literals = _literals(path, name)
    if literals:
        schema["not"] = {"enum": literals}
    return {"name": name, "in": "path", "required": True, **_PINGONE_PARAMS[name], "schema": schema}


def _pingone_parameters(path: str, op: PingOneOperation) -> list[dict[str, Any]]:
    params = [_path_parameter(path, name) for name in re.findall(r"\{(\w+)\}", path)]
    if op.cookie:
        params.append(_ST_COOKIE)
    params.extend(_QUERY[name] for name in op.query)
    return params


def _pingone_errors(op: PingOneOperation) -> tuple[int, ...]:
    return tuple(sorted({*_PINGONE_ALWAYS, *op.errors}))


def _pingone_responses(op: PingOneOperation) -> dict[str, Any]:
    """The success (a HAL resource, or no content) and PingOne's error body for the rest."""
    success: dict[str, Any] = {"description": "success" if op.response else "no content"}
    if op.response is not None:
        success["content"] = {HAL: {"schema": _ref(op.response)}}
    links = _PINGONE_LINKS.get(op.operation_id)
    if links:
        success["links"] = links
    responses: dict[str, Any] = {str(op.status): success}
    for status in _pingone_errors(op):
        response: dict[str, Any] = {"description": _PINGONE_REASONS[status], **_json(PingOneError)}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        if status == 400 and op.query:
            # a request line over 8190 bytes is refused by the HTTP parser, in plain text
            response["content"] = {**response["content"], "text/plain": {"schema": _TEXT}}
        responses[str(status)] = response
    return responses


def _pingone_body(op: PingOneOperation) -> dict[str, Any] | None:
    if op.logout:
        return {
            "required": True,
            "description": "empty: the content type alone asks for the sign-off",
            "content": {pingone_wire.LOGOUT_CONTENT_TYPE: {}},
        }
    if op.request is None:
        return None
    return {"required": True, **_json(op.request)}


def _pingone_doc(path: str, op: PingOneOperation) -> dict[str, Any]:
    """One operation object, tagged so that the PingOne operations group apart."""
    doc: dict[str, Any] = {
        "tags": [PINGONE_TAG],
        "summary": op.summary,
        "operationId": op.operation_id,
        "parameters": _pingone_parameters(path, op),
        "responses": _pingone_responses(op),
    }
    body = _pingone_body(op)
    if body is not None:
        doc["requestBody"] = body
    doc["security"] = [{"bearer": []}]
    return doc


def _code_point(code: int) -> str:
    """A class member every engine reads alike: a ``u`` escape in the BMP, else the character."""
    return f"\\u{code:04x}" if code < 0x10000 else chr(code)


def _printable(code: int) -> bool:
    return not 0xD800 <= code <= 0xDFFF and chr(code).isprintable()


@cache
def printable_pattern() -> str:
    """``str.isprintable``, which the facade asks of a token and a user agent, as a regex.

    Built from this Python's own Unicode tables, so it cannot drift from the check. A class of
    what is allowed (the complement of one trips regex engines at the surrogates, which no
    JSON text past the decoder holds and which are left out).
    """
    allowed, code = [], 0
    for printable, run in itertools.groupby(range(0x110000), key=_printable):
        count = sum(1 for _ in run)
        if printable:
            last = code + count - 1
            allowed.append(_code_point(code) + (f"-{_code_point(last)}" if last > code else ""))
        code += count
    return f"^[{''.join(allowed)}]*$"


_TIMESTAMP = {"pattern": session_wire.TIMESTAMP_PATTERN, "format": "date-time"}
_DATE_TIME = {"format": "date-time"}
_PRINTABLE = {"allOf": [{"$ref": "#/components/schemas/PrintableText"}]}
_IP = {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
_PINGONE_REQUEST_RULES: dict[str, dict[str, Any]] = {
    # what ``pingone_wire.validate`` checks after decoding; a keyword applies to its own type
    "SessionIn": {
        "properties": {
            "activeAt": _TIMESTAMP,
            "userAgent": {"minLength": 1, "maxLength": MAX_USER_AGENT_CHARS, **_PRINTABLE},
            "idleTimeoutInMinutes": {
                "minimum": 1,
                "maximum": MAX_IDLE_TIMEOUT_MS // _MINUTE_MS,
                "pattern": padded_at_most(MAX_IDLE_TIMEOUT_MS // _MINUTE_MS, _MINUTES_DIGITS),
                "examples": ["144000", 30],
            },
            "token": {
                "minLength": pingone_wire.MIN_TOKEN_CHARS,
                "maxLength": pingone_wire.MAX_TOKEN_CHARS,
                **_PRINTABLE,
            },
        },
        # ``lastSignOn`` is read only for a session with a user (an anonymous one ignores it)
        "if": {"required": ["user"], "properties": {"user": {"type": "object"}}},
        "then": {
            "properties": {
                "lastSignOn": {
                    "properties": {
                        "remoteIp": _IP,
                        "withAuthenticator": {
                            "propertyNames": {"minLength": 1},
                            "additionalProperties": {"properties": {"at": _TIMESTAMP}},
                        },
                    }
                }
            }
        },
    },
}
_PINGONE_RESPONSE_RULES: dict[str, dict[str, Any]] = {
    "SessionOut": {"properties": dict.fromkeys(("createdAt", "activeAt", "expiresAt"), _DATE_TIME)},
    "LocationOut": {"properties": {"at": _DATE_TIME}},
    "MethodOut": {"properties": {"at": _DATE_TIME}},
    "LastSignOnOut": {"properties": {"at": _DATE_TIME}},
}


def _pingone_schemas(kinds: set[type], rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """As ``_schemas``, but with the facade's rules and its own (not protojson's) leniency."""
    _, components = msgspec.json.schema_components(
        sorted(kinds, key=lambda k: k.__name__), ref_template="#/components/schemas/{name}"
    )
    return {name: _merge(schema, rules.get(name, {})) for name, schema in components.items()}


def _pingone_components(ops: list[tuple[str, str, PingOneOperation]]) -> dict[str, Any]:
    requests = _pingone_schemas(
        {op.request for _, _, op in ops if op.request is not None}, _PINGONE_REQUEST_RULES
    )
    requests["PrintableText"] = {
        "description": "printable characters only (Python's str.isprintable)",
        "pattern": printable_pattern(),
    }
    responses = _pingone_schemas(
        {PingOneError} | {op.response for _, _, op in ops if op.response is not None},
        _PINGONE_RESPONSE_RULES,
    )
    return _joined(responses, requests)


def _joined(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Both sets of components; one name for two different schemas is an error."""
    clashes = {name for name in first.keys() & second.keys() if first[name] != second[name]}
    if clashes:
        raise TypeError(f"two schemas under one name: {sorted(clashes)}")
    return {**first, **second}
