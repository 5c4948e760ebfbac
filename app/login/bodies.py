"""The JSON bodies the page posts, decoded once at the boundary with size limits.

Credentials from ``navigator.credentials`` are passed on as objects: the API validates
them (and names what is wrong); here they are only bounded in size by the app's body limit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Text200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class Empty(Body):
    pass


class StartIn(Body):
    login_name: Text200


class PasswordIn(Body):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ChallengeIn(Body):
    #: A passkey requires user verification; a U2F security key is a second factor only.
    kind: Literal["passkey", "u2f"] = "passkey"


class CredentialIn(Body):
    credential: dict[str, Any]


class CodeIn(Body):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


#: An OTP sent by SMS or by e-mail (the API's check and challenge names).
OtpChannel = Literal["otpSms", "otpEmail"]


class OtpSendIn(Body):
    channel: OtpChannel


class OtpCheckIn(Body):
    channel: OtpChannel
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class PasskeyVerifyIn(Body):
    passkey_id: Text200
    credential: dict[str, Any]
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
