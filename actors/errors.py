"""Every error the service reports, as ZITADEL reports it.

A ZITADEL error carries a kind (which *is* a gRPC status code), a stable id such as
``COMMAND-3M0fs`` and an i18n key such as ``Errors.User.Password.Invalid``. Clients branch on
the HTTP status and the id, so both are part of the wire contract. The HTTP status is never
chosen per class: it is derived from the gRPC code by grpc-gateway's table (``HTTP_STATUS``).

Tree::

    ServiceError                 gRPC code                HTTP
    ├── InvalidArgument          3  INVALID_ARGUMENT      400
    │   └── ValidationFailed         (plain message, no details: bad JSON, schema)
    ├── NotFound                 5  NOT_FOUND             404
    ├── AlreadyExists            6  ALREADY_EXISTS        409
    ├── PermissionDenied         7  PERMISSION_DENIED     403
    ├── ResourceExhausted        8  RESOURCE_EXHAUSTED    429  (MailboxFull)
    ├── FailedPrecondition       9  FAILED_PRECONDITION   400
    ├── Aborted                  10 ABORTED               409  (LeaseLost: lease held elsewhere)
    ├── Unimplemented            12 UNIMPLEMENTED         501
    ├── Internal                 13 INTERNAL              500
    ├── Unavailable              14 UNAVAILABLE           503  (ActorStopped: safe to retry)
    ├── DeadlineExceeded         4  DEADLINE_EXCEEDED     504
    └── Unauthenticated          16 UNAUTHENTICATED       401

This module imports nothing from the project, so every layer can raise these.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: grpc-gateway's HTTPStatusFromCode. FAILED_PRECONDITION is 400, not 412, on purpose.
HTTP_STATUS: dict[int, int] = {
    0: 200,
    1: 499,
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 400,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}

#: English texts of the i18n keys we emit; a key without text is shown raw, as ZITADEL does.
MESSAGES: dict[str, str] = {
    "Errors.User.NotFound": "User could not be found",
    "Errors.User.Password.Invalid": "Password is invalid",
    "Errors.User.Password.NotSet": "User has not set a password",
    "Errors.User.Locked": "User is locked",
    "Errors.User.UserIDMissing": "User ID missing",
    "Errors.User.AlreadyExists": "User already exists",
    "Errors.User.NotHuman": "The User is not a human",
    "Errors.User.NotMachine": "The User is not a machine",
    "Errors.User.AlreadyInactive": "User is already deactivated",
    "Errors.User.NotInactive": "User is not deactivated",
    "Errors.User.NotLocked": "User is not locked",
    "Errors.User.Code.Invalid": "Code is invalid",
    "Errors.User.Code.NotFound": "Code not found",
    "Errors.User.Code.Expired": "Code is expired",
    "Errors.User.Email.AlreadyVerified": "Email is already verified",
    "Errors.User.Phone.AlreadyVerified": "Phone is already verified",
    "Errors.User.Phone.NotFound": "Phone not found",
    "Errors.Org.NotFound": "Organisation not found",
    "Errors.Org.AlreadyExists": "Organisation already exists",
    "Errors.Session.NotExisting": "Session does not exist",
    "Errors.Session.Terminated": "Session already terminated",
    "Errors.Session.Expired": "Session has expired",
    "Errors.Session.PositiveLifetime": "Lifetime must be positive",
    "Errors.Session.LifetimeTooLong": "Lifetime would expire after year 9999",
    "Errors.Session.Metadata.TooMany": "Too many metadata keys on the session",
    "Errors.Session.Metadata.KeyTooLong": "Metadata key is too long",
    "Errors.Session.Metadata.ValueTooLarge": "Metadata value is too large",
    "Errors.Session.Metadata.TooLarge": "Session metadata is too large",
    "Errors.Session.UserAgent.TooLarge": "User agent headers are too large",
    "Errors.Session.Token.Invalid": "Session Token is invalid",
    "Errors.Session.Busy": "Session is being updated by another worker, retry",
    "Errors.Session.MailboxFull": "Too many concurrent updates of this session, retry",
    "Errors.Session.Unavailable": "Session actor stopped before handling the request, retry",
    "Errors.Session.Timeout": "The session update did not finish in time",
    "Errors.Request.Timeout": "The request did not finish before its deadline",
    "Errors.Method.NotSupported": "This method is not supported yet",
    "Errors.Session.NotSupported": "This check or challenge is not supported yet",
    "Errors.PermissionDenied": "No matching permissions found",
    "Errors.Token.Invalid": "Token is invalid",
    "Errors.Query.LimitExceeded": "Limit exceeded",
    "List.Query.Invalid": "Invalid query",
    "Errors.Internal": "Internal error",
    "Errors.Storage.Unavailable": "Storage is not reachable",
    "Errors.Storage.Full": "Storage is full: no more writes can be accepted right now",
    "Errors.Member.AlreadyExists": "Member already exists",
    "Errors.Member.InvalidRole": "Invalid role",
    "Errors.User.CantDeactivateInitial": "User with state initial can only be deleted",
    "Errors.User.ShouldBeActiveOrInitial": "User is not active or initial",
    "Errors.User.Email.NotFound": "Email not found",
    "Errors.User.Password.Busy": "Password check already in progress, retry",
    "Errors.User.RateLimited": "Too many credential checks, retry later",
    "Errors.User.Password.HashUnsupported": "Password hash algorithm is not supported",
    "Errors.User.ConcurrentUpdate": "The user was changed concurrently, retry",
    "Errors.User.Email.Invalid": "Email is invalid",
    "Errors.User.NotSupported": "This part of the request is not supported yet",
    "Errors.User.MFA.OTP.NotReady": "Multifactor OTP (OneTimePassword) isn't ready",
    "Errors.User.MFA.OTP.InvalidCode": "Invalid code",
    "Errors.User.MFA.OTP.Reused": "The code was already used",
    "Errors.User.MFA.OTP.Busy": "Second-factor check already in progress, retry",
    "Errors.User.MFA.OTP.AlreadyReady": "Multifactor OTP (OneTimePassword) is already set up",
    "Errors.Users.MFA.OTP.AlreadyReady": "Multifactor OTP (OneTimePassword) is already set up",
    "Errors.User.MFA.OTP.NotExisting": "Multifactor OTP (OneTimePassword) doesn't exist",
    "Errors.User.MFA.RecoveryCodes.InvalidCode": "Invalid recovery code provided",
    "Errors.User.MFA.RecoveryCodes.Locked": "User is locked",
    "Errors.User.RecoveryCodes.NotReady": "Recovery codes are not ready for use",
    "Errors.User.RecoveryCodes.NotAdded": "Recovery codes are not set up",
    "Errors.User.RecoveryCodes.Locked": "User is locked",
    "Errors.User.RecoveryCodes.CountInvalid": "Count of recovery codes must be between 1 and 10",
    "Errors.User.InvalidURLTemplate": "URL Template is invalid",
    "Errors.Session.WebAuthN.NoChallenge": "Session without WebAuthN challenge",
    "Errors.User.WebAuthN.NotFound": "WebAuthN Token not found",
    "Errors.User.WebAuthN.BeginLoginFailed": "WebAuthN begin login failed",
    "Errors.User.WebAuthN.ValidateLoginFailed": "Error on validate login credentials",
    "Errors.User.WebAuthN.CloneWarning": "Credential may be cloned",
    "Errors.User.WebAuthN.CreateCredentialFailed": "Error on create credential",
    "Errors.User.WebAuthN.AlreadyReady": "WebAuthN Token is already set up",
    "Errors.User.WebAuthN.AlreadyRegistered": "This credential is already registered",
    "Errors.User.WebAuthN.ChallengeExpired": "The registration expired or was used; start again",
    "Errors.User.WebAuthN.TooMany": "Too many WebAuthN tokens or open registrations",
    "Errors.User.WebAuthN.NoOrigins": "No WebAuthn origin is configured",
    "Errors.User.WebAuthN.RelyingPartyInvalid": (
        "The domain is not one of the configured WebAuthn origins or a parent of one"
    ),
    "Errors.Notification.ChannelNotConfigured": (
        "No delivery channel is configured for this message (SMTP or SMS webhook)"
    ),
}


class ServiceError(Exception):
    """Base of every error the API reports; carries the gRPC code, id and i18n key."""

    code: ClassVar[int] = 2
    #: Seconds a client should wait before retrying (``Retry-After``); None: do not say.
    default_retry_after_s: ClassVar[int | None] = None

    def __init__(
        self,
        error_id: str,
        key: str,
        *,
        extra: dict[str, Any] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        self.error_id = error_id
        self.key = key
        self.extra = extra or {}
        self.retry_after_s = (
            retry_after_s if retry_after_s is not None else self.default_retry_after_s
        )
        super().__init__(self.message)

    @property
    def text(self) -> str:
        return MESSAGES.get(self.key, self.key)

    @property
    def message(self) -> str:
        return f"{self.text} ({self.error_id})" if self.error_id else self.text

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def detail_type(self) -> str:
        """The ZITADEL message of the error detail (``zitadel.v1.<type>``)."""
        return "CredentialsCheckError" if "failedAttempts" in self.extra else "ErrorDetail"

    def detail(self) -> dict[str, Any] | None:
        """The detail's fields (``id``, ``message``, extras such as ``failedAttempts``).

        None for errors that carry no ZITADEL detail (validation failures). The transports
        wrap it in their own error body.
        """
        return {"id": self.error_id, "message": self.text, **self.extra}


class InvalidArgument(ServiceError):
    """Raised when the request itself is wrong (gRPC 3)."""

    code = 3


class ValidationFailed(InvalidArgument):
    """Raised for malformed bodies: a plain message and no details, like proto validation."""

    def __init__(self, message: str) -> None:
        self._plain = message
        super().__init__("", message)

    @property
    def message(self) -> str:
        return self._plain

    def detail(self) -> dict[str, Any] | None:
        return None


class NotFound(ServiceError):
    """Raised when the addressed resource does not exist (gRPC 5)."""

    code = 5


class AlreadyExists(ServiceError):
    """Raised when a unique resource would be created twice (gRPC 6)."""

    code = 6


class PermissionDenied(ServiceError):
    """Raised when the caller may not do this (gRPC 7)."""

    code = 7


class ResourceExhausted(ServiceError):
    """Raised when a bound is hit; the client should back off (gRPC 8)."""

    code = 8
    default_retry_after_s = 1


class FailedPrecondition(ServiceError):
    """Raised when the state of a resource forbids the operation (gRPC 9)."""

    code = 9


class Aborted(ServiceError):
    """Raised on a concurrency conflict; retrying is safe (gRPC 10)."""

    code = 10


class Unimplemented(ServiceError):
    """Raised for routes or methods we do not serve (gRPC 12)."""

    code = 12


class Internal(ServiceError):
    """Raised when an invariant broke; the generic fallback (gRPC 13)."""

    code = 13


class Unavailable(ServiceError):
    """Raised when a dependency is down or the service is shutting down (gRPC 14)."""

    code = 14
    default_retry_after_s = 1


class DeadlineExceeded(ServiceError):
    """Raised when waiting for an actor took too long; the update may still land (gRPC 4)."""

    code = 4


class Unauthenticated(ServiceError):
    """Raised when the caller's bearer token is missing or invalid (gRPC 16)."""

    code = 16


class LeaseLost(Aborted):
    """Raised when another process holds (or took over) the session's write lease."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__("SESSION-lease", "Errors.Session.Busy")


class MailboxFull(ResourceExhausted):
    """Raised when a session actor's mailbox is full."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__("SESSION-mailbox", "Errors.Session.MailboxFull")


class ActorStopped(Unavailable):
    """Raised for messages still queued when an actor stopped; safe to retry."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__("SESSION-stopped", "Errors.Session.Unavailable")


def permission_denied(error_id: str = "AUTHZ-HKJD33") -> PermissionDenied:
    return PermissionDenied(error_id, "Errors.PermissionDenied")
