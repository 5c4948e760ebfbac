"""RedisUserStore: users, organizations, PATs, the instance record and password attempts.

A user is one hash ``user:{U}``: scalar fields the scripts read (``state``, ``pw``,
``failed``, ``vv``, ``org``, ``rev``, ``seq``) and JSON for the rest (profile, email, ...).
Reads are plain HGETALLs. Writes are read-modify-write with optimistic concurrency: Python
applies a pure transition of ``actors.users`` to the record it read, and ``user_write.lua``
stores the difference, the login-name index and the events only if ``rev`` is still the one
read (bounded retry on conflict). The password-attempt protocol (begin/finish) and PATs have
their own scripts. Events go to the partitioned stream, in the same script as the write.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from msgspec.structs import replace

from actors import tokens
from actors import users as rules
from actors.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    Internal,
    NotFound,
    ServiceError,
)
from actors.model import UserRef
from actors.permissions import Grant
from actors.ports import Clock
from actors.timefmt import rfc3339_ms
from actors.tokens import IssuedToken
from actors.users import Change, Org, User, UserEvent
from actors.views import UserView
from storage import keys
from storage.errors import mapped_errors
from storage.scripts import Scripts

#: Optimistic-write attempts before giving up with Aborted (409, safe to retry).
MAX_WRITE_ATTEMPTS = 8
DEFAULT_ORG_NAME = "ZITADEL"
ADMIN_USERNAME = "admin"

Transition = Callable[[User | None, int], Change]
_ENCODER = msgspec.json.Encoder()
_HUMAN = msgspec.json.Decoder(rules.Human)
_MACHINE = msgspec.json.Decoder(rules.Machine)
_GRANTS = msgspec.json.Decoder(tuple[Grant, ...])


class StoreSettings(Protocol):
    """The fields of ``app.settings.Settings`` the store reads (storage never imports app)."""

    @property
    def instance_id(self) -> str: ...

    @property
    def domain(self) -> str: ...

    @property
    def event_partitions(self) -> int: ...

    @property
    def event_stream_maxlen(self) -> int: ...


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    default_org_id: str


class PatRecord(msgspec.Struct, frozen=True, kw_only=True):
    token_id: str
    user_id: str
    secret_hash: str
    expires_ms: int = 0


class PasswordCheckStart(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | NOTFOUND | LOCKED | NOPW | BUSY; the hash only with OK."""

    status: str
    password_hash: str = ""
    view_version: int = 0


class PasswordCheckEnd(msgspec.Struct, frozen=True, kw_only=True):
    """``status``: OK | LOCKED (locked by someone else meanwhile) | NOTFOUND."""

    status: str
    failed: int
    locked_now: bool


class _WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


# -- codec (pure) ----------------------------------------------------------------------------


def _text(value: bytes | str | None) -> str:
    """Replies are bytes (``decode_responses=False``); redis-py's types also allow str."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _decoded(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {_text(key): _text(value) for key, value in raw.items()}


def _json(value: object) -> str:
    return _ENCODER.encode(value).decode()


def user_fields(user: User) -> dict[str, str]:
    """The hash of a user, without ``rev``/``seq`` (owned by the scripts)."""
    fields = {
        "id": user.id,
        "org": user.org_id,
        "username": user.username,
        "state": user.state,
        "ctime": str(user.creation_ms),
        "mtime": str(user.change_ms),
        "failed": str(user.failed_password_attempts),
        "vv": str(user.view_version),
        "grants": _json(user.grants),
    }
    if user.human is not None:
        fields["kind"] = "human"
        fields["human"] = _json(replace(user.human, password_hash=""))
        if user.human.password_hash:
            fields["pw"] = user.human.password_hash
    elif user.machine is not None:
        fields["kind"] = "machine"
        fields["machine"] = _json(user.machine)
    return fields


def user_from_fields(raw: Mapping[bytes | str, bytes | str]) -> tuple[User, int] | None:
    """HGETALL → (user, rev), or None for a missing key."""
    if not raw:
        return None
    f = _decoded(raw)
    human = _HUMAN.decode(f["human"]) if "human" in f else None
    if human is not None:
        human = replace(human, password_hash=f.get("pw", ""))
    user = User(
        id=f["id"],
        org_id=f["org"],
        username=f["username"],
        state=f["state"],
        creation_ms=int(f["ctime"]),
        change_ms=int(f["mtime"]),
        sequence=int(f.get("seq", 0)),
        failed_password_attempts=int(f.get("failed", 0)),
        view_version=int(f.get("vv", 0)),
        grants=_GRANTS.decode(f.get("grants", "[]")),
        human=human,
        machine=_MACHINE.decode(f["machine"]) if "machine" in f else None,
    )
    return user, int(f.get("rev", 0))


def _org_from_fields(raw: Mapping[bytes | str, bytes | str]) -> Org | None:
    if not raw:
        return None
    f = _decoded(raw)
    return Org(
        id=f["id"],
        name=f["name"],
        domain=f["domain"],
        creation_ms=int(f["ctime"]),
        sequence=int(f.get("seq", 0)),
    )


def _counted(items: list[str]) -> list[str]:
    return [str(len(items)), *items]


def _pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def _event_args(events: tuple[UserEvent, ...]) -> list[str]:
    args = [str(len(events))]
    for event in events:
        args += [event.type, _json(event.payload)]
    return args


def _user_exists() -> AlreadyExists:
    return AlreadyExists("COMMAND-k2h3d", "Errors.User.AlreadyExists")


def org_not_found() -> NotFound:
    return NotFound("QUERY-iTTGJ", "Errors.Org.NotFound")


class RedisUserStore:
    def __init__(
        self,
        client: aioredis.Redis,
        settings: StoreSettings,
        *,
        instance_id: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._scripts = Scripts(client)
        self._clock: Clock = clock or _WallClock()
        self.instance_id = instance_id
        self._default_org_id = ""

    # -- plumbing ----------------------------------------------------------------------------
    def _stream(self, aggregate_id: str) -> str:
        partition = keys.event_partition(aggregate_id, self._settings.event_partitions)
        return keys.event_stream(partition)

    def _envelope(
        self, aggregate_type: str, aggregate_id: str, creator_id: str, at_ms: int
    ) -> list[str]:
        return [
            "aggregateType",
            aggregate_type,
            "aggregateId",
            aggregate_id,
            "aggregateVersion",
            "v1",
            "instanceId",
            self.instance_id,
            "creator",
            creator_id,
            "createdAt",
            rfc3339_ms(at_ms),
        ]

    async def _run(self, script: str, keys_: list[str], args: list[Any]) -> list[Any]:
        with mapped_errors():
            reply = await self._scripts.run(script, keys_, args)
        return [_text(item) if isinstance(item, bytes) else item for item in reply]

    # -- instance ----------------------------------------------------------------------------
    async def bootstrap(self) -> InstanceInfo:
        """Ensure the instance id and the default organization (safe in every worker)."""
        configured = self._settings.instance_id
        with mapped_errors():
            if configured:
                await self._client.hset(keys.INSTANCE, "id", configured)
            else:
                await self._client.hsetnx(keys.INSTANCE, "id", new_id())
            self.instance_id = _text(await self._client.hget(keys.INSTANCE, "id"))
        org_id = await self.default_org_id()
        return InstanceInfo(id=self.instance_id, default_org_id=org_id)

    async def default_org_id(self) -> str:
        """The organization of users created without one; created on first use."""
        if self._default_org_id:
            return self._default_org_id
        with mapped_errors():
            stored = await self._client.hget(keys.INSTANCE, "default_org")
        if not stored:
            org = await self.org_by_name(DEFAULT_ORG_NAME)
            if org is None:
                org = await self._create_org_or_existing(DEFAULT_ORG_NAME)
            with mapped_errors():
                await self._client.hsetnx(keys.INSTANCE, "default_org", org.id)
                stored = await self._client.hget(keys.INSTANCE, "default_org")
        self._default_org_id = _text(stored)
        return self._default_org_id

    async def _create_org_or_existing(self, name: str) -> Org:
        try:
            return await self.create_org(name)
        except AlreadyExists:  # another worker won the race
            org = await self.org_by_name(name)
            if org is None:
                raise
            return org

    # -- organizations -----------------------------------------------------------------------
    async def create_org(
        self, name: str, *, org_id: str | None = None, creator_id: str = ""
    ) -> Org:
        now = self._clock.now_ms()
        org, event = rules.new_org(
            org_id=org_id or new_id(), name=name, instance_domain=self._settings.domain, now_ms=now
        )
        fields = {
            "id": org.id,
            "name": org.name,
            "domain": org.domain,
            "ctime": str(org.creation_ms),
        }
        status, seq = await self._run(
            "org_create",
            [keys.org(org.id), keys.ORG_NAMES, keys.ORG_DOMAINS, self._stream(org.id)],
            [
                org.id,
                name.lower(),
                org.domain,
                self._settings.event_stream_maxlen,
                _json(event.payload),
                *_counted(_pairs(fields)),
                *_counted(self._envelope("org", org.id, creator_id, now)),
            ],
        )
        if status != "OK":
            raise AlreadyExists("COMMAND-GOUP3", "Errors.Org.AlreadyExists")
        return replace(org, sequence=int(seq))

    async def get_org(self, org_id: str) -> Org | None:
        with mapped_errors():
            raw = await self._client.hgetall(keys.org(org_id))
        return _org_from_fields(raw)

    async def _org_by_index(self, index: str, value: str) -> Org | None:
        with mapped_errors():
            org_id = await self._client.hget(index, value)
        return await self.get_org(_text(org_id)) if org_id else None

    async def org_by_name(self, name: str) -> Org | None:
        return await self._org_by_index(keys.ORG_NAMES, name.lower())

    async def org_by_domain(self, domain: str) -> Org | None:
        return await self._org_by_index(keys.ORG_DOMAINS, domain.lower())

    # -- users: reads ------------------------------------------------------------------------
    async def _load(self, user_id: str) -> tuple[User, int] | None:
        with mapped_errors():
            raw = await self._client.hgetall(keys.user(user_id))
        return user_from_fields(raw)

    async def get_user(self, user_id: str) -> User | None:
        """The user, or None if it never existed or was deleted."""
        loaded = await self._load(user_id)
        if loaded is None or loaded[0].state == rules.DELETED:
            return None
        return loaded[0]

    async def user_view(self, user_id: str) -> UserView | None:
        user = await self.get_user(user_id)
        return rules.to_view(user) if user is not None else None

    async def user_ref_by_id(self, user_id: str) -> UserRef | None:
        user = await self.get_user(user_id)
        return rules.to_ref(user) if user is not None else None

    async def user_id_by_login_name(self, login_name: str) -> str | None:
        """Case-insensitive: ``username`` or ``username@<org domain>``."""
        with mapped_errors():
            found = await self._client.hget(keys.LOGIN_NAMES, login_name.lower())
        return _text(found) or None

    async def user_ref_by_login_name(self, login_name: str) -> UserRef | None:
        user_id = await self.user_id_by_login_name(login_name)
        return await self.user_ref_by_id(user_id) if user_id else None

    async def login_names(self, user: User) -> list[str]:
        org = await self.get_org(user.org_id)
        return rules.login_names(user, org.domain) if org else [user.username]

    # -- users: writes -----------------------------------------------------------------------
    async def create_user(self, change: Change, *, creator_id: str = "") -> User:
        """Store a new user from ``actors.users.new_human``/``new_machine``."""
        user = change.user
        org = await self.get_org(user.org_id)
        if org is None:
            raise org_not_found()
        status, seq = await self._write(
            "create",
            user,
            change,
            guard=("", ""),
            creator_id=creator_id,
            claim=rules.login_name_keys(user, org.domain),
            release=[],
            before={},
        )
        if status in ("EXISTS", "NAME_TAKEN"):
            raise _user_exists()
        if status == "NO_ORG":
            raise org_not_found()
        return replace(user, sequence=int(seq))

    async def mutate(
        self,
        user_id: str,
        transition: Transition,
        *,
        creator_id: str = "",
        release_login_names: bool = False,
    ) -> User:
        """Apply ``transition(user, now_ms)`` and store it; retried on concurrent writes.

        ServiceErrors of the transition propagate; a ``Change.error`` is raised after its
        events were stored.
        """
        for _ in range(MAX_WRITE_ATTEMPTS):
            loaded = await self._load(user_id)
            user, rev = loaded if loaded is not None else (None, 0)
            change = transition(user, self._clock.now_ms())
            if user is None:
                raise Internal("USERS-noUser", "Errors.Internal")
            release = await self._login_keys(user) if release_login_names else []
            status, seq = await self._write(
                "update",
                user,
                change,
                guard=("rev", str(rev)),
                creator_id=creator_id,
                claim=[],
                release=release,
                before=user_fields(user),
            )
            if status == "OK":
                if change.error is not None:
                    raise change.error
                return replace(change.user, sequence=int(seq))
        raise _conflict()

    async def _login_keys(self, user: User) -> list[str]:
        org = await self.get_org(user.org_id)
        return rules.login_name_keys(user, org.domain) if org else [user.username.lower()]

    async def _write(
        self,
        mode: str,
        user: User,
        change: Change,
        *,
        guard: tuple[str, str],
        creator_id: str,
        claim: list[str],
        release: list[str],
        before: dict[str, str],
    ) -> list[Any]:
        after = user_fields(change.user)
        changed = {name: value for name, value in after.items() if before.get(name) != value}
        removed = [name for name in before if name not in after]
        envelope = self._envelope("user", user.id, creator_id, change.user.change_ms)
        return await self._run(
            "user_write",
            [keys.user(user.id), keys.LOGIN_NAMES, self._stream(user.id), keys.org(user.org_id)],
            [
                mode,
                user.id,
                *guard,
                self._settings.event_stream_maxlen,
                *_counted(claim),
                *_counted(release),
                *_counted(_pairs(changed)),
                *_counted(removed),
                *_counted(envelope),
                *_event_args(change.events),
            ],
        )

    async def delete_user(self, user_id: str, *, creator_id: str = "") -> User:
        """Tombstone the user and free its login names for others."""
        return await self.mutate(
            user_id, rules.remove, creator_id=creator_id, release_login_names=True
        )

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        change_required: bool,
        *,
        creator_id: str = "",
        reset_code: str | None = None,
    ) -> User:
        """Store a new hash; with ``reset_code``, only if it is the user's valid reset code.

        The code is checked inside the optimistic write, so it can be used only once even
        by concurrent requests (the write clears it).
        """

        def transition(user: User | None, now_ms: int) -> Change:
            if reset_code is not None and user is not None:
                rules.check_password_code(user, reset_code, now_ms)
            return rules.set_password(user, password_hash, change_required, now_ms)

        return await self.mutate(user_id, transition, creator_id=creator_id)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Rehash: compare-and-set on the hash itself; False if the password changed."""
        loaded = await self._load(user_id)
        if loaded is None or loaded[0].human is None:
            return False
        user = loaded[0]
        if user.human is None or user.human.password_hash != old_hash:
            return False
        change = rules.replace_password_hash(user, new_hash, self._clock.now_ms())
        status, _ = await self._write(
            "update",
            user,
            change,
            guard=("pw", old_hash),
            creator_id=user_id,
            claim=[],
            release=[],
            before=user_fields(user),
        )
        return bool(status == "OK")

    async def add_grant(self, user_id: str, grant: Grant, *, creator_id: str = "") -> User:
        def transition(user: User | None, now_ms: int) -> Change:
            return rules.add_grant(user, grant, now_ms)

        return await self.mutate(user_id, transition, creator_id=creator_id)

    # -- personal access tokens --------------------------------------------------------------
    async def add_pat(
        self, user_id: str, issued: IssuedToken, expiration_ms: int | None, *, creator_id: str = ""
    ) -> int:
        """Store a machine user's PAT (hash only); returns the user's new sequence."""
        now = self._clock.now_ms()
        event = rules.pat_added_event(issued.token_id, expiration_ms)
        status, seq = await self._run(
            "pat_add",
            [keys.pat(issued.token_id), keys.user(user_id), self._stream(user_id)],
            [
                user_id,
                issued.token_hash,
                expiration_ms or 0,
                now,
                self._settings.event_stream_maxlen,
                _json(event.payload),
                *_counted(self._envelope("user", user_id, creator_id, now)),
            ],
        )
        return _pat_status(status, int(seq))

    async def get_pat(self, token_id: str) -> PatRecord | None:
        with mapped_errors():
            user, secret_hash, exp = await self._client.hmget(
                keys.pat(token_id), ["user", "hash", "exp"]
            )
        if not user or not secret_hash:
            return None
        return PatRecord(
            token_id=token_id,
            user_id=_text(user),
            secret_hash=_text(secret_hash),
            expires_ms=int(_text(exp) or 0),
        )

    async def ensure_admin(self, token: str) -> str:
        """Make ``token`` (``p.<tokenId>.<secret>``) a PAT of the IAM_OWNER machine user "admin".

        Idempotent, so every worker may run it at start. Returns the admin's user id.
        """
        parts = tokens.split(token)
        if parts is None or parts[0] != tokens.PAT_PREFIX:
            raise ValueError("the admin token must look like p.<tokenId>.<secret>")
        user_id = await self.user_id_by_login_name(ADMIN_USERNAME) or await self._create_admin()
        user = await self.get_user(user_id)
        if user is None or user.machine is None:
            raise ValueError(f"user {ADMIN_USERNAME!r} exists and is not a machine user")
        if not any("IAM_OWNER" in g.roles and not g.org_id for g in user.grants):
            await self.add_grant(user_id, Grant(roles=("IAM_OWNER",)))
        _, token_id, secret = parts
        issued = IssuedToken(token_id=token_id, token_hash=tokens.hash_secret(secret), plain="")
        await self.add_pat(user_id, issued, None)
        return user_id

    async def _create_admin(self) -> str:
        change = rules.new_machine(
            user_id=new_id(),
            org_id=await self.default_org_id(),
            username=ADMIN_USERNAME,
            name=ADMIN_USERNAME,
            description="created at start from the configured admin token",
            now_ms=self._clock.now_ms(),
            grants=(Grant(roles=("IAM_OWNER",)),),
        )
        try:
            return (await self.create_user(change)).id
        except AlreadyExists:  # another worker created it first
            found = await self.user_id_by_login_name(ADMIN_USERNAME)
            if found is None:
                raise
            return found

    # -- password attempts -------------------------------------------------------------------
    async def begin_password_check(
        self, user_id: str, attempt_id: str, deadline_ms: int, max_attempts: int
    ) -> PasswordCheckStart:
        """Admit one verification (see password_begin.lua); OK carries the hash."""
        status, password_hash, version = await self._run(
            "password_begin",
            [keys.user(user_id), keys.user_attempts(user_id)],
            [attempt_id, deadline_ms, max_attempts, self._clock.now_ms()],
        )
        return PasswordCheckStart(
            status=status, password_hash=password_hash, view_version=int(version or 0)
        )

    async def finish_password_check(
        self, user_id: str, attempt_id: str, ok: bool, max_attempts: int, now_ms: int
    ) -> PasswordCheckEnd:
        """Record the outcome, lock at ``max_attempts`` failures, emit the check events."""
        status, failed, locked_now = await self._run(
            "password_finish",
            [keys.user(user_id), keys.user_attempts(user_id), self._stream(user_id)],
            [
                attempt_id,
                1 if ok else 0,
                max_attempts,
                now_ms,
                self._settings.event_stream_maxlen,
                *_counted(self._envelope("user", user_id, user_id, now_ms)),
            ],
        )
        return PasswordCheckEnd(status=status, failed=int(failed), locked_now=bool(locked_now))

    async def release_password_check(self, user_id: str, attempt_id: str) -> None:
        """Drop a reservation whose outcome will never be known (the request was cancelled)."""
        with mapped_errors():
            await self._client.zrem(keys.user_attempts(user_id), attempt_id)


def _pat_status(status: str, sequence: int) -> int:
    errors: dict[str, ServiceError] = {
        "GONE": NotFound("COMMAND-Dggw2", "Errors.User.NotFound"),
        "NOT_MACHINE": FailedPrecondition("COMMAND-patHuman", "Errors.User.NotMachine"),
        "EXISTS": AlreadyExists("COMMAND-patExists", "Errors.Token.Invalid"),
    }
    if status in errors:
        raise errors[status]
    return sequence


def _conflict() -> ServiceError:
    return Aborted("USERS-conflict", "Errors.User.ConcurrentUpdate")


def new_id() -> str:
    """A numeric, roughly time-ordered id (the shape of ZITADEL's Sonyflake ids)."""
    return str(((time.time_ns() // 1_000_000 - 1_672_531_200_000) << 22) | secrets.randbits(22))
