"""RedisSessionStore: the session side of storage (implements ``actors.ports.SessionStore``).

Writes go through one Lua script each (create/commit/purge) that touches only the session's
own hash slot; the commit's effects elsewhere (events, indexes, delivery jobs) are recorded
with it and applied by ``storage.relay`` right after. Reads are single HMGETs or one ``fetch``
call for many sessions, and check each session's own state, never trusting an index alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from actors.delivery import DeliveryJob
from actors.errors import Aborted, AlreadyExists, LeaseLost, ServiceError
from actors.events import Event
from actors.model import SessionState
from actors.permissions import Caller
from actors.ports import Acquired, Lease
from actors.queries import Page, SessionFilter
from actors.queries import SessionSummary as SessionMeta
from storage import codec, index_plan, keys, session_search
from storage.client import RedisClient
from storage.cluster import slot_of
from storage.codec import IndexOp, StreamContext, as_bytes, as_text
from storage.errors import ScriptRefused, mapped_errors
from storage.name_claims import CLAIM_TTL_MS, WRITE_DEADLINE_MS
from storage.outbox import job_fields
from storage.relay import Relay, RelayEntry, encode, to_the_end, victims_of
from storage.scripts import source

#: Keys outlive ``expiration + retention`` by this much; the sweeper purges them at that
#: moment and reads hide them, so this is only the backstop when no sweeper ran.
PURGE_GRACE_MS = 600_000
FETCH_CHUNK = 500


class RedisSessionStore:
    def __init__(
        self,
        redis: RedisClient,
        *,
        instance_id: str,
        retention_ms: int,
        partitions: int,
        stream_maxlen: int,
        lease_ttl_ms: int,
        max_sessions_per_user: int = 0,
        observe_relay: Callable[[str, float], None] | None = None,
    ) -> None:
        self._redis = redis
        self._cap = max_sessions_per_user
        self._lease_ttl_ms = lease_ttl_ms
        #: a cluster: a script reads one slot, so many-key reads go one script per key
        self._split = bool(getattr(redis, "splits_by_slot", False))
        self.instance_id = instance_id
        self.retention_ms = retention_ms
        self.relay = Relay(
            redis,
            partitions=partitions,
            stream_maxlen=stream_maxlen,
            split_by_slot=self._split,
            observe_lag=observe_relay,
        )

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
        async with self._token_claim(None, state) as deadline:
            args, entry, blob = self._write_args(
                None, state, events, at_ms, creator_id, jobs, "", deadline
            )
            keys_ = [
                keys.session(sid),
                keys.session_fence(sid),
                keys.session_relay(sid),
                keys.relay_pending(slot_of(keys.session(sid))),
            ]
            return await self._write("create", keys_, args, entry, blob)

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
        owner = lease.owner if release else ""
        async with self._token_claim(before, after) as deadline:
            args, entry, blob = self._write_args(
                before, after, events, at_ms, creator_id, jobs, owner, deadline
            )
            keys_ = [
                keys.session_lease(sid),
                keys.session(sid),
                keys.session_fence(sid),
                keys.session_relay(sid),
                keys.relay_pending(slot_of(keys.session(sid))),
            ]
            lease_args: list[Any] = [lease.owner, lease.fence, self._lease_ttl_ms]
            try:
                return await self._write("commit", keys_, [*lease_args, *args], entry, blob)
            except ScriptRefused as exc:
                raise LeaseLost(sid) from exc

    async def _write(
        self, script: str, keys_: list[str], args: list[Any], entry: RelayEntry, blob: bytes
    ) -> list[str]:
        """The write script, then the writer's relay pass; on one node both in one write.

        The pass sent with the script applies only if the script recorded exactly its entry
        (relay_apply.lua checks), so a refused write changes nothing there either.
        """
        relay_call = self.relay.writer_call(entry, blob)
        if relay_call is None:  # a cluster: the pass is a second call, never cut off
            return await to_the_end(self._script_then_relay(script, keys_, args, entry, blob))
        calls = [(source(script), keys_, args), (source("relay_apply"), *relay_call)]
        with mapped_errors():
            written, relayed = await self._redis.eval_chain(calls)
            if isinstance(written, BaseException):
                raise written
        if not isinstance(relayed, BaseException):
            victims = victims_of(relayed)
            if victims is not None:
                self.relay.observe(entry)
                return victims
        return await to_the_end(self._relay_now(entry, blob, int(written[1])))

    async def _script_then_relay(
        self, script: str, keys_: list[str], args: list[Any], entry: RelayEntry, blob: bytes
    ) -> list[str]:
        with mapped_errors():
            reply = await self._redis.eval_script(source(script), keys_, args)
        return await self._relay_now(entry, blob, int(reply[1]))

    async def _relay_now(self, entry: RelayEntry, blob: bytes, recorded: int) -> list[str]:
        """The writer's own relay pass; a failure leaves the entry to the repair."""
        victims = await self.relay.settle(entry, blob, recorded)
        if victims is not None:
            return victims
        if entry.release_owner:  # the clearing step would have released it
            with contextlib.suppress(ServiceError, RedisError), mapped_errors():
                await self._redis.eval_script(
                    source("release"), [keys.session_lease(entry.session_id)], [entry.release_owner]
                )
        return []

    @contextlib.asynccontextmanager
    async def _token_claim(
        self, before: SessionState | None, after: SessionState
    ) -> AsyncIterator[int]:
        """The token claim a write needs (its deadline); freed if the script refuses the write.

        Only a refusal frees it: after a lost reply the write may have landed.
        """
        deadline = await self._claim_token(before, after)
        try:
            yield deadline
        except (ScriptRefused, AlreadyExists, Aborted):
            if deadline:
                key = keys.session_by_st_token(after.st_token_hash)
                with contextlib.suppress(ServiceError, RedisError), mapped_errors():
                    await self._redis.eval_script(source("release"), [key], ["~" + after.id])
            raise

    async def _claim_token(self, before: SessionState | None, after: SessionState) -> int:
        """Claim a new PingOne token's key before the write: one token, one session.

        The key lives in its own slot, so it is claimed first, *pending* (``claim.lua``), and
        the relay confirms it after the write. The write must land by the returned deadline
        (server ms; 0: nothing claimed now), so it never commits on a claim that may have
        expired. A pending claim of another session is a write in flight (or a dead writer's,
        which expires): refused, like a live owner's. A confirmed claim whose owner no longer
        holds the token (ended, or its writer died after the claim was confirmed elsewhere) is
        taken over.
        """
        token = after.st_token_hash
        if not token or after.terminated or (before is not None and before.st_token_hash == token):
            return 0
        key = keys.session_by_st_token(token)
        stale = ""
        for _ in range(3):
            with mapped_errors():
                reply = await self._redis.eval_script(
                    source("claim"), [key], [after.id, CLAIM_TTL_MS, stale]
                )
            holder = as_text(reply[0])
            if not holder:
                return int(reply[1]) + WRITE_DEADLINE_MS
            if holder.startswith("~") or await self._holds_token(holder, token):
                break
            stale = holder
        raise AlreadyExists("SESSION-stTaken", "the session token is in use by another session")

    async def _holds_token(self, session_id: str, token: str) -> bool:
        owner = await self.read_state(session_id)
        return owner is not None and not owner.terminated and owner.st_token_hash == token

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
        release_owner: str,
        claim_deadline_ms: int = 0,
    ) -> tuple[list[Any], RelayEntry, bytes]:
        """The write script's arguments, the relay entry they record, and its encoding."""
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
        # the commit's last sequence names its entry; a commit without events cannot clash
        # with the previous one's still-recorded entry
        field = str(first_seq + len(entries) - 1) if entries else f"{first_seq - 1}+{at_ms}"
        entry = RelayEntry(
            session_id=after.id,
            field=field,
            at_ms=at_ms,
            events=[[part for pair in e.items() for part in pair] for e in entries],
            ops=ops,
            jobs=[job_fields(job) for job in jobs],
            release_owner=release_owner,
        )
        args: list[Any] = [
            str(before.sequence) if before else "",
            1 if after.terminated else 0,
            expire_at,
            len(fields),
        ]
        for name, value in fields.items():
            args += [name, value]
        blob = encode(entry)
        args += [entry.field, blob, at_ms, after.id, claim_deadline_ms]
        return args, entry, blob

    # -- reads -------------------------------------------------------------------------
    async def read_meta(self, session_id: str) -> tuple[SessionMeta | None, str]:
        """The session's read fields and its current token hash (one round trip)."""
        with mapped_errors():
            values = await self._redis.execute(
                "HMGET", keys.session(session_id), *codec.META_FIELDS, "tok"
            )
        meta = codec.meta_from_fields(session_id, [as_bytes(v) for v in values[:-1]])
        token_hash = codec.token_from_field(values[-1])
        return meta, token_hash

    async def read_state(self, session_id: str) -> SessionState | None:
        with mapped_errors():
            doc, tok = await self._redis.execute("HMGET", keys.session(session_id), "doc", "tok")
        raw = as_bytes(doc)
        return codec.decode_state(raw, tok) if raw else None

    async def read_by_st_token(self, token_hash: str) -> SessionState | None:
        """The session a PingOne token names, if its own state still holds that token."""
        token_key = keys.session_by_st_token(token_hash)
        found: list[Any] | None = None
        with mapped_errors():
            if not self._split:
                found = await self._redis.eval_script(source("st_read"), [token_key], [])
            elif sid := as_text(await self._redis.execute("GET", token_key)).removeprefix("~"):
                # the token's key and the session's are in different slots: two reads
                # (a pending claim names its owner too: its state decides)
                doc_tok = await self._redis.execute("HMGET", keys.session(sid), "doc", "tok")
                found = [sid, *doc_tok]
        if not found or not found[1]:
            return None
        state = codec.decode_state(as_bytes(found[1]) or b"", found[2])
        return state if state.st_token_hash == token_hash and not state.terminated else None

    async def read_states(self, session_ids: list[str]) -> list[SessionState | None]:
        """The full state of many live sessions (None where gone or terminated)."""
        found: list[SessionState | None] = []
        for start in range(0, len(session_ids), FETCH_CHUNK):
            chunk = session_ids[start : start + FETCH_CHUNK]
            docs = await self._fetch("fetch_docs", chunk)
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
            rows = await self._fetch("fetch", chunk)
            found += codec.summaries_from_rows(rows)
        return found

    async def _fetch(self, script: str, session_ids: list[str]) -> list[Any]:
        """A read script over many sessions: one call, or one per session on a cluster."""
        session_keys = [keys.session(sid) for sid in session_ids]
        with mapped_errors():
            if not self._split:
                return list(await self._redis.eval_script(source(script), session_keys, []))
            calls: list[tuple[list[str], list[Any]]] = [([key], []) for key in session_keys]
            return [reply[0] for reply in await self._redis.eval_many(source(script), calls)]

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
        """Purge sessions whose expiration + retention has passed; returns how many.

        Reads every purge schedule at once (on a cluster each primary serves its share),
        at most ``limit`` sessions from each.
        """
        schedules = keys.purge_schedules()
        with mapped_errors():
            found = await asyncio.gather(
                *(
                    self._redis.execute("ZRANGEBYSCORE", key, "-inf", now_ms, "LIMIT", 0, limit)
                    for key in schedules
                )
            )
        purged = 0
        for schedule, due in zip(schedules, found, strict=True):
            for sid in (as_text(member) for member in due):
                purged += await self._purge_one(sid, schedule, now_ms)
        return purged

    async def _purge_one(self, session_id: str, schedule: str, now_ms: int) -> int:
        """Purge one session found due in ``schedule`` (its own, or the earlier versions')."""
        metas = await self.fetch_metas([session_id])
        meta = metas[0]
        own = keys.sessions_by_purge(session_id)
        index_keys = index_plan.all_of_summary(meta) if meta else [keys.SESSIONS_BY_CREATION, own]
        if schedule not in index_keys:
            index_keys.append(schedule)
        entry = RelayEntry(
            session_id=session_id,
            field="purge",
            at_ms=now_ms,
            events=[],
            ops=[IndexOp("zrem", key, 0, session_id) for key in index_keys],
            jobs=[],
        )
        keys_ = [
            keys.session(session_id),
            keys.session_fence(session_id),
            keys.session_relay(session_id),
            keys.relay_pending(slot_of(keys.session(session_id))),
        ]
        blob = encode(entry)
        args: list[Any] = [now_ms, self.retention_ms, session_id, entry.field, blob]
        with mapped_errors():
            done = await self._redis.eval_script(source("purge"), keys_, args)
        if done == 1:
            await self._relay_now(entry, blob, 1)
            return 1
        with mapped_errors():  # not due: the schedule follows the session's own expiry
            if isinstance(done, list):
                await self._redis.execute("ZADD", own, done[0], session_id)
            if schedule != own or not isinstance(done, list):
                await self._redis.execute("ZREM", schedule, session_id)
        return 0

    async def repair_relay(self, now_ms: int) -> int:
        """Apply the commits a crashed writer left unrelayed; how many sessions had some."""
        return await self.relay.repair(now_ms)


def _score(value: float) -> str | int:
    """ZRANGEBYSCORE bounds: integers, or the infinities spelled as Redis wants them."""
    if value == float("-inf"):
        return "-inf"
    if value == float("inf"):
        return "+inf"
    return int(value)
