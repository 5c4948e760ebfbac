"""What the user-side stores share: the client, the scripts, clock, ids and event envelopes.

Every write of a user, organization, PAT, IdP or intent runs one Lua script that records its
events beside the aggregate (its own hash slot); the relay (``storage.relay``) appends them
to the partitioned stream. ``_envelope`` is the part of each event that is not its payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from actors.ports import Clock, IdSource
from actors.timefmt import rfc3339_ms
from storage import keys
from storage.client import RedisClient
from storage.cluster import slot_of
from storage.codec import as_bytes
from storage.errors import mapped_errors
from storage.relay import Relay, decode, to_the_end, victims_of
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
        redis: RedisClient,
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
        self._relay = Relay(
            redis,
            partitions=settings.event_partitions,
            stream_maxlen=settings.event_stream_maxlen,
            split_by_slot=bool(getattr(redis, "splits_by_slot", False)),
        )

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

    async def _run(
        self,
        script: str,
        keys_: list[str],
        args: list[Any],
        *,
        relayed: str = "",
        touches: Sequence[str] = (),
        jobs: bool = False,
    ) -> list[Any]:
        """Run a write script; ``relayed``: the aggregate whose events it records.

        Such a script ends its reply with the relay entry it recorded ("" for none) and how
        many its aggregate has waiting; the relay appends the events to the partition stream
        at once: on one node in the same write as the script (``touches``: the keys its ops
        may name, ``jobs``: whether it queues messages), else right after; if that pass
        fails, the repair does it.
        """
        if not relayed:
            with mapped_errors():
                reply = list(await self._redis.eval_script(source(script), keys_, args))
            return _texts(reply)
        run = self._run_relayed(script, keys_, args, relayed, touches, jobs)
        # on one node the pass goes in the script's write; a cluster's second call must not
        # be cut off by a cancelled caller
        return await (to_the_end(run) if self._relay.split else run)

    async def _run_relayed(
        self,
        script: str,
        keys_: list[str],
        args: list[Any],
        relayed: str,
        touches: Sequence[str],
        jobs: bool,
    ) -> list[Any]:
        """``_run``'s write and its pass, which a cancelled caller does not cut off."""
        recorded_in = keys.aggregate_relay(relayed)
        keys_ = [*keys_, keys.relay_pending(slot_of(relayed))]
        chained = self._relay.chained_call(_id_of(relayed), recorded_in, touches, jobs=jobs)
        relayed_now = False
        with mapped_errors():
            if chained is None:
                reply = list(await self._redis.eval_script(source(script), keys_, args))
            else:
                calls = [(source(script), keys_, args), (source("relay_apply"), *chained)]
                written, passed = await self._redis.eval_chain(calls)
                if isinstance(written, BaseException):
                    raise written
                reply = list(written)
                relayed_now = (
                    not isinstance(passed, BaseException) and victims_of(passed) is not None
                )
        blob, recorded = as_bytes(reply[-2]), int(reply[-1])
        if blob and not relayed_now:
            settling = self._relay.settle(decode(blob), blob, recorded)
            await (settling if self._relay.split else to_the_end(settling))  # see _run
        return _texts(reply[:-2])


def _texts(reply: list[Any]) -> list[Any]:
    return [text(item) if isinstance(item, bytes) else item for item in reply]


def _id_of(aggregate_key: str) -> str:
    """``user:{U}`` → ``U``: the aggregate's id (its events' partition)."""
    return aggregate_key[aggregate_key.index("{") + 1 : aggregate_key.rindex("}")]
