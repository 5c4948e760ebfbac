"""What the user-side stores share: the client, the scripts, clock, ids and event envelopes.

Every write of a user, organization or PAT runs one Lua script that also appends its events
to the partitioned stream; ``_envelope`` is the part of each event that is not its payload.
"""

from __future__ import annotations

from typing import Any, Protocol

from actors.ports import Clock, IdSource
from actors.timefmt import rfc3339_ms
from storage import keys
from storage.errors import mapped_errors
from storage.multiplex import MultiplexedRedis
from storage.scripts import source
from storage.user_codec import text


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


class UserStoreBase:
    """The state the store parts share; ``RedisUserStore`` combines the parts."""

    def __init__(
        self,
        redis: MultiplexedRedis,
        settings: StoreSettings,
        *,
        instance_id: str = "",
        clock: Clock,
        ids: IdSource,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._clock = clock
        self._ids = ids
        self.instance_id = instance_id

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
            reply = await self._redis.eval_script(source(script), keys_, args)
        return [text(item) if isinstance(item, bytes) else item for item in reply]
