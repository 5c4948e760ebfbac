"""The wire types of the User API's second-factor RPCs (ZITADEL's messages).

Same conventions as ``app.services.user_wire``: camelCase msgspec Structs, ``userId`` taken
from the REST path, and the published schema generated from them. Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from actors.user_factors import MAX_RECOVERY_CODES
from app.services.session_wire import Details, ListDetails, Wire
from app.services.user_wire import UserIdRequest

#: ``actors.user_factors.verify_totp_registration``: an authenticator's code
TotpCode = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
#: ``actors.user_factors.check_recovery_code_count``: 1..10 (else 400 COMMAND-7c0nx)
RecoveryCount = Annotated[
    int, msgspec.Meta(extra_json_schema={"minimum": 1, "maximum": MAX_RECOVERY_CODES})
]


# -- requests ---------------------------------------------------------------------------------
class RegisterTOTPRequest(UserIdRequest, kw_only=True):
    pass


class VerifyTOTPRegistrationRequest(UserIdRequest, kw_only=True):
    code: TotpCode


class RemoveTOTPRequest(UserIdRequest, kw_only=True):
    pass


class AddOTPSMSRequest(UserIdRequest, kw_only=True):
    pass


class RemoveOTPSMSRequest(UserIdRequest, kw_only=True):
    pass


class AddOTPEmailRequest(UserIdRequest, kw_only=True):
    pass


class RemoveOTPEmailRequest(UserIdRequest, kw_only=True):
    pass


class GenerateRecoveryCodesRequest(UserIdRequest, kw_only=True):
    #: proto3 has no required scalars: an absent count is 0, refused by the rule (400)
    schema_rules: ClassVar[dict[str, Any]] = {"required": ["count"]}
    count: RecoveryCount = 0


class RemoveRecoveryCodesRequest(UserIdRequest, kw_only=True):
    pass


class ListAuthenticationMethodTypesRequest(UserIdRequest, kw_only=True):
    pass


# -- responses --------------------------------------------------------------------------------
class RegisterTOTPResponse(Wire):
    details: Details
    #: ``otpauth://totp/<issuer>:<login name>?secret=...&issuer=...``
    uri: str
    #: the base32 seed, shown in this response only
    secret: str


class GenerateRecoveryCodesResponse(Wire):
    details: Details
    #: the plain codes, shown in this response only (only their keyed hashes are stored)
    recovery_codes: list[str]


class ListAuthenticationMethodTypesResponse(Wire):
    details: ListDetails
    auth_method_types: tuple[str, ...] = ()
