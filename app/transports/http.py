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
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

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


#: Deepest nesting accepted by default (SESSIOND_MAX_JSON_DEPTH); the service's own
#: messages nest at most 6 deep, free-form fields (WebAuthn data) a little more.
MAX_DEPTH = 64
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def too_deep(raw: bytes, limit: int) -> bool:
    """True if ``raw`` nests arrays/objects deeper than ``limit`` (strings are skipped).

    Deep nesting would exhaust the decoders' recursion (a 500, or a dead actor), so it is
    refused before decoding. Counting brackets is C-fast; only a body with more brackets
    than ``limit`` is walked, and only at its structural characters.
    """
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    depth, in_string, escaped_at = 0, False, -2
    for match in _STRUCTURE.finditer(raw):
        char, at = match.group(), match.start()
        if in_string:
            if char == b"\\":
                # an escaped backslash escapes nothing after it
                escaped_at = at if escaped_at != at - 1 else -2
            elif char == b'"' and escaped_at != at - 1:
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in (b"{", b"["):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def decode(raw: bytes, kind: type[T], max_depth: int = MAX_DEPTH) -> T:
    """Bytes of a JSON object → ``kind``; any problem is a 400 with a plain message."""
    if not raw.strip():
        raw = b"{}"
    if too_deep(raw, max_depth):
        raise ValidationFailed(f"invalid JSON: nested deeper than {max_depth} levels")
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


async def read_body(request: web.Request) -> bytes:
    """The request body; one that cannot be decoded (bad gzip, a broken chunk) is a 400.

    The size limit is aiohttp's (``client_max_size``, 413). A small body usually arrived
    with the headers and is complete in the buffer already: it is taken at once, without
    ``read()``'s awaits and buffer resizing (a tenth of a small RPC's cost).
    """
    try:
        content = request.content
        if content.is_eof():
            body = content.read_nowait()
            if len(body) > request.client_max_size:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=request.client_max_size, actual_size=len(body)
                )
            return body
        return await request.read()
    except (BadHttpMessage, ClientPayloadError, RequestPayloadError) as exc:
        raise ValidationFailed(f"invalid request body: {type(exc).__name__}") from None


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
