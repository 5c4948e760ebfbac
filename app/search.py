"""ListSessions (POST /v2/sessions/search): plan the index scan, filter, page, splice.

The most selective index answers first (ids, user, creator, fingerprint, else all sessions
by creation); the creation-date range is a score range on any of them. When nothing else
needs checking and the caller may read every session, total and page come straight from the
index (ZCOUNT + a ranged read). Otherwise the candidates' summaries are fetched with one
script call per 500 and filtered here. ``totalResult`` counts only sessions the caller may
see (a deliberate difference from ZITADEL's classic backend, see docs/compat.md).
"""

from __future__ import annotations

from itertools import chain

import msgspec
from aiohttp import web

from actors.errors import InvalidArgument, ValidationFailed
from actors.permissions import Caller
from actors.queries import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    METHODS,
    SORT_CREATION_DATE,
    SORTING_COLUMNS,
    SessionFilter,
    SessionSummary,
    TimeCondition,
    creation_bounds,
    matches,
    needs_scan,
    retained,
    visible,
)
from actors.timefmt import rfc3339_ms
from app import wire
from app.appkeys import CLOCK, SESSIONS, SETTINGS
from app.http import caller, decode_body, respond_raw
from app.reads import current_views
from storage import keys

_ENCODER = msgspec.json.Encoder()


class Page(msgspec.Struct, frozen=True, kw_only=True):
    offset: int
    limit: int
    descending: bool


def _enum(value: str | int, names: dict[str, int], where: str) -> int:
    number = names.get(value) if isinstance(value, str) else value
    if number is None or number not in names.values():
        raise ValidationFailed(f"invalid {where}: value must be one of the defined enum values")
    return number


def _page(request: wire.ListSessionsRequest) -> Page:
    query = request.query or wire.ListQuery()
    limit = query.limit or DEFAULT_LIMIT
    if limit > MAX_LIMIT:
        raise InvalidArgument("QUERY-4M0fs", "Errors.Query.LimitExceeded")
    sort = _enum(request.sorting_column, SORTING_COLUMNS, "ListSessionsRequest.SortingColumn")
    descending = not (sort == SORT_CREATION_DATE and query.asc)
    return Page(offset=query.offset, limit=limit, descending=descending)


def _time(raw: wire.TimestampQuery, field: str) -> TimeCondition:
    value = raw.creation_date if field == "creationDate" else raw.expiration_date
    at_ms = wire.timestamp_ms(value, f"{field}Query.{field}")
    return TimeCondition(_enum(raw.method, METHODS, f"{field}Query.Method"), at_ms)


def _one(current: str | None, new: str) -> str:
    """Two different values for one attribute can never both match: ANDed, nothing does."""
    return new if current in (None, new) else "\x00no-match"


def to_filter(queries: list[wire.SearchQuery], who: Caller) -> SessionFilter:
    fields: dict[str, object] = {"creation": (), "expiration": ()}
    for query in queries:
        kinds = [name for name in query.__struct_fields__ if getattr(query, name) is not None]
        if len(kinds) != 1:
            raise ValidationFailed("invalid SearchQuery.Query: value is required")
        if query.ids_query is not None:
            ids = frozenset(query.ids_query.ids)
            old = fields.get("ids")
            fields["ids"] = ids & old if isinstance(old, frozenset) else ids
        elif query.user_id_query is not None:
            fields["user_id"] = _one(_str(fields, "user_id"), query.user_id_query.id)
        elif query.creator_query is not None:
            creator = _given_or_own(
                query.creator_query.id, who.user_id, "CreatorQuery.Id", "GRPC-x8n24uh"
            )
            fields["creator_id"] = _one(_str(fields, "creator_id"), creator)
        elif query.user_agent_query is not None:
            agent = _given_or_own(
                query.user_agent_query.fingerprint_id,
                who.agent_id,
                "UserAgentQuery.FingerprintId",
                "GRPC-x8n23uh",
            )
            fields["fingerprint_id"] = _one(_str(fields, "fingerprint_id"), agent)
        elif query.creation_date_query is not None:
            fields["creation"] = (
                *fields["creation"],  # type: ignore[misc]
                _time(query.creation_date_query, "creationDate"),
            )
        elif query.expiration_date_query is not None:
            fields["expiration"] = (
                *fields["expiration"],  # type: ignore[misc]
                _time(query.expiration_date_query, "expirationDate"),
            )
    return msgspec.convert(fields, SessionFilter)


def _str(fields: dict[str, object], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def _given_or_own(wanted: str | None, own: str, field: str, error_id: str) -> str:
    """``{}`` means "mine" (the caller's user or user agent); ``""`` is invalid (spec §6.1)."""
    if wanted == "":
        raise ValidationFailed(
            f"invalid {field}: value length must be between 1 and 200 runes, inclusive"
        )
    if wanted is None:
        if not own:
            raise InvalidArgument(error_id, "List.Query.Invalid")
        return own
    return wanted


def _index(query: SessionFilter) -> str:
    if query.user_id is not None:
        return keys.sessions_of_user(query.user_id)
    if query.creator_id is not None:
        return keys.sessions_of_creator(query.creator_id)
    if query.fingerprint_id is not None:
        return keys.sessions_of_fingerprint(query.fingerprint_id)
    return keys.SESSIONS_BY_CREATION


def candidate_indexes(query: SessionFilter, who: Caller) -> list[str]:
    """The indexes that can hold every session this caller may see for this query.

    Never all sessions for a caller who may not read all of them: otherwise a plain user
    listing their own sessions would fetch the whole instance.
    """
    index = _index(query)
    if index != keys.SESSIONS_BY_CREATION or who.has("session.read"):
        return [index]
    found = [keys.sessions_of_org(org) for org in who.orgs_with("session.read")]
    if who.user_id:
        found += [keys.sessions_of_user(who.user_id), keys.sessions_of_creator(who.user_id)]
    if who.agent_id:
        found.append(keys.sessions_of_fingerprint(who.agent_id))
    return found


async def list_sessions(request: web.Request) -> web.Response:
    body = await decode_body(request, wire.ListSessionsRequest)
    who = caller(request)
    query = to_filter(body.queries, who)
    page = _page(body)
    now_ms = request.app[CLOCK].now_ms()
    if not needs_scan(query) and who.has("session.read"):
        total, shown = await _from_index(request.app, query, page, now_ms)
    else:
        found = await _scan(request.app, query, who, page, now_ms)
        total, shown = len(found), found[page.offset : page.offset + page.limit]
    views = await current_views(request.app, shown)
    details = wire.ListDetails(
        total_result=str(total) if total else "0", timestamp=rfc3339_ms(now_ms)
    )
    head = b'{"details":' + _ENCODER.encode(details)
    if not views:
        return respond_raw(head + b"}")
    return respond_raw(b"".join((head, b',"sessions":[', b",".join(views), b"]}")))


async def _from_index(
    app: web.Application, query: SessionFilter, page: Page, now_ms: int
) -> tuple[int, list[SessionSummary]]:
    store = app[SESSIONS]
    index = _index(query)
    low, high = creation_bounds(query.creation)
    total, ids = await store.index_page(
        index, low, high, offset=page.offset, limit=page.limit, descending=page.descending
    )
    summaries = await _live(app, index, ids, now_ms)
    return total - (len(ids) - len(summaries)), summaries


async def _scan(
    app: web.Application, query: SessionFilter, who: Caller, page: Page, now_ms: int
) -> list[SessionSummary]:
    store = app[SESSIONS]
    low, high = creation_bounds(query.creation)
    indexes = candidate_indexes(query, who)
    if query.ids is not None and _index(query) == keys.SESSIONS_BY_CREATION:
        ids = sorted(query.ids)[: MAX_LIMIT * 10]
        summaries = await _live(app, None, ids, now_ms)
    elif len(indexes) == 1:
        ids = await store.index_range(indexes[0], low, high, descending=page.descending)
        summaries = await _live(app, indexes[0], ids, now_ms)
    else:
        ranges = [await store.index_range(i, low, high, descending=False) for i in indexes]
        summaries = await _live(app, None, list(dict.fromkeys(chain(*ranges))), now_ms)
    found = [s for s in summaries if matches(s, query) and visible(s, who)]
    found.sort(key=lambda s: (s.creation_ms, s.session_id), reverse=page.descending)
    return found


async def _live(
    app: web.Application, index: str | None, ids: list[str], now_ms: int
) -> list[SessionSummary]:
    """Summaries of sessions that still exist; index entries of vanished ones are dropped."""
    retention_ms = app[SETTINGS].expired_retention_ms
    fetched = await app[SESSIONS].fetch_metas(ids)
    live: list[SessionSummary] = []
    gone: list[str] = []
    for sid, summary in zip(ids, fetched, strict=True):
        if summary is None:
            gone.append(sid)
        elif not summary.terminated and (
            summary.expiration_ms is None or retained(summary, now_ms, retention_ms)
        ):
            live.append(summary)
    if gone and index is not None:
        await app[SESSIONS].forget(index, gone)
    return live
