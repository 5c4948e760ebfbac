"""Organizations and the instance record: bootstrap, the default organization, org lookups.

An organization is one hash ``org:{O}``; its name and generated domain are unique, one key
each (``orgname:{name}``, ``orgdomain:{domain}``), claimed before ``org_create.lua`` writes
the org and records ``org.added``; the relay confirms the claims with the event
(``storage.name_claims``). Orgs are never renamed or deleted.
"""

from __future__ import annotations

from functools import cached_property

import msgspec
from msgspec.structs import replace

from actors import users as rules
from actors.errors import Aborted, AlreadyExists
from actors.user_records import Org
from storage import keys
from storage.codec import IndexOp
from storage.errors import mapped_errors
from storage.multiplex import as_dict
from storage.name_claims import NameClaims, earliest, settled_owner
from storage.user_base import UserStoreBase
from storage.user_codec import counted, org_fields, org_from_fields, pairs, text, to_json

DEFAULT_ORG_NAME = "ZITADEL"
_OPS = msgspec.msgpack.Encoder()


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    default_org_id: str


class OrgStore(UserStoreBase):
    #: The default organization's id, once resolved (it never changes).
    _default_org_id: str = ""

    # -- instance ----------------------------------------------------------------------------
    async def bootstrap(self) -> InstanceInfo:
        """Ensure the instance id and the default organization (safe in every worker)."""
        await self._org_names.adopt(keys.ORG_NAMES)  # an earlier version's hashes
        await self._org_domains.adopt(keys.ORG_DOMAINS)
        configured = self._settings.instance_id
        with mapped_errors():
            if configured:
                await self._redis.execute("HSET", keys.INSTANCE, "id", configured)
            else:
                await self._redis.execute("HSETNX", keys.INSTANCE, "id", self._ids.new_id())
            self.instance_id = text(await self._redis.execute("HGET", keys.INSTANCE, "id"))
        org_id = await self.default_org_id()
        return InstanceInfo(id=self.instance_id, default_org_id=org_id)

    async def default_org_id(self) -> str:
        """The organization of users created without one; created on first use."""
        if self._default_org_id:
            return self._default_org_id
        with mapped_errors():
            stored = await self._redis.execute("HGET", keys.INSTANCE, "default_org")
        if not stored:
            org = await self.org_by_name(DEFAULT_ORG_NAME)
            if org is None:
                org = await self._create_org_or_existing(DEFAULT_ORG_NAME)
            with mapped_errors():
                await self._redis.execute("HSETNX", keys.INSTANCE, "default_org", org.id)
                stored = await self._redis.execute("HGET", keys.INSTANCE, "default_org")
        self._default_org_id = text(stored)
        return self._default_org_id

    async def _create_org_or_existing(self, name: str) -> Org:
        try:
            return await self.create_org(name)
        except AlreadyExists:  # another worker won the race; its write may be in flight
            org = await settled_owner(lambda: self.org_by_name(name))
            if org is None:
                raise
            return org

    # -- organizations -----------------------------------------------------------------------
    async def create_org(
        self, name: str, *, org_id: str | None = None, creator_id: str = ""
    ) -> Org:
        now = self._clock.now_ms()
        org, event = rules.new_org(
            org_id=org_id or self._ids.new_id(),
            name=name,
            instance_domain=self._settings.domain,
            now_ms=now,
        )
        claims = [(self._org_names, name.lower()), (self._org_domains, org.domain.lower())]
        made: list[tuple[NameClaims, list[str]]] = []
        deadline = 0
        for kind, value in claims:
            claimed = await kind.claim_all([value], org.id, self._holds_org_name)
            if claimed is None:
                await _release(made, org.id)
                raise AlreadyExists("COMMAND-GOUP3", "Errors.Org.AlreadyExists")
            made.append((kind, claimed.names))
            deadline = earliest(deadline, claimed.deadline_ms)
        ops = [IndexOp("set", kind.key_of(value), 0, org.id) for kind, value in claims]
        status, seq = await self._run(
            "org_create",
            [keys.org(org.id), keys.aggregate_relay(keys.org(org.id))],
            [
                org.id,
                to_json(event.payload),
                deadline,
                _OPS.encode(ops),
                *counted(pairs(org_fields(org))),
                *counted(self._envelope("org", org.id, creator_id, now)),
            ],
            relayed=keys.org(org.id),
            touches=[op.key for op in ops],
        )
        if status != "OK":
            await _release(made, org.id)
        if status == "CLAIM_EXPIRED":
            raise Aborted("ORG-conflict", "Errors.Org.ConcurrentUpdate")
        if status != "OK":
            raise AlreadyExists("COMMAND-GOUP3", "Errors.Org.AlreadyExists")
        return replace(org, sequence=int(seq))

    @cached_property
    def _org_names(self) -> NameClaims:
        return NameClaims(self._redis, keys.org_name)

    @cached_property
    def _org_domains(self) -> NameClaims:
        return NameClaims(self._redis, keys.org_domain)

    async def _holds_org_name(self, holder: str, value: str) -> bool:
        """Whether the org ``holder`` has ``value`` as its name or domain (orgs never rename)."""
        org = await self.get_org(holder)
        return org is not None and value in (org.name.lower(), org.domain.lower())

    async def get_org(self, org_id: str) -> Org | None:
        with mapped_errors():
            raw = as_dict(await self._redis.execute("HGETALL", keys.org(org_id)))
        return org_from_fields(raw)

    async def _org_by_claim(self, claims: NameClaims, value: str) -> Org | None:
        """The org a name's key names, if it has that name (not a claim that never wrote)."""
        owner = await claims.owner_of(value.lower())
        found = await self.get_org(owner) if owner else None
        if found is None or value.lower() not in (found.name.lower(), found.domain.lower()):
            return None
        return found

    async def org_by_name(self, name: str) -> Org | None:
        return await self._org_by_claim(self._org_names, name)

    async def org_by_domain(self, domain: str) -> Org | None:
        return await self._org_by_claim(self._org_domains, domain)


async def _release(made: list[tuple[NameClaims, list[str]]], owner: str) -> None:
    for kind, names in made:
        await kind.release(names, owner)
