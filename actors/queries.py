"""ListSessions semantics (spec §6): filters, visibility and ordering over session summaries.

Pure. Storage turns index entries into ``SessionSummary`` values; these functions decide
which of them the caller sees and in which order.
"""

from __future__ import annotations

import msgspec

from actors.permissions import Caller

EQUALS, GREATER, GREATER_OR_EQUALS, LESS, LESS_OR_EQUALS = range(5)
METHODS = {
    "TIMESTAMP_QUERY_METHOD_EQUALS": EQUALS,
    "TIMESTAMP_QUERY_METHOD_GREATER": GREATER,
    "TIMESTAMP_QUERY_METHOD_GREATER_OR_EQUALS": GREATER_OR_EQUALS,
    "TIMESTAMP_QUERY_METHOD_LESS": LESS,
    "TIMESTAMP_QUERY_METHOD_LESS_OR_EQUALS": LESS_OR_EQUALS,
}
SORT_UNSPECIFIED, SORT_CREATION_DATE = 0, 1
SORTING_COLUMNS = {
    "SESSION_FIELD_NAME_UNSPECIFIED": SORT_UNSPECIFIED,
    "SESSION_FIELD_NAME_CREATION_DATE": SORT_CREATION_DATE,
}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class SessionSummary(msgspec.Struct, frozen=True, kw_only=True, array_like=True, gc=False):
    """What a listing needs of a stored session, without decoding its document.

    Stored as one compact JSON array per session (``array_like``) with the client view
    embedded as raw JSON, so a page of summaries is decoded in one call and each view is
    spliced into the response as it is (``wire`` is a ``msgspec.Raw`` slice).
    """

    session_id: str
    wire: msgspec.Raw
    user_id: str
    org_id: str
    creator_id: str
    fingerprint_id: str
    creation_ms: int
    expiration_ms: int | None
    view_version: int
    password_ms: int | None
    terminated: bool = False
    #: When a second factor was last checked (the bearer rule); None: never.
    second_factor_ms: int | None = None
    #: When a user-verified WebAuthn assertion was checked: a login on its own.
    passkey_ms: int | None = None
    #: When an IdP intent was checked: a login on its own too.
    intent_ms: int | None = None


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """Which slice of the matches a listing returns, and in which order."""

    offset: int
    limit: int
    descending: bool


class TimeCondition(msgspec.Struct, frozen=True):
    method: int
    at_ms: int


class SessionFilter(msgspec.Struct, frozen=True, kw_only=True):
    """All queries of one request, ANDed."""

    ids: frozenset[str] | None = None
    user_id: str | None = None
    creator_id: str | None = None
    fingerprint_id: str | None = None
    creation: tuple[TimeCondition, ...] = ()
    expiration: tuple[TimeCondition, ...] = ()


def compare(method: int, value: int, at_ms: int) -> bool:
    if method == GREATER:
        return value > at_ms
    if method == GREATER_OR_EQUALS:
        return value >= at_ms
    if method == LESS:
        return value < at_ms
    if method == LESS_OR_EQUALS:
        return value <= at_ms
    return value == at_ms


def expiration_matches(condition: TimeCondition, expiration_ms: int | None) -> bool:
    """Sessions without expiration never expire: they match GREATER(_OR_EQUALS) only."""
    if expiration_ms is None:
        return condition.method in (GREATER, GREATER_OR_EQUALS)
    return compare(condition.method, expiration_ms, condition.at_ms)


def creation_bounds(conditions: tuple[TimeCondition, ...]) -> tuple[float, float]:
    """Inclusive creation-time range that the index scan can use (ms are integers)."""
    low, high = float("-inf"), float("inf")
    for cond in conditions:
        at = cond.at_ms
        if cond.method in (EQUALS, GREATER_OR_EQUALS):
            low = max(low, at)
        if cond.method in (EQUALS, LESS_OR_EQUALS):
            high = min(high, at)
        if cond.method == GREATER:
            low = max(low, at + 1)
        if cond.method == LESS:
            high = min(high, at - 1)
    return low, high


def matches(summary: SessionSummary, query: SessionFilter) -> bool:
    if query.ids is not None and summary.session_id not in query.ids:
        return False
    if query.user_id is not None and summary.user_id != query.user_id:
        return False
    if query.creator_id is not None and summary.creator_id != query.creator_id:
        return False
    if query.fingerprint_id is not None and summary.fingerprint_id != query.fingerprint_id:
        return False
    if not all(compare(c.method, summary.creation_ms, c.at_ms) for c in query.creation):
        return False
    return all(expiration_matches(c, summary.expiration_ms) for c in query.expiration)


def visible(summary: SessionSummary, caller: Caller) -> bool:
    """Same rule as GetSession without a token (spec §6.3)."""
    return (
        (bool(summary.creator_id) and summary.creator_id == caller.user_id)
        or (bool(summary.user_id) and summary.user_id == caller.user_id)
        or (bool(caller.agent_id) and summary.fingerprint_id == caller.agent_id)
        or caller.has("session.read", summary.org_id or None)
    )


def needs_scan(query: SessionFilter) -> bool:
    """True if some condition is not answered by the chosen index and creation range."""
    chosen = [
        query.ids is not None,
        query.user_id is not None,
        query.creator_id is not None,
        query.fingerprint_id is not None,
    ]
    return sum(chosen) > 1 or bool(query.expiration) or query.ids is not None


def retained(summary: SessionSummary, now_ms: int, retention_ms: int) -> bool:
    """False once expiration + retention has passed (the purge may not have run yet)."""
    exp = summary.expiration_ms
    return exp is None or exp + retention_ms >= now_ms
