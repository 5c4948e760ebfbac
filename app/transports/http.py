"""Request decoding and response encoding shared by both transports (REST and Connect).

ZITADEL's gateway accepts both the JSON (camelCase) and the proto (snake_case) field names and
discards unknown fields. We decode camelCase straight into typed msgspec Structs; only a body
that contains a ``_`` takes the slower path that renames snake_case keys first. Keys *inside*
free-form maps (metadata, headers, WebAuthn data) are data and are never renamed.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from actors.errors import Unauthenticated, ValidationFailed
from actors.permissions import Caller

T = TypeVar("T")

#: Fields whose values are maps keyed by client data, not by field names.
OPAQUE_FIELDS = frozenset(
    {
        "metadata",
        "header",
        "credentialAssertionData",
        "publicKeyCredential",
        "rawInformation",
    }
)
CALLER = web.RequestKey("CALLER", Caller)
_SNAKE = re.compile(r"_([a-z0-9])")
_ENCODER = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def _camelize(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = camel(key) if isinstance(key, str) else key
            out[name] = item if name in OPAQUE_FIELDS else _camelize(item)
        return out
    if isinstance(value, list):
        return [_camelize(item) for item in value]
    return value


def _decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = msgspec.json.Decoder(kind, strict=False)
        _decoders[kind] = decoder
    return decoder


def decode(raw: bytes, kind: type[T]) -> T:
    """Bytes of a JSON object → ``kind``; any problem is a 400 with a plain message."""
    if not raw.strip():
        raw = b"{}"
    try:
        if b"_" not in raw:
            return _decoder(kind).decode(raw)
        generic = msgspec.json.decode(raw)
        if not isinstance(generic, dict):
            raise ValidationFailed("invalid request: the body must be a JSON object")
        return msgspec.convert(_camelize(generic), kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"invalid JSON: {exc}") from None


def require_fields(message: object) -> None:
    """The request's ``required`` ids (path parameters in REST) must be set.

    proto3 has no "missing": an absent id is empty, and ZITADEL's validation refuses it.
    """
    for name in getattr(type(message), "required", ()):
        if not getattr(message, name):
            go_name = "".join(part.capitalize() for part in name.split("_"))
            raise ValidationFailed(
                f"invalid {type(message).__name__}.{go_name}: value length must be between"
                " 1 and 200 runes, inclusive"
            )


def respond(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=_ENCODER.encode(payload), status=status, content_type="application/json"
    )


def caller(request: web.Request) -> Caller:
    """The authenticated caller, set by the auth middleware."""
    found: Caller | None = request.get(CALLER)
    if found is None:
        raise Unauthenticated("AUTH-B7s2k", "Errors.Token.Invalid")
    return found
