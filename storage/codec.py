"""Session state ⇄ Redis hash fields and stream entries, and the index changes of a commit.

The hash keeps the state as one MessagePack document (``doc``, for the writer; its token hash
lives only in ``tok``, which bearer checks read without the document), a summary ``row`` for
readers (the fields listings filter on, with the client view embedded as raw JSON that is
spliced into responses without re-decoding), the sequence and the expiration the purge script
reads. Pure: no Redis here.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from actors import views
from actors.events import Event, event_type, stream_payload
from actors.model import SessionState
from actors.queries import SessionSummary as SessionMeta
from actors.timefmt import rfc3339_ms
from storage import index_plan, keys

_VIEW_ENCODER = msgspec.json.Encoder()
#: The writer's document is MessagePack: 15% smaller than JSON and never parsed by Lua.
_STATE_ENCODER = msgspec.msgpack.Encoder()
_STATE_DECODER = msgspec.msgpack.Decoder(SessionState)
#: Documents written before MessagePack are JSON objects; a JSON object starts with ``{``,
#: which MessagePack spends on a positive integer, never on a whole document.
_LEGACY_STATE_DECODER = msgspec.json.Decoder(SessionState)
_PAYLOAD_ENCODER = msgspec.json.Encoder()
_SHA256_BYTES = 32

#: Hash fields read for a single session (GetSession, bearer checks): its summary row and
#: the tombstone flag. Listing reads only ``row`` (a tombstone has none).
META_FIELDS = ("row", "term")
_SUMMARY_ENCODER = msgspec.json.Encoder()
_SUMMARY_DECODER = msgspec.json.Decoder(SessionMeta)
_SUMMARIES_DECODER = msgspec.json.Decoder(list[SessionMeta])


def as_bytes(value: object) -> bytes | None:
    """redis-py types replies as ``bytes | str``; our client always returns bytes."""
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def as_text(value: object) -> str:
    if isinstance(value, bytes):  # what our client returns: skip the as_bytes round
        return value.decode()
    raw = as_bytes(value)
    return raw.decode() if raw else ""


def meta_from_fields(session_id: str, values: list[bytes | None]) -> SessionMeta | None:
    """HMGET of ``META_FIELDS`` → summary, a terminated marker, or None for a missing session."""
    row, term = values
    if term:
        return SessionMeta(
            session_id=session_id,
            wire=msgspec.Raw(b""),
            user_id="",
            org_id="",
            creator_id="",
            fingerprint_id="",
            creation_ms=0,
            expiration_ms=None,
            view_version=0,
            password_ms=None,
            terminated=True,
        )
    return _SUMMARY_DECODER.decode(row) if row else None


def summaries_from_rows(rows: list[bytes | None]) -> list[SessionMeta | None]:
    """The ``row`` of many sessions (None where gone), decoded in one msgspec call."""
    present = [row for row in rows if row]
    if not present:
        return [None] * len(rows)
    decoded = iter(_SUMMARIES_DECODER.decode(b"[" + b",".join(present) + b"]"))
    return [next(decoded) if row else None for row in rows]


def summary_row(state: SessionState) -> bytes:
    """A live session's summary row, its rendered view embedded as raw JSON."""
    ua = state.user_agent
    password = state.factors.password
    user = state.factors.user
    return _SUMMARY_ENCODER.encode(
        SessionMeta(
            session_id=state.id,
            wire=msgspec.Raw(_VIEW_ENCODER.encode(views.render(state))),
            user_id=state.user_id or "",
            org_id=state.user_org_id or "",
            creator_id=state.creator_id,
            fingerprint_id=(ua.fingerprint_id or "") if ua else "",
            creation_ms=state.creation_ms,
            expiration_ms=state.expires_ms,
            view_version=user.view_version if user else 0,
            password_ms=password.verified_at_ms if password else None,
            second_factor_ms=state.factors.second_factor_ms,
            passkey_ms=state.factors.passkey_ms,
            intent_ms=state.factors.intent_ms,
        )
    )


def encode_state(state: SessionState) -> bytes:
    """The document without the token hash: the hash's ``tok`` field holds it once."""
    return _STATE_ENCODER.encode(msgspec.structs.replace(state, token_hash=""))


def decode_state(raw: bytes, token_hash: object) -> SessionState:
    """The document of ``encode_state`` with the ``tok`` field it was stored beside."""
    decoder = _LEGACY_STATE_DECODER if raw[:1] == b"{" else _STATE_DECODER
    state = decoder.decode(raw)
    return msgspec.structs.replace(state, token_hash=token_from_field(token_hash))


def token_field(token_hash: str) -> bytes:
    """The token's SHA-256 as its 32 bytes: half the 64 hex characters it is everywhere else."""
    if len(token_hash) == 2 * _SHA256_BYTES:
        try:
            return bytes.fromhex(token_hash)
        except ValueError:  # not a SHA-256 in hex: kept as it is
            pass
    return token_hash.encode()


def token_from_field(value: object) -> str:
    """The ``tok`` field as hex; a hash written before ``token_field`` is hex already."""
    raw = as_bytes(value) or b""
    return raw.hex() if len(raw) == _SHA256_BYTES else raw.decode()


def state_fields(state: SessionState) -> dict[str, bytes | str | int]:
    """The hash of a live session; a terminated one gets ``tombstone_fields`` instead."""
    return {
        "doc": encode_state(state),
        "row": summary_row(state),
        "seq": state.sequence,
        "exp": state.expires_ms if state.expires_ms is not None else "",  # purge.lua
        "tok": token_field(state.token_hash),
    }


def tombstone_fields(state: SessionState) -> dict[str, bytes | str | int]:
    """What stays of a terminated session: enough to answer "terminated" and be idempotent."""
    return {
        "term": 1,
        "seq": state.sequence,
        "tok": token_field(state.token_hash),
        "doc": encode_state(state),
    }


class IndexOp(msgspec.Struct, frozen=True, array_like=True):
    """One idempotent step of a commit on a key outside the session's own.

    ``zadd`` / ``zrem`` an index member; ``cap``: ZADD, then move the lowest-scored other
    members beyond ``limit`` to ``idx:sessions:evict`` (the script replies with them); an
    op with a ``source`` on a key that does not exist first copies ``source`` (same slot) in;
    ``set``: the member under the key, expiring at ``score`` ms (0: never); ``del``: the key,
    if it still holds the member; ``sadd`` / ``srem`` a set member; ``hset``: a hash's fields
    (``member``: a JSON list of field/value pairs), expiring at ``score`` ms (0: never).
    """

    op: Literal["zadd", "zrem", "cap", "set", "del", "sadd", "srem", "hset"]
    key: str
    score: int
    member: str
    limit: int = 0
    source: str = ""


def purge_at_ms(state: SessionState, retention_ms: int) -> int | None:
    expires = state.expires_ms
    return expires + retention_ms if expires is not None else None


def index_ops(
    before: SessionState | None,
    after: SessionState,
    retention_ms: int,
    *,
    cap: int = 0,
    expire_at_ms: int = 0,
) -> list[IndexOp]:
    """The steps that move the indexes from ``before`` to ``after`` (idempotent ops).

    ``cap``: the per-user session cap (0: none), applied when the session gains its user;
    ``expire_at_ms``: when the session's keys expire (the PingOne token key follows them).
    """
    sid = after.id
    if after.terminated:
        gone = index_plan.of_state(before) if before is not None else []
        ops = [IndexOp("zrem", key, 0, sid) for key in [*gone, keys.sessions_by_purge(sid)]]
        if before is not None and before.user_id:
            ops.append(IndexOp("zrem", keys.active_sessions_of_user(before.user_id), 0, sid))
        if before is not None and before.st_token_hash:
            ops.append(IndexOp("del", keys.session_by_st_token(before.st_token_hash), 0, sid))
        return ops
    old = set(index_plan.of_state(before)) if before is not None else set()
    ops = [
        IndexOp("zadd", key, after.creation_ms, sid)
        for key in index_plan.of_state(after)
        if key not in old
    ]
    purge_at = purge_at_ms(after, retention_ms)
    if purge_at is not None and purge_at != (purge_at_ms(before, retention_ms) if before else None):
        ops.append(IndexOp("zadd", keys.sessions_by_purge(sid), purge_at, sid))
    ops += _activity_ops(before, after, cap)
    ops += _st_token_ops(before, after, expire_at_ms)
    return ops


def _activity_ops(before: SessionState | None, after: SessionState, cap: int) -> list[IndexOp]:
    """The per-user activity index, kept only while a cap reads it (130 B per session).

    A cap switched on later seeds a user's index from their sessions index on the first op
    that reaches it, a create or an activity update (scored by creation until each is
    active again).
    """
    user_id = after.user_id
    if not user_id or cap <= 0:
        return []
    key = keys.active_sessions_of_user(user_id)
    seed = keys.sessions_of_user(user_id)
    active = after.last_active_ms
    if before is None or before.user_id != user_id:
        return [IndexOp("cap", key, active, after.id, cap, seed)]
    if before.last_active_ms != active:
        return [IndexOp("zadd", key, active, after.id, source=seed)]
    return []


def _st_token_ops(
    before: SessionState | None, after: SessionState, expire_at_ms: int
) -> list[IndexOp]:
    """The token key follows the session's expiry, so it is rewritten with every commit."""
    ops: list[IndexOp] = []
    old = before.st_token_hash if before is not None else ""
    if old and old != after.st_token_hash:
        ops.append(IndexOp("del", keys.session_by_st_token(old), 0, after.id))
    if after.st_token_hash:
        key = keys.session_by_st_token(after.st_token_hash)
        ops.append(IndexOp("set", key, expire_at_ms, after.id))
    return ops


class StreamContext(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    creator_id: str
    at_ms: int


def stream_entries(
    events: list[Event], first_sequence: int, session_id: str, ctx: StreamContext
) -> list[dict[str, str]]:
    """ZITADEL's event envelope per event; all events of one write share one timestamp."""
    created_at = rfc3339_ms(ctx.at_ms)
    return [
        {
            "type": event_type(event),
            "aggregateType": "session",
            "aggregateId": session_id,
            "aggregateVersion": "v1",
            "sequence": str(first_sequence + offset),
            "instanceId": ctx.instance_id,
            "resourceOwner": ctx.instance_id,
            "creator": ctx.creator_id,
            "createdAt": created_at,
            "payload": _PAYLOAD_ENCODER.encode(stream_payload(event, ctx.at_ms)).decode(),
        }
        for offset, event in enumerate(events)
    ]
