"""Organizations and the instance record: bootstrap, the default organization, org lookups.

An organization is one hash ``org:{O}`` with name and domain indexes; ``org_create.lua``
claims both and writes ``org.added`` atomically.
"""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from actors import users as rules
from actors.errors import AlreadyExists
from actors.user_records import Org
from storage import keys
from storage.errors import mapped_errors
from storage.multiplex import as_dict
from storage.user_base import UserStoreBase
from storage.user_codec import counted, org_fields, org_from_fields, pairs, text, to_json

DEFAULT_ORG_NAME = "ZITADEL"


class InstanceInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    default_org_id: str


class OrgStore(UserStoreBase):
    #: The default organization's id, once resolved (it never changes).
    _default_org_id: str = ""

    # -- instance ----------------------------------------------------------------------------
    async def bootstrap(self) -> InstanceInfo:
        """Ensure the instance id and the default organization (safe in every worker)."""
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
            org_id=org_id or self._ids.new_id(),
            name=name,
            instance_domain=self._settings.domain,
            now_ms=now,
        )
        status, seq = await self._run(
            "org_create",
            [
                keys.org(org.id),
                keys.ORG_NAMES,
                keys.ORG_DOMAINS,
                keys.aggregate_relay(keys.org(org.id)),
            ],
            [
                org.id,
                name.lower(),
                org.domain,
                to_json(event.payload),
                *counted(pairs(org_fields(org))),
                *counted(self._envelope("org", org.id, creator_id, now)),
            ],
            relayed=keys.org(org.id),
        )
        if status != "OK":
            raise AlreadyExists("COMMAND-GOUP3", "Errors.Org.AlreadyExists")
        return replace(org, sequence=int(seq))

    async def get_org(self, org_id: str) -> Org | None:
        with mapped_errors():
            raw = as_dict(await self._redis.execute("HGETALL", keys.org(org_id)))
        return org_from_fields(raw)

    async def _org_by_index(self, index: str, value: str) -> Org | None:
        with mapped_errors():
            org_id = await self._redis.execute("HGET", index, value)
        return await self.get_org(text(org_id)) if org_id else None

    async def org_by_name(self, name: str) -> Org | None:
        return await self._org_by_index(keys.ORG_NAMES, name.lower())

    async def org_by_domain(self, domain: str) -> Org | None:
        return await self._org_by_index(keys.ORG_DOMAINS, domain.lower())
