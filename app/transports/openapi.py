"""GET /openapi.json: an OpenAPI 3.1 document generated from the msgspec wire types.

One operation per REST route (``app.transports.rest.ROUTES``); the schemas come from
``msgspec.json.schema_components`` (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so the
document cannot drift from what the decoders accept. What a decoder cannot say (one-ofs,
enums given by name or number, the shape of an imported hash) the wire type states in its
``schema_rules`` class variable, next to the code that enforces it, and it is merged in here.

Every operation lists exactly the statuses it can answer (``_ERRORS``), each with the error
body grpc-gateway writes; ``tests/test_openapi_fuzz.py`` holds the server to the document
with schemathesis.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import msgspec
from aiohttp import web

from app.services import factor_wire, passkey_wire, session_wire, user_wire
from app.transports.rest import ROUTES, Route, shadowed, snake


class Parameter(msgspec.Struct, frozen=True):
    name: str
    schema: dict[str, Any]


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
    "CreateSession": (403, 404, 429, 501),
    "SetSession": (403, 404, 409, 429, 501, 504),
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


def _responses(op: Operation, ops: list[Operation]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success", **_json(op.response)}
    links = _links(op, ops)
    if links:
        success["links"] = links
    responses: dict[str, Any] = {str(op.status): success}
    for status in op.errors:
        body = _json(Probe if op.public else ErrorBody)
        response: dict[str, Any] = {"description": _REASONS[status], **body}
        if status in (429, 503):
            response["headers"] = _RETRY_AFTER
        responses[str(status)] = response
    return responses


def _operation_doc(op: Operation, ops: list[Operation]) -> dict[str, Any]:
    params = [
        {"name": p.name, "in": "path", "required": True, "schema": p.schema} for p in op.path_params
    ] + [{"name": p.name, "in": "query", "required": False, "schema": p.schema} for p in op.query]
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
_WIRE_MODULES = (session_wire, user_wire, factor_wire, passkey_wire)


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
    for at, digit in enumerate(digits):  # same length: a smaller digit here, anything after
        low = "1" if at == 0 else "0"
        if digit > low:
            rest = len(digits) - at - 1
            below = f"[{low}-{int(digit) - 1}]"
            options.append(digits[:at] + below + (f"[0-9]{{{rest}}}" if rest else ""))
    if limit > 0:
        options.append(digits)
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
            "schemas": _components(ops),
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
