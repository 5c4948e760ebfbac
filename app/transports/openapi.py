"""GET /openapi.json: an OpenAPI 3.1 document generated from the msgspec wire types.

One operation per REST route (``app.transports.rest.ROUTES``); the schemas come from
``msgspec.json.schema_components`` (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), so the
document cannot drift from what the decoders accept.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from app.transports.http import respond
from app.transports.rest import ROUTES


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    summary: str
    request: type | None = None
    response: type | None = None
    status: int = 200
    public: bool = False
    query: tuple[str, ...] = ()


#: The routes outside the API proper: probes and this document.
PUBLIC: list[Operation] = [
    Operation(
        method="get", path="/healthz", summary="Liveness: the process serves HTTP", public=True
    ),
    Operation(
        method="get", path="/readyz", summary="Readiness: Redis answers (503 when not)", public=True
    ),
    Operation(method="get", path="/openapi.json", summary="This document", public=True),
]


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
            query=route.query,
        )
        for route in ROUTES
    ]
    return api + PUBLIC


class ErrorDetail(msgspec.Struct, rename={"type_": "@type"}, omit_defaults=True):
    type_: str = ""
    id: str = ""
    message: str = ""


class ErrorBody(msgspec.Struct):
    code: int
    message: str
    details: list[ErrorDetail] = []


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }
        for n in names
    ]


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def _json(kind: type | None) -> dict[str, Any]:
    schema = _ref(kind) if kind is not None else {"type": "object"}
    return {"content": {"application/json": {"schema": schema}}}


def _operation_doc(op: Operation) -> dict[str, Any]:
    params = _path_params(op.path) + [
        {"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
        for q in op.query
    ]
    error = {"description": "error", **_json(ErrorBody)}
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
        "responses": {
            str(op.status): {"description": "success", **_json(op.response)},
            "400": error,
            "401": error,
            "403": error,
            "404": error,
            "409": error,
            "413": error,
            "429": error,
            "500": error,
            "503": error,
        },
    }
    if params:
        doc["parameters"] = params
    if op.request is not None:
        doc["requestBody"] = {"required": False, **_json(op.request)}
    if not op.public:
        doc["security"] = [{"bearer": []}]
    return doc


def document() -> dict[str, Any]:
    ops = operations()
    kinds = {ErrorBody} | {k for op in ops for k in (op.request, op.response) if k is not None}
    _, components = msgspec.json.schema_components(
        sorted(kinds, key=lambda k: k.__name__), ref_template="#/components/schemas/{name}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation_doc(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sessiond",
            "version": "0.1.0",
            "description": "Authentication sessions, wire-compatible with ZITADEL's "
            "Session API v2 (also served under /v2beta and /v2alpha). The same RPCs are "
            "served over the Connect protocol at /<package>.<Service>/<Method>.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def openapi_json(_request: web.Request) -> web.Response:
    return respond(document())


def setup_openapi_route(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
