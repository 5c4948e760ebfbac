"""Error bodies: one ``ServiceError``, rendered the way each wire protocol expects.

REST (grpc-gateway, as ZITADEL's REST API): ``{"code": <gRPC code>, "message": "... (ID)",
"details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id", "message"}]}`` with
grpc-gateway's status table.

Connect (https://connectrpc.com/docs/protocol#error-end-stream): ``{"code": "not_found",
"message": "...", "details": [{"type": "zitadel.v1.ErrorDetail", "value": <base64 protobuf>,
"debug": {...}}]}``. connect-es drops an error whose detail lacks ``type`` or ``value``, so
the detail is encoded with the protobuf runtime from ZITADEL's ``zitadel/message.proto``
messages (built from a descriptor here: no generated code, no protoc).
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from actors.errors import HTTP_STATUS, ServiceError

TYPE_PREFIX = "type.googleapis.com/"
PACKAGE = "zitadel.v1"

#: gRPC code → Connect's code name (the HTTP status is the same table as REST's).
CONNECT_CODES: dict[int, str] = {
    1: "canceled",
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    6: "already_exists",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    10: "aborted",
    11: "out_of_range",
    12: "unimplemented",
    13: "internal",
    14: "unavailable",
    15: "data_loss",
    16: "unauthenticated",
}


def _detail_messages() -> dict[str, type[Message]]:
    """``zitadel.v1.ErrorDetail`` and ``CredentialsCheckError`` as protobuf classes."""
    string, int32 = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    )
    fields = {
        "ErrorDetail": [("id", 1, string), ("message", 2, string)],
        "CredentialsCheckError": [
            ("id", 1, string),
            ("message", 2, string),
            ("failed_attempts", 3, int32),
        ],
    }
    proto = descriptor_pb2.FileDescriptorProto(
        name="zitadel/message.proto", package=PACKAGE, syntax="proto3"
    )
    for name, message_fields in fields.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind in message_fields:
            message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in fields
    }


_MESSAGES = _detail_messages()


def rest_body(exc: ServiceError) -> dict[str, Any]:
    """google.rpc.Status as grpc-gateway writes it."""
    detail = exc.detail()
    details = [] if detail is None else [{"@type": TYPE_PREFIX + _type(exc), **detail}]
    return {"code": exc.code, "message": exc.message, "details": details}


def connect_body(exc: ServiceError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": CONNECT_CODES.get(exc.code, "unknown"), "message": exc.message}
    detail = exc.detail()
    if detail is not None:
        body["details"] = [
            {"type": _type(exc), "value": _encode(exc.detail_type, detail), "debug": detail}
        ]
    return body


def connect_status(exc: ServiceError) -> int:
    return HTTP_STATUS.get(exc.code, 500)


def _type(exc: ServiceError) -> str:
    return f"{PACKAGE}.{exc.detail_type}"


def _encode(detail_type: str, detail: dict[str, Any]) -> str:
    """The detail as protobuf bytes, base64 without padding (as connect-go writes it)."""
    message = _MESSAGES[detail_type]()
    message.id = detail.get("id", "")  # type: ignore[attr-defined]
    message.message = detail.get("message", "")  # type: ignore[attr-defined]
    if "failedAttempts" in detail:
        message.failed_attempts = int(detail["failedAttempts"])  # type: ignore[attr-defined]
    return base64.b64encode(message.SerializeToString()).decode().rstrip("=")


# -- PingOne ----------------------------------------------------------------------------------
#: gRPC code → PingOne's HTTP status, top-level code and its message.
PINGONE_CODES: dict[int, tuple[int, str, str]] = {
    3: (400, "INVALID_DATA", "One or more validation errors were in the request."),
    4: (504, "REQUEST_FAILED", "The request took too long; retry it."),
    5: (404, "NOT_FOUND", "The requested resource was not found."),
    6: (400, "INVALID_DATA", "One or more validation errors were in the request."),
    7: (403, "ACCESS_FAILED", "The request is not allowed with these credentials."),
    8: (429, "REQUEST_LIMITED", "Too many requests; retry later."),
    9: (400, "REQUEST_FAILED", "The request could not be completed in the resource's state."),
    10: (409, "REQUEST_FAILED", "The request conflicted with a concurrent one; retry it."),
    12: (501, "NOT_IMPLEMENTED", "This operation is not supported."),
    14: (503, "SERVICE_UNAVAILABLE", "The service is unavailable; retry later."),
    16: (401, "ACCESS_FAILED", "The request could not be authenticated."),
}
_PINGONE_UNEXPECTED = (500, "UNEXPECTED_ERROR", "An unexpected error occurred.")
#: Writes to a session that is gone: PingOne says the session is not found.
_SESSION_GONE = frozenset({"COMMAND-Flk38", "COMMAND-Hewfq", "COMMAND-Hkl3d"})
#: Detail codes by gRPC code, when the error names no field of its own.
_PINGONE_DETAIL = {3: "INVALID_VALUE", 6: "UNIQUENESS_VIOLATION"}
#: aiohttp's own refusals on PingOne routes: status → (code, message).
PINGONE_ROUTING: dict[int, tuple[str, str]] = {
    404: ("NOT_FOUND", "The requested resource was not found."),
    405: ("INVALID_REQUEST", "The method is not supported by this resource."),
    413: ("INVALID_REQUEST", "The request body is too large."),
    415: ("INVALID_REQUEST", "The content type is not supported by this resource."),
    400: ("INVALID_REQUEST", "The request could not be read."),
}


def pingone_status(exc: ServiceError) -> int:
    if exc.error_id in _SESSION_GONE:
        return 404
    return PINGONE_CODES.get(exc.code, _PINGONE_UNEXPECTED)[0]


def pingone_body(exc: ServiceError, error_id: str) -> dict[str, Any]:
    """PingOne's error: ``{id, code, message, details[{code, target?, message}]}``."""
    if exc.error_id in _SESSION_GONE:
        _, code, message = PINGONE_CODES[5]
    else:
        _, code, message = PINGONE_CODES.get(exc.code, _PINGONE_UNEXPECTED)
    body: dict[str, Any] = {"id": error_id, "code": code, "message": message}
    target = getattr(exc, "target", None)
    detail_code = getattr(exc, "detail_code", None) or _PINGONE_DETAIL.get(exc.code)
    if detail_code is not None:
        detail = {"code": detail_code, "message": exc.message}
        if target:
            detail["target"] = target
        body["details"] = [detail]
    return body


def pingone_routing_body(status: int, error_id: str, reason: str) -> dict[str, Any]:
    code, message = PINGONE_ROUTING.get(status, ("UNEXPECTED_ERROR", reason))
    return {"id": error_id, "code": code, "message": message}
