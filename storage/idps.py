"""Identity provider configurations in Redis: one hash per provider, a set per owner.

``idp:{I}`` holds the ``actors.idp_configs.IdpConfig`` as MessagePack (``doc``; the client
secret inside is sealed by the service), ``rev`` for compare-and-set updates and ``seq``
for its events. ``idps:instance`` / ``idps:org:{O}`` list an owner's providers (another
slot: the relay keeps them, with the events).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from actors import idp_configs as rules
from actors.errors import Aborted, AlreadyExists
from actors.idp_configs import IdpConfig
from storage import keys
from storage.codec import IndexOp
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import text, to_json

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(IdpConfig)
#: Updates retried from a fresh read before the writer is told to retry (409).
MAX_WRITE_ATTEMPTS = 16


class RedisIdpStore(UserStoreBase):
    async def get(self, idp_id: str) -> IdpConfig | None:
        loaded = await self._load(idp_id)
        return loaded[0] if loaded is not None else None

    async def add(self, config: IdpConfig, *, creator_id: str) -> IdpConfig:
        status, seq = await self._write(
            "add", config, "", rules.event_type(config, "added"), creator_id
        )
        if status != "OK":
            raise AlreadyExists("COMMAND-idpExists", "Errors.IDPConfig.AlreadyExists")
        return msgspec.structs.replace(config, sequence=int(seq))

    async def update(
        self, idp_id: str, change: Callable[[IdpConfig | None], IdpConfig], *, creator_id: str
    ) -> IdpConfig:
        """``change(current)`` applied and stored; retried if another writer came first."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            loaded = await self._load(idp_id)
            config = change(loaded[0] if loaded is not None else None)
            if loaded is None:
                raise rules.idp_not_found()
            status, seq = await self._write(
                "update", config, loaded[1], rules.event_type(config, "changed"), creator_id
            )
            if status == "GONE":
                raise rules.idp_not_found()
            if status == "OK":
                return msgspec.structs.replace(config, sequence=int(seq))
        raise _busy()

    async def remove(self, config: IdpConfig, *, creator_id: str) -> int:
        """Delete what was read as ``config`` (its revision); the removal event's sequence."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            loaded = await self._load(config.id)
            if loaded is None:
                raise rules.idp_not_found()
            status, seq = await self._write(
                "remove", loaded[0], loaded[1], rules.event_type(config, "removed"), creator_id
            )
            if status == "GONE":
                raise rules.idp_not_found()
            if status == "OK":
                return int(seq)
        raise _busy()

    async def search(self, org_id: str) -> list[IdpConfig]:
        """The owner's providers (``org_id`` "": the instance's), oldest first."""
        with mapped_errors():
            ids = await self._redis.execute("SMEMBERS", keys.idps_of(org_id))
        found = [await self.get(text(idp_id)) for idp_id in ids or ()]
        return sorted((c for c in found if c is not None), key=lambda c: (c.creation_ms, c.id))

    async def _load(self, idp_id: str) -> tuple[IdpConfig, str] | None:
        with mapped_errors():
            raw, rev, seq = await self._redis.execute(
                "HMGET", keys.idp(idp_id), "doc", "rev", "seq"
            )
        if not raw:
            return None
        config = _DECODER.decode(raw if isinstance(raw, bytes) else str(raw).encode())
        return msgspec.structs.replace(config, sequence=int(text(seq) or 0)), text(rev)

    async def _write(
        self, mode: str, config: IdpConfig, rev: str, event: str, creator_id: str
    ) -> tuple[str, str]:
        # the provider is the aggregate (its own sequence and partition); the owner is the
        # resource owner, as the event type (instance.idp.* / org.idp.*) says
        envelope = self._envelope("idp", config.id, creator_id, config.change_ms)
        listed: Literal["sadd", "srem"] = "srem" if mode == "remove" else "sadd"
        reply = await self._run(
            "idp_write",
            [keys.idp(config.id), keys.aggregate_relay(keys.idp(config.id))],
            [
                mode,
                config.id,
                rev,
                _ENCODER.encode(msgspec.structs.replace(config, sequence=0)),
                event,
                to_json(rules.event_payload(config)),
                config.org_id or self.instance_id,
                _ENCODER.encode([IndexOp(listed, keys.idps_of(config.org_id), 0, config.id)]),
                *envelope,
            ],
            relayed=keys.idp(config.id),
            touches=[keys.idps_of(config.org_id)],
        )
        return str(reply[0]), str(reply[1])


def _busy() -> Aborted:
    return Aborted("IDP-conflict", "Errors.IDPConfig.Conflict")
