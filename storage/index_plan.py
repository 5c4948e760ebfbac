"""The session indexes: which sorted sets a session belongs to, and which a query scans.

Written once here, used by every commit (what to ZADD/ZREM), the purge (what to clean) and
ListSessions (what to read). Pure: no Redis.

Every index is a sorted set of session ids scored by creation time. The most selective index
answers a query first (user, creator, fingerprint, else all sessions by creation); a caller
who may not read every session never scans all of them, only the indexes that can hold what
it may see (its organizations, its own user, its own creations, its user agent).
"""

from __future__ import annotations

from actors.model import SessionState
from actors.permissions import Caller
from actors.queries import SessionFilter, SessionSummary
from storage import keys


def memberships(user_id: str, org_id: str, creator_id: str, fingerprint_id: str) -> list[str]:
    """The creation-scored indexes of a session with these attributes ("" = none)."""
    found = [keys.SESSIONS_BY_CREATION]
    if user_id:
        found.append(keys.sessions_of_user(user_id))
    if org_id:
        found.append(keys.sessions_of_org(org_id))
    if creator_id:
        found.append(keys.sessions_of_creator(creator_id))
    if fingerprint_id:
        found.append(keys.sessions_of_fingerprint(fingerprint_id))
    return found


def of_state(state: SessionState) -> list[str]:
    ua = state.user_agent
    fingerprint = (ua.fingerprint_id or "") if ua is not None else ""
    return memberships(state.user_id or "", state.user_org_id or "", state.creator_id, fingerprint)


def of_summary(meta: SessionSummary) -> list[str]:
    return memberships(meta.user_id, meta.org_id, meta.creator_id, meta.fingerprint_id)


def all_of_summary(meta: SessionSummary) -> list[str]:
    """Every index a stored session can be in, the purge schedule included."""
    found = [*of_summary(meta), keys.sessions_by_purge(meta.session_id)]
    if meta.user_id:
        found.append(keys.active_sessions_of_user(meta.user_id))
    return found


def query_index(query: SessionFilter) -> str:
    """The one index that holds every match of ``query``."""
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
    index = query_index(query)
    if index != keys.SESSIONS_BY_CREATION or who.has("session.read"):
        return [index]
    found = [keys.sessions_of_org(org) for org in who.orgs_with("session.read")]
    if who.user_id:
        found += [keys.sessions_of_user(who.user_id), keys.sessions_of_creator(who.user_id)]
    if who.agent_id:
        found.append(keys.sessions_of_fingerprint(who.agent_id))
    return found
