"""Activity and idle timeouts: when a session was last used and when that ends it.

PingOne's model (``expiresAt = activeAt + idleTimeoutInMinutes``) on ZITADEL's sessions: a
session with both a lifetime and an idle timeout ends at the earlier of the two
(``SessionState.expires_ms``). Pure: the policy comes from settings, the time from the caller.

Every ZITADEL write is user activity (it moves ``activeAt`` to its own time); a read with the
PingOne session token is too, but only once per ``granularity_ms``, so a burst of reads does
not turn into a burst of writes.
"""

from __future__ import annotations

import msgspec

from actors.model import MAX_LOCATIONS, Location, SessionState

#: PingOne's idle timeouts are minutes; more than ten years is a mistake, not a policy.
MAX_IDLE_TIMEOUT_MS = 10 * 366 * 86_400_000


class ActivityPolicy(msgspec.Struct, frozen=True, kw_only=True):
    #: A token read moves ``activeAt`` only when it is at least this old (0: every read).
    granularity_ms: int = 60_000
    #: The idle timeout of a session created without one (0: none).
    default_idle_timeout_ms: int = 0


def with_location(locations: tuple[Location, ...], new: Location) -> tuple[Location, ...]:
    """The last ``MAX_LOCATIONS`` locations, newest first."""
    return (new, *locations)[:MAX_LOCATIONS]


def is_due(state: SessionState, now_ms: int, policy: ActivityPolicy) -> bool:
    """Whether a token read at ``now_ms`` should record activity (a write)."""
    return now_ms - state.last_active_ms >= policy.granularity_ms
