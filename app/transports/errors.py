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
