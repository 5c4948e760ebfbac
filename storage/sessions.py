"""RedisSessionStore: the session side of storage (implements ``actors.ports.SessionStore``).

Writes go through one Lua script each (create/commit/purge), reads are single HMGETs or one
``fetch`` call for many sessions. Index keys are passed as KEYS so every script declares what
it touches; on a single node they are updated in the same atomic step as the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.delivery import DeliveryJob
from actors.errors import LeaseLost
from actors.events import Event
from actors.model import SessionState
from actors.permissions import Caller
from actors.ports import Acquired, Lease
from actors.queries import Page, SessionFilter
from actors.queries import SessionSummary as SessionMeta
from storage import codec, index_plan, keys, session_search
from storage.codec import IndexOp, StreamContext, as_bytes, as_text
from storage.errors import ScriptRefused, mapped_errors
from storage.multiplex import MultiplexedRedis
from storage.outbox import job_args
from storage.scripts import source

#: Keys outlive ``expiration + retention`` by this much; the sweeper purges them at that
#: moment and reads hide them, so this is only the backstop when no sweeper ran.
PURGE_GRACE_MS = 600_000
FETCH_CHUNK = 500


class RedisSessionStore:
    def __init__(
        self,
        redis: MultiplexedRedis,
        *,
        instance_id: str,
        retention_ms: int,
        partitions: int,
        stream_maxlen: int,
        lease_ttl_ms: int,
        max_sessions_per_user: int = 0,
    ) -> None:
        self._redis = redis
        self._cap = max_sessions_per_user
        self._lease_ttl_ms = lease_ttl_ms
        self.instance_id = instance_id
        self.retention_ms = retention_ms
        self._partitions = partitions
        self._stream_maxlen = stream_maxlen

    async def ping(self) -> None:
        """Raise unless a write would succeed now (one SET of a tiny key, short expiry).

        A PING alone answers while Redis refuses writes (OOM, READONLY, MISCONF).
        """
        with mapped_errors():
            await self._redis.execute("SET", keys.READY_PROBE, "1", "PX", 10_000)

    # -- lease -------------------------------------------------------------------------
    async def acquire(self, session_id: str, owner: str, ttl_ms: int) -> Acquired | None:
        keys_ = [
            keys.session_lease(session_id),
            keys.session_fence(session_id),
            keys.session(session_id),
        ]
        with mapped_errors():
            reply = await self._redis.eval_script(source("acquire"), keys_, [owner, ttl_ms])
        fence, doc = reply[0], reply[1]
        if not fence:
            return None
        state = codec.decode_state(doc, reply[2]) if doc else None
        return Acquired(
            lease=Lease(session_id=session_id, owner=owner, fence=int(fence)), state=state
        )

    async def release(self, lease: Lease) -> None:
        with mapped_errors():
            await self._redis.eval_script(
                source("release"), [keys.session_lease(lease.session_id)], [lease.owner]
            )

    # -- writes ------------------------------------------------------------------------
    async def create(
        self,
        state: SessionState,
        events: list[Event],
        *,
        at_ms: int,
        creator_id: str,
        jobs: Sequence[DeliveryJob] = (),
    ) -> list[str]:
        """Write a new session; returns the sessions it pushed over the per-user cap."""
        sid = state.id
        args, index_keys = self._write_args(None, state, events, at_ms, creator_id, jobs)
        keys_ = [
            keys.session(sid),
            keys.session_fence(sid),
            self._partition_key(sid),
            keys.OUTBOX,
            *index_keys,
        ]
        with mapped_errors():
            reply = await self._redis.eval_script(source("create"), keys_, args)
        return _evicted(reply)

    async def commit(
        self,
        lease: Lease,
        before: SessionState | None,
        after: SessionState,
        events: list[Event],
        *,
        at_ms: int,
        creator_id: str,
        release: bool,
        jobs: Sequence[DeliveryJob] = (),
    ) -> list[str]:
        """Write a change under the lease; returns the sessions pushed over the cap."""
        sid = lease.session_id
        args, index_keys = self._write_args(before, after, events, at_ms, creator_id, jobs)
        keys_ = [
            keys.session_lease(sid),
            keys.session(sid),
            keys.session_fence(sid),
            self._partition_key(sid),
            keys.OUTBOX,
            *index_keys,
        ]
        lease_args: list[Any] = [lease.owner, lease.fence, 1 if release else 0, self._lease_ttl_ms]
        try:
            with mapped_errors():
                reply = await self._redis.eval_script(source("commit"), keys_, [*lease_args, *args])
        except ScriptRefused as exc:
            raise LeaseLost(sid) from exc
        return _evicted(reply)

    def _partition_key(self, session_id: str) -> str:
        return keys.event_stream(keys.event_partition(session_id, self._partitions))

    def _expire_at(self, state: SessionState, at_ms: int) -> int:
        if state.terminated:
            return at_ms + max(self.retention_ms, 1000)
        purge_at = codec.purge_at_ms(state, self.retention_ms)
        return purge_at + PURGE_GRACE_MS if purge_at is not None else 0

    def _write_args(
        self,
        before: SessionState | None,
        after: SessionState,
        events: list[Event],
        at_ms: int,
        creator_id: str,
        jobs: Sequence[DeliveryJob],
    ) -> tuple[list[Any], list[str]]:
        fields = codec.tombstone_fields(after) if after.terminated else codec.state_fields(after)
        first_seq = (before.sequence if before else 0) + 1
        entries = codec.stream_entries(
            events,
            first_seq,
            after.id,
            StreamContext(instance_id=self.instance_id, creator_id=creator_id, at_ms=at_ms),
        )
        expire_at = self._expire_at(after, at_ms)
        ops = codec.index_ops(
            before, after, self.retention_ms, cap=self._cap, expire_at_ms=expire_at
        )
        index_keys = sorted({op.key for op in ops})
        if any(op.op == "cap" for op in ops):
            index_keys.append(keys.SESSIONS_TO_EVICT)
        args: list[Any] = [
            str(before.sequence) if before else "",
            1 if after.terminated else 0,
            expire_at,
            self._stream_maxlen,
            len(fields),
        ]
        for name, value in fields.items():
            args += [name, value]
        args.append(len(entries))
        for entry in entries:
            args.append(len(entry))
            for name, text in entry.items():
                args += [name, text]
        args.append(len(ops))
        args += _op_args(ops, index_keys, at_ms)
        args += job_args(jobs)
        return args, index_keys

    # -- reads -------------------------------------------------------------------------
    async def read_meta(self, session_id: str) -> tuple[SessionMeta | None, str]:
        """The session's read fields and its current token hash (one round trip)."""
        with mapped_errors():
            values = await self._redis.execute(
                "HMGET", keys.session(session_id), *codec.META_FIELDS, "tok"
            )
        meta = codec.meta_from_fields(session_id, [as_bytes(v) for v in values[:-1]])
        token_hash = as_text(values[-1])
        return meta, token_hash

    async def read_state(self, session_id: str) -> SessionState | None:
        with mapped_errors():
            doc, tok = await self._redis.execute("HMGET", keys.session(session_id), "doc", "tok")
        raw = as_bytes(doc)
        return codec.decode_state(raw, tok) if raw else None

    async def read_by_st_token(self, token_hash: str) -> SessionState | None:
        """The session a PingOne token names, if its own state still holds that token."""
        with mapped_errors():
            found = await self._redis.eval_script(
                source("st_read"), [keys.session_by_st_token(token_hash)], []
            )
        if not found:
            return None
        state = codec.decode_state(as_bytes(found[1]) or b"", found[2])
        return state if state.st_token_hash == token_hash and not state.terminated else None

    async def read_states(self, session_ids: list[str]) -> list[SessionState | None]:
        """The full state of many live sessions (None where gone or terminated)."""
        found: list[SessionState | None] = []
        for start in range(0, len(session_ids), FETCH_CHUNK):
            chunk = session_ids[start : start + FETCH_CHUNK]
            with mapped_errors():
                docs = await self._redis.eval_script(
                    source("fetch_docs"), [keys.session(sid) for sid in chunk], []
                )
            found += [
                codec.decode_state(as_bytes(pair[0]) or b"", pair[1]) if pair else None
                for pair in docs
            ]
        return [state if state is None or not state.terminated else None for state in found]

    async def forget_eviction(self, session_id: str) -> None:
        with mapped_errors():
            await self._redis.execute("ZREM", keys.SESSIONS_TO_EVICT, session_id)

    async def pending_evictions(self, before_ms: int, limit: int) -> list[str]:
        with mapped_errors():
            raw = await self._redis.execute(
                "ZRANGEBYSCORE", keys.SESSIONS_TO_EVICT, "-inf", before_ms, "LIMIT", 0, limit
            )
        return [as_text(member) for member in raw]

    async def fetch_metas(self, session_ids: list[str]) -> list[SessionMeta | None]:
        """Summaries of many sessions, one script call per chunk (None where gone)."""
        found: list[SessionMeta | None] = []
        for start in range(0, len(session_ids), FETCH_CHUNK):
            chunk = session_ids[start : start + FETCH_CHUNK]
            with mapped_errors():
                rows = await self._redis.eval_script(
                    source("fetch"), [keys.session(sid) for sid in chunk], []
                )
            found += codec.summaries_from_rows(rows)
        return found

    async def index_range(
        self, index_key: str, min_ms: float, max_ms: float, *, descending: bool
    ) -> list[str]:
        """Session ids of an index by creation time, oldest or newest first."""
        with mapped_errors():
            if descending:
                raw = await self._redis.execute(
                    "ZREVRANGEBYSCORE", index_key, _score(max_ms), _score(min_ms)
                )
            else:
                raw = await self._redis.execute(
                    "ZRANGEBYSCORE", index_key, _score(min_ms), _score(max_ms)
                )
        return [as_text(member) for member in raw]

    async def index_page(
        self,
        index_key: str,
        min_ms: float,
        max_ms: float,
        *,
        offset: int,
        limit: int,
        descending: bool,
    ) -> tuple[int, list[str]]:
        """Count of an index's creation range and one page of it, in one round trip."""
        if descending:
            page = ("ZREVRANGEBYSCORE", index_key, _score(max_ms), _score(min_ms))
        else:
            page = ("ZRANGEBYSCORE", index_key, _score(min_ms), _score(max_ms))
        with mapped_errors():
            total, raw = await self._redis.execute_many(
                ("ZCOUNT", index_key, _score(min_ms), _score(max_ms)),
                (*page, "LIMIT", offset, limit),
            )
        return int(total), [as_text(member) for member in raw]

    async def forget(self, index_key: str, session_ids: list[str]) -> None:
        """Drop index entries whose session is gone (lazy repair when the sweeper lagged)."""
        if session_ids:
            with mapped_errors():
                await self._redis.execute("ZREM", index_key, *session_ids)

    async def search(
        self, query: SessionFilter, who: Caller, page: Page, now_ms: int
    ) -> tuple[int, list[SessionMeta]]:
        """ListSessions: see ``storage.session_search``."""
        return await session_search.search(self, query, who, page, now_ms)

    # -- expiry ------------------------------------------------------------------------
    async def purge_due(self, now_ms: int, limit: int = 200) -> int:
        """Purge sessions whose expiration + retention has passed; returns how many."""
        with mapped_errors():
            due = await self._redis.execute(
                "ZRANGEBYSCORE", keys.SESSIONS_BY_PURGE, "-inf", now_ms, "LIMIT", 0, limit
            )
        purged = 0
        for sid in (as_text(member) for member in due):
            purged += await self._purge_one(sid, now_ms)
        return purged

    async def _purge_one(self, session_id: str, now_ms: int) -> int:
        metas = await self.fetch_metas([session_id])
        meta = metas[0]
        index_keys = index_plan.all_of_summary(meta) if meta else [keys.SESSIONS_BY_CREATION]
        others = [key for key in index_keys if key != keys.SESSIONS_BY_PURGE]
        keys_ = [
            keys.session(session_id),
            keys.session_fence(session_id),
            keys.SESSIONS_BY_PURGE,
            *others,
        ]
        with mapped_errors():
            done = await self._redis.eval_script(
                source("purge"), keys_, [now_ms, self.retention_ms, session_id]
            )
        return int(done)


def _op_args(ops: list[IndexOp], index_keys: list[str], at_ms: int) -> list[Any]:
    position = {key: number for number, key in enumerate(index_keys, start=1)}
    out: list[Any] = []
    for op in ops:
        out += [op.op, position[op.key], op.score, op.member]
        if op.op == "cap":
            out += [op.limit, position[keys.SESSIONS_TO_EVICT], at_ms]
    return out


def _evicted(reply: object) -> list[str]:
    """The session ids after the previous sequence in a write script's reply."""
    if not isinstance(reply, list):
        return []
    return [as_text(member) for member in reply[1:]]


def _score(value: float) -> str | int:
    """ZRANGEBYSCORE bounds: integers, or the infinities spelled as Redis wants them."""
    if value == float("-inf"):
        return "-inf"
    if value == float("inf"):
        return "+inf"
    return int(value)
