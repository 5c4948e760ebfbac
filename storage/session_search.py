"""ListSessions against the indexes: plan the scan, filter, page.

When nothing but the index's creation range needs checking and the caller may read every
session, total and page come straight from the index (ZCOUNT + a ranged read). Otherwise the
candidates' summaries are fetched with one script call per 500 and filtered with the pure
rules of ``actors.queries``. ``total`` counts only sessions the caller may see (a deliberate
difference from ZITADEL's classic backend, see docs/compat.md). Index entries of sessions
that are gone are dropped on the way (lazy repair when the sweeper lagged).
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

from actors.permissions import Caller
from actors.queries import (
    MAX_LIMIT,
    Page,
    SessionFilter,
    SessionSummary,
    creation_bounds,
    matches,
    needs_scan,
    retained,
    visible,
)
from storage import keys
from storage.index_plan import candidate_indexes, query_index

if TYPE_CHECKING:
    from storage.sessions import RedisSessionStore


async def search(
    store: RedisSessionStore, query: SessionFilter, who: Caller, page: Page, now_ms: int
) -> tuple[int, list[SessionSummary]]:
    """The number of matches the caller may see and one page of them."""
    if not needs_scan(query) and who.has("session.read"):
        return await _from_index(store, query, page, now_ms)
    found = await _scan(store, query, who, page, now_ms)
    return len(found), found[page.offset : page.offset + page.limit]


async def _from_index(
    store: RedisSessionStore, query: SessionFilter, page: Page, now_ms: int
) -> tuple[int, list[SessionSummary]]:
    index = query_index(query)
    low, high = creation_bounds(query.creation)
    total, ids = await store.index_page(
        index, low, high, offset=page.offset, limit=page.limit, descending=page.descending
    )
    summaries = await _live(store, index, ids, now_ms)
    return total - (len(ids) - len(summaries)), summaries


async def _scan(
    store: RedisSessionStore, query: SessionFilter, who: Caller, page: Page, now_ms: int
) -> list[SessionSummary]:
    low, high = creation_bounds(query.creation)
    indexes = candidate_indexes(query, who)
    if query.ids is not None and query_index(query) == keys.SESSIONS_BY_CREATION:
        ids = sorted(query.ids)[: MAX_LIMIT * 10]
        summaries = await _live(store, None, ids, now_ms)
    elif len(indexes) == 1:
        ids = await store.index_range(indexes[0], low, high, descending=page.descending)
        summaries = await _live(store, indexes[0], ids, now_ms)
    else:
        ranges = [await store.index_range(i, low, high, descending=False) for i in indexes]
        summaries = await _live(store, None, list(dict.fromkeys(chain(*ranges))), now_ms)
    found = [s for s in summaries if matches(s, query) and visible(s, who)]
    found.sort(key=lambda s: (s.creation_ms, s.session_id), reverse=page.descending)
    return found


async def _live(
    store: RedisSessionStore, index: str | None, ids: list[str], now_ms: int
) -> list[SessionSummary]:
    """Summaries of sessions that still exist; index entries of vanished ones are dropped."""
    fetched = await store.fetch_metas(ids)
    live: list[SessionSummary] = []
    gone: list[str] = []
    for sid, summary in zip(ids, fetched, strict=True):
        if summary is None:
            gone.append(sid)
        elif not summary.terminated and (
            summary.expiration_ms is None or retained(summary, now_ms, store.retention_ms)
        ):
            live.append(summary)
    if gone and index is not None:
        await store.forget(index, gone)
    return live
