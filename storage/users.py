"""RedisUserStore: users (reads, optimistic writes, the admin user), assembled with its parts.

Reads are plain HGETALLs (the hash layout is in ``storage.user_codec``). Writes are
read-modify-write with optimistic concurrency: Python applies a pure transition of
``actors.users`` to the record it read, and ``user_write.lua`` stores the difference and
records the events only if ``rev`` is still the one read (bounded retry on conflict); the
relay appends the events right after. Login names are one key each, claimed before the
write and confirmed by the relay (``storage.name_claims``); a lookup by login name checks
that the user it finds still has that name.

The store is one object for its callers; its other parts live in their own modules:
organizations and the instance record (``storage.orgs``), PATs (``storage.pats``) and the
password-attempt protocol (``storage.password_checks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Literal

import msgspec
from msgspec.structs import replace

from actors import tokens
from actors import users as rules
from actors.delivery import DeliveryJob
from actors.errors import Aborted, AlreadyExists, Internal, ServiceError
from actors.model import UserRef
from actors.permissions import Grant
from actors.tokens import IssuedToken
from actors.user_links import link_taken, links_of
from actors.user_records import Change, User, org_not_found
from actors.views import UserView
from storage import keys
from storage.codec import IndexOp
from storage.errors import mapped_errors
from storage.multiplex import as_dict
from storage.name_claims import NameClaims, earliest, settled_owner
from storage.orgs import InstanceInfo, OrgStore
from storage.otp_checks import OtpCheckEnd, OtpCheckStart, OtpCheckStore
from storage.outbox import job_args
from storage.password_checks import PasswordCheckEnd, PasswordCheckStart, PasswordCheckStore
from storage.pats import PatRecord, PatStore
from storage.user_base import StoreSettings
from storage.user_codec import counted, event_args, pairs, text, user_fields, user_from_fields

__all__ = [
    "ADMIN_USERNAME",
    "LOGIN_CLIENT_USERNAME",
    "MAX_WRITE_ATTEMPTS",
    "InstanceInfo",
    "OtpCheckEnd",
    "OtpCheckStart",
    "PasswordCheckEnd",
    "PasswordCheckStart",
    "PatRecord",
    "RedisUserStore",
    "StoreSettings",
    "Transition",
]

#: Optimistic-write attempts before giving up with Aborted (409, safe to retry).
MAX_WRITE_ATTEMPTS = 8
_OPS = msgspec.msgpack.Encoder()


#: a member of ``idp:{I}:links``: ``[user id, provider user id]`` as JSON (unambiguous)
_LINK_MEMBER = msgspec.json.Decoder(tuple[str, str])
ADMIN_USERNAME = "admin"
#: The machine user of the demo login page's backend-for-frontend (role IAM_LOGIN_CLIENT).
LOGIN_CLIENT_USERNAME = "login-client"

Transition = Callable[[User | None, int], Change]


def _link_fields(having: User | None, without: User | None) -> list[str]:
    """The IdP links ``having`` holds and ``without`` does not (``idp id:provider user id``)."""
    if having is None:
        return []
    held = {keys.idp_link_field(link.idp_id, link.user_id) for link in links_of(having)}
    if without is not None:
        held -= {keys.idp_link_field(link.idp_id, link.user_id) for link in links_of(without)}
    return sorted(held)


def _link_member(user_id: str, idp_user_id: str) -> bytes:
    """A link's member of its provider's index: who, and which account (JSON, unambiguous)."""
    return msgspec.json.encode((user_id, idp_user_id))


def _link_ops(user_id: str, links: list[str], op: Literal["set", "del"]) -> list[IndexOp]:
    """The relay ops that confirm (``set``) or drop (``del``) links and their index entries."""
    ops: list[IndexOp] = []
    for link in links:
        idp_id, _, idp_user_id = link.partition(":")
        member = _link_member(user_id, idp_user_id).decode()
        ops.append(IndexOp(op, keys.idp_link(link), 0, user_id))
        ops.append(IndexOp("zadd" if op == "set" else "zrem", keys.idp_links_of(idp_id), 0, member))
    return ops


def _user_exists() -> AlreadyExists:
    return AlreadyExists("COMMAND-k2h3d", "Errors.User.AlreadyExists")


def _conflict() -> ServiceError:
    return Aborted("USERS-conflict", "Errors.User.ConcurrentUpdate")


class RedisUserStore(OrgStore, PatStore, PasswordCheckStore, OtpCheckStore):
    # -- users: reads ------------------------------------------------------------------------
    async def _load(self, user_id: str) -> tuple[User, int] | None:
        with mapped_errors():
            raw = as_dict(await self._redis.execute("HGETALL", keys.user(user_id)))
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
        user = await self._user_by_login_name(login_name)
        return user.id if user is not None else None

    async def user_ref_by_login_name(self, login_name: str) -> UserRef | None:
        user = await self._user_by_login_name(login_name)
        return rules.to_ref(user) if user is not None else None

    async def _user_by_login_name(self, login_name: str) -> User | None:
        """The user the name's key names, if that user still has the name.

        The key may be a claim whose write never happened, or a name given up whose key is
        not dropped yet: neither resolves.
        """
        name = login_name.lower()
        owner = await self._login_claims.owner_of(name)
        user = await self.get_user(owner) if owner else None
        return user if user is not None and await self._has_login_name(user, name) else None

    async def _has_login_name(self, user: User, name: str) -> bool:
        if name == user.username.lower():  # the common case needs no org read
            return True
        return name in await self._login_keys(user)

    async def _holds_login_name(self, holder: str, name: str) -> bool:
        user = await self.get_user(holder)
        return user is not None and await self._has_login_name(user, name)

    @cached_property
    def _login_claims(self) -> NameClaims:
        return NameClaims(self._redis, keys.login_name)

    async def bootstrap(self) -> InstanceInfo:
        await self._login_claims.adopt(keys.LOGIN_NAMES)  # an earlier version's hashes
        await self._adopt_links()
        return await super().bootstrap()

    async def _adopt_links(self) -> None:
        """Earlier versions' one hash of IdP links: one claim key each, and the index."""
        with mapped_errors():
            flat = await self._redis.execute("HGETALL", keys.IDP_LINKS)
        for link, owner in zip(flat[::2], flat[1::2], strict=True):
            idp_id, _, idp_user_id = text(link).partition(":")
            with mapped_errors():
                await self._redis.execute(
                    "ZADD", keys.idp_links_of(idp_id), 0, _link_member(text(owner), idp_user_id)
                )
        await self._link_claims.adopt(keys.IDP_LINKS)

    async def idp_link_owner(self, idp_id: str, idp_user_id: str) -> str | None:
        """The user linked to the provider's account, if that user still has the link."""
        link = keys.idp_link_field(idp_id, idp_user_id)
        owner = await self._link_claims.owner_of(link)
        return owner if owner and await self._holds_link(owner, link) else None

    async def idp_link_owners(self, idp_id: str) -> set[str]:
        """Every user linked to an account of the provider ``idp_id`` (its links index).

        The index may still name a user whose link is being dropped: callers act on each
        user's own state.
        """
        with mapped_errors():
            members = await self._redis.execute("ZRANGE", keys.idp_links_of(idp_id), 0, -1)
        return {_LINK_MEMBER.decode(member)[0] for member in members}

    async def _holds_link(self, holder: str, link: str) -> bool:
        user = await self.get_user(holder)
        return user is not None and link in _link_fields(user, None)

    @cached_property
    def _link_claims(self) -> NameClaims:
        return NameClaims(self._redis, keys.idp_link)

    async def login_names(self, user: User) -> list[str]:
        org = await self.get_org(user.org_id)
        return rules.login_names(user, org.domain) if org else [user.username]

    # -- users: writes -----------------------------------------------------------------------
    async def create_user(
        self, change: Change, *, creator_id: str = "", jobs: Sequence[DeliveryJob] = ()
    ) -> User:
        """Store a new user from ``actors.users.new_human``/``new_machine``.

        ``jobs``: messages to send (verification codes), recorded with the write and queued
        by its relay.
        """
        user = change.user
        org = await self.get_org(user.org_id)
        if org is None:
            raise org_not_found()
        names = rules.login_name_keys(user, org.domain)
        claimed = await self._login_claims.claim_all(names, user.id, self._holds_login_name)
        if claimed is None:
            raise _user_exists()
        status, seq = await self._write(
            "create",
            user,
            change,
            guard=("", ""),
            creator_id=creator_id,
            ops=[IndexOp("set", keys.login_name(name), 0, user.id) for name in names],
            deadline_ms=claimed.deadline_ms,
            before={},
            jobs=jobs,
        )
        if status != "OK":
            await self._login_claims.release(claimed.names, user.id)
        if status == "CLAIM_EXPIRED":
            raise _conflict()
        if status == "EXISTS":
            raise _user_exists()
        if status == "LINK_TAKEN":
            raise link_taken()
        return replace(user, sequence=int(seq))

    async def mutate(
        self,
        user_id: str,
        transition: Transition,
        *,
        creator_id: str = "",
        release_login_names: bool = False,
        jobs: Sequence[DeliveryJob] = (),
    ) -> User:
        """Apply ``transition(user, now_ms)`` and store it; retried on concurrent writes.

        ServiceErrors of the transition propagate; a ``Change.error`` is raised after its
        events were stored. ``jobs`` are queued with the write that succeeds.
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
                ops=[IndexOp("del", keys.login_name(name), 0, user.id) for name in release],
                before=user_fields(user),
                jobs=jobs,
            )
            if status == "LINK_TAKEN":
                raise link_taken()
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
        ops: list[IndexOp],
        before: dict[str, str],
        deadline_ms: int = 0,
        jobs: Sequence[DeliveryJob] = (),
    ) -> list[Any]:
        """Claim the IdP links the change adds, then write; LINK_TAKEN if one is another's.

        ``ops``: what the relay applies to other slots besides the links (the login names).
        The link claims made now are freed again if the write did not happen.
        """
        old = user if mode == "update" else None
        added, dropped = _link_fields(change.user, old), _link_fields(old, change.user)
        links = await self._link_claims.claim_all(added, user.id, self._holds_link)
        if links is None:
            return ["LINK_TAKEN", 0]
        reply = await self._write_user(
            mode,
            user,
            change,
            guard=guard,
            creator_id=creator_id,
            ops=[*ops, *_link_ops(user.id, added, "set"), *_link_ops(user.id, dropped, "del")],
            before=before,
            deadline_ms=earliest(deadline_ms, links.deadline_ms),
            jobs=jobs,
        )
        if reply[0] != "OK":
            await self._link_claims.release(links.names, user.id)
        return reply

    async def _write_user(
        self,
        mode: str,
        user: User,
        change: Change,
        *,
        guard: tuple[str, str],
        creator_id: str,
        ops: list[IndexOp],
        before: dict[str, str],
        deadline_ms: int,
        jobs: Sequence[DeliveryJob],
    ) -> list[Any]:
        after = user_fields(change.user)
        changed = {name: value for name, value in after.items() if before.get(name) != value}
        removed = [name for name in before if name not in after]
        envelope = self._envelope("user", user.id, creator_id, change.user.change_ms)
        return await self._run(
            "user_write",
            [keys.user(user.id), keys.aggregate_relay(keys.user(user.id))],
            [
                mode,
                user.id,
                *guard,
                deadline_ms,
                _OPS.encode(ops),
                *counted(pairs(changed)),
                *counted(removed),
                *counted(envelope),
                *event_args(change.events),
                *job_args(jobs),
            ],
            relayed=keys.user(user.id),
            touches=[op.key for op in ops],
            jobs=bool(jobs),
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
            ops=[],
            before=user_fields(user),
        )
        return bool(status == "OK")

    async def add_grant(self, user_id: str, grant: Grant, *, creator_id: str = "") -> User:
        def transition(user: User | None, now_ms: int) -> Change:
            return rules.add_grant(user, grant, now_ms)

        return await self.mutate(user_id, transition, creator_id=creator_id)

    # -- the admin user ----------------------------------------------------------------------
    async def ensure_admin(self, token: str) -> bool:
        """Make ``token`` (``p.<tokenId>.<secret>``) the PAT of the IAM_OWNER machine user "admin".

        Idempotent, so every start may run it. The configured token replaces the one of the
        previous start (its id is kept in the instance record): the old one stops working.
        Returns True if it replaced a different token.
        """
        parts = tokens.split(token)
        if parts is None or parts[0] != tokens.PAT_PREFIX:
            raise ValueError("the admin token must look like p.<tokenId>.<secret>")
        user_id = await self.user_id_by_login_name(ADMIN_USERNAME) or await self._create_machine(
            ADMIN_USERNAME, "IAM_OWNER", "created at start from the configured admin token"
        )
        user = await self.get_user(user_id)
        if user is None or user.machine is None:
            raise ValueError(f"user {ADMIN_USERNAME!r} exists and is not a machine user")
        if not any("IAM_OWNER" in g.roles and not g.org_id for g in user.grants):
            await self.add_grant(user_id, Grant(roles=("IAM_OWNER",)))
        _, token_id, secret = parts
        issued = IssuedToken(token_id=token_id, token_hash=tokens.hash_secret(secret), plain="")
        with mapped_errors():
            previous = text(await self._redis.execute("HGET", keys.INSTANCE, "admin_pat"))
            old = await self.get_pat(token_id)
        rotated = old is not None and old.secret_hash != issued.token_hash
        await self.add_pat(user_id, issued, None, replace=True)
        if previous and previous != token_id:
            rotated = await self.remove_pat(previous, user_id) or rotated
        with mapped_errors():
            await self._redis.execute("HSET", keys.INSTANCE, "admin_pat", token_id)
        return rotated

    async def ensure_login_client(self, issued: IssuedToken, expiration_ms: int) -> str:
        """Give the IAM_LOGIN_CLIENT machine user "login-client" the extra PAT ``issued``.

        Each worker serving the demo login page mints its own PAT at start and keeps it in
        memory; the expiry lets the tokens of stopped (or killed) workers lapse by themselves.
        Returns the user's id (to remove the PAT again at shutdown).
        """
        role, name = "IAM_LOGIN_CLIENT", LOGIN_CLIENT_USERNAME
        user_id = await self.user_id_by_login_name(name) or await self._create_machine(
            name, role, "the demo login page's backend-for-frontend"
        )
        user = await self.get_user(user_id)
        if user is None or user.machine is None:
            raise ValueError(f"user {name!r} exists and is not a machine user")
        if not any(role in g.roles and not g.org_id for g in user.grants):
            await self.add_grant(user_id, Grant(roles=(role,)))
        await self.add_pat(user_id, issued, expiration_ms)
        return user_id

    async def _create_machine(self, username: str, role: str, description: str) -> str:
        change = rules.new_machine(
            user_id=self._ids.new_id(),
            org_id=await self.default_org_id(),
            username=username,
            name=username,
            description=description,
            now_ms=self._clock.now_ms(),
            grants=(Grant(roles=(role,)),),
        )
        try:
            return (await self.create_user(change)).id
        except AlreadyExists:  # another worker created it first (its write may be in flight)
            found = await settled_owner(lambda: self.user_id_by_login_name(username))
            if found is None:
                raise
            return found
