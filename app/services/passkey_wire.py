"""The wire types of the User API's passkey and U2F RPCs (ZITADEL's messages).

Same conventions as ``app.services.user_wire``: camelCase msgspec Structs, ``userId`` and the
token id taken from the REST path. ``publicKeyCredential`` is the browser's
``PublicKeyCredential.toJSON()``; the creation options are the JSON the browser's
``PublicKeyCredential.parseCreationOptionsFromJSON`` takes (under ``publicKey``). Pure.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from app.services.session_wire import (
    Details,
    ListDetails,
    OptStr200,
    ReturnCodeIn,
    Str200,
    Wire,
    at_most_one,
    enum_of,
)
from app.services.user_wire import UserIdRequest

AUTHENTICATORS = (
    "PASSKEY_AUTHENTICATOR_UNSPECIFIED",
    "PASSKEY_AUTHENTICATOR_PLATFORM",
    "PASSKEY_AUTHENTICATOR_CROSS_PLATFORM",
)
#: The registration response, as ``navigator.credentials.create`` gives it.
Credential = Annotated[
    dict[str, Any],
    msgspec.Meta(description="PublicKeyCredential.toJSON() of navigator.credentials.create"),
]


class PasskeyRegistrationCode(Wire):
    id: Str200
    code: Str200


# -- requests ---------------------------------------------------------------------------------
class RegisterPasskeyRequest(UserIdRequest, kw_only=True):
    #: a code of CreatePasskeyRegistrationLink: then no session or permission is needed
    code: PasskeyRegistrationCode | None = None
    authenticator: Annotated[str | int, msgspec.Meta(extra_json_schema=enum_of(AUTHENTICATORS))] = 0
    #: the relying-party id; default: the host of the first configured WebAuthn origin
    domain: OptStr200 | None = None


class VerifyPasskeyRegistrationRequest(UserIdRequest, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("user_id", "passkey_id")
    passkey_id: Str200 = ""
    public_key_credential: Credential
    passkey_name: Str200


class ListPasskeysRequest(UserIdRequest, kw_only=True):
    pass


class RemovePasskeyRequest(UserIdRequest, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("user_id", "passkey_id")
    passkey_id: Str200 = ""


class SendPasskeyRegistrationLink(Wire):
    #: placeholders ``{{.UserID}}``, ``{{.OrgID}}``, ``{{.CodeID}}``, ``{{.Code}}``, ...
    url_template: OptStr200 | None = None


class CreatePasskeyRegistrationLinkRequest(UserIdRequest, kw_only=True):
    schema_rules: ClassVar[dict[str, Any]] = at_most_one("sendLink", "returnCode")
    send_link: SendPasskeyRegistrationLink | None = None
    return_code: ReturnCodeIn | None = None


class RegisterU2FRequest(UserIdRequest, kw_only=True):
    domain: OptStr200 | None = None


class VerifyU2FRegistrationRequest(UserIdRequest, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("user_id", "u2f_id")
    u2f_id: Str200 = ""
    public_key_credential: Credential
    token_name: Str200


class RemoveU2FRequest(UserIdRequest, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("user_id", "u2f_id")
    u2f_id: Str200 = ""


# -- responses --------------------------------------------------------------------------------
class RegisterPasskeyResponse(Wire):
    details: Details
    passkey_id: str
    public_key_credential_creation_options: dict[str, Any]


class RegisterU2FResponse(Wire):
    details: Details
    u2f_id: str
    public_key_credential_creation_options: dict[str, Any]


class Passkey(Wire):
    id: str
    #: AUTH_FACTOR_STATE_READY once verified, else AUTH_FACTOR_STATE_NOT_READY
    state: str
    name: str = ""


class ListPasskeysResponse(Wire):
    details: ListDetails
    result: tuple[Passkey, ...] = ()


class CreatePasskeyRegistrationLinkResponse(Wire):
    details: Details
    #: with ``returnCode`` only; otherwise the code is sent by e-mail
    code: PasskeyRegistrationCode | None = None
