"""What the services need from storage and from the process, as Protocols.

The services and the transports are typed against these, never against the Redis classes:
the composition root (``app.application``) is the only place that names those. As in
``actors.ports``, the Protocols exist for the import direction and for mypy; the tests run
the real Redis implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from actors.delivery import DeliveryJob
from actors.limits import Rate
from actors.model import SessionState, UserRef
from actors.permissions import Caller, Grant
from actors.queries import Page, SessionFilter, SessionSummary
from actors.tokens import IssuedToken
from actors.user_records import Change, Org, User
from actors.views import UserView
from actors.webauthn_tokens import UserKeys


class SessionReads(Protocol):
    """The read side of the session store (writes go through the actors)."""

    async def ping(self) -> None:
        """Raise a ServiceError unless a write to Redis would succeed now."""

    async def read_meta(self, session_id: str) -> tuple[SessionSummary | None, str]:
        """The session's summary (None if gone) and its current token hash."""

    async def read_state(self, session_id: str) -> SessionState | None:
        """The whole state, for re-rendering a view after its user changed."""

    async def search(
        self, query: SessionFilter, who: Caller, page: Page, now_ms: int
    ) -> tuple[int, list[SessionSummary]]:
        """ListSessions: the total the caller may see and the requested page of it."""

    async def read_by_st_token(self, token_hash: str) -> SessionState | None:
        """The live session whose PingOne token has this keyed hash, if any."""

    async def read_states(self, session_ids: list[str]) -> list[SessionState | None]:
        """The full state of each session, in order (None where gone or terminated)."""

    async def purge_due(self, now_ms: int, limit: int = 200) -> int:
        """Purge sessions past expiration + retention; how many were purged."""

    async def repair_relay(self, now_ms: int) -> int:
        """Apply the commits a crashed writer left unrelayed; how many sessions had some."""


class PasswordCheckStart(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def password_hash(self) -> str: ...


class PasswordCheckEnd(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def failed(self) -> int: ...


class OtpCheckStart(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def sealed_totp(self) -> str: ...

    @property
    def totp_step(self) -> int: ...

    @property
    def recovery_hashes(self) -> tuple[str, ...]: ...


class UserMutations(Protocol):
    """Read-modify-write of one user (``storage.users``): retried on concurrent writes."""

    async def mutate(
        self,
        user_id: str,
        transition: Transition,
        *,
        creator_id: str = "",
        release_login_names: bool = False,
        jobs: Sequence[DeliveryJob] = (),
    ) -> User: ...


class OtpChecks(UserMutations, Protocol):
    """The second-factor attempt protocol (``storage.otp_checks``)."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def begin_otp_check(
        self, user_id: str, kind: str, attempt_id: str, deadline_ms: int, max_attempts: int
    ) -> OtpCheckStart: ...

    async def finish_otp_check(
        self,
        user_id: str,
        kind: str,
        attempt_id: str,
        ok: bool,
        max_attempts: int,
        *,
        totp_step: int = 0,
        recovery_candidates: Sequence[str] = (),
        reseal: tuple[str, str] | None = None,
    ) -> PasswordCheckEnd: ...

    async def release_otp_check(self, user_id: str, attempt_id: str) -> None: ...

    async def use_webauthn_challenge(self, user_id: str, challenge: str, ttl_ms: int) -> bool: ...

    async def user_keys(self, user_id: str) -> UserKeys | None: ...


class CheckGate(Protocol):
    """The rate limits every credential check passes first (``PasswordService.admit``)."""

    async def admit(self, user_id: str, caller: Caller) -> None: ...


class PatRecord(Protocol):
    @property
    def token_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def secret_hash(self) -> str: ...

    @property
    def expires_ms(self) -> int: ...


Transition = Callable[[User | None, int], Change]


class UserDirectory(UserMutations, Protocol):
    """Users, organizations, PATs and the password-attempt protocol."""

    @property
    def instance_id(self) -> str: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def user_view(self, user_id: str) -> UserView | None: ...

    async def user_ref_by_id(self, user_id: str) -> UserRef | None: ...

    async def user_ref_by_login_name(self, login_name: str) -> UserRef | None: ...

    async def login_names(self, user: User) -> list[str]: ...

    async def create_user(
        self, change: Change, *, creator_id: str = "", jobs: Sequence[DeliveryJob] = ()
    ) -> User: ...

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        change_required: bool,
        *,
        creator_id: str = "",
        reset_code: str | None = None,
    ) -> User: ...

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool: ...

    async def add_grant(self, user_id: str, grant: Grant, *, creator_id: str = "") -> User: ...

    async def add_pat(
        self, user_id: str, issued: IssuedToken, expiration_ms: int | None, *, creator_id: str = ""
    ) -> int: ...

    async def get_pat(self, token_id: str) -> PatRecord | None: ...

    async def create_org(
        self, name: str, *, org_id: str | None = None, creator_id: str = ""
    ) -> Org: ...

    async def get_org(self, org_id: str) -> Org | None: ...

    async def org_by_domain(self, domain: str) -> Org | None: ...

    async def default_org_id(self) -> str: ...

    async def begin_password_check(
        self, user_id: str, attempt_id: str, deadline_ms: int, max_attempts: int
    ) -> PasswordCheckStart: ...

    async def finish_password_check(
        self, user_id: str, attempt_id: str, ok: bool, max_attempts: int, now_ms: int
    ) -> PasswordCheckEnd: ...

    async def release_password_check(self, user_id: str, attempt_id: str) -> None: ...


class RateLimiter(Protocol):
    async def admit(self, subjects: list[tuple[str, str, Rate]]) -> int:
        """0 if every ``(kind, subject, rate)`` may go on now, else ms until one may."""


class Hasher(Protocol):
    """argon2id off the event loop (``app.services.hashing.PasswordHasher``)."""

    async def hash(self, password: str) -> str: ...

    async def verify(self, encoded: str, password: str) -> bool: ...

    def needs_rehash(self, encoded: str) -> bool: ...

    def accepts(self, encoded: str) -> bool: ...
