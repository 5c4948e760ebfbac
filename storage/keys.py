"""The Redis key schema. Every key is built here and nowhere else.

All keys of one session share the hash tag ``{<sessionId>}``, and a session's write scripts
touch only that slot: the commit records its effects (events, index changes, delivery jobs)
in ``sess:{S}:relay`` and registers the session in its slot's ``relay:{t}``; the relay
(``storage.relay``) then applies them to the other slots, idempotently, and clears them.

| key                               | type   | TTL                                  | written by              |
|-----------------------------------|--------|--------------------------------------|-------------------------|
| ``sess:{S}``                      | hash   | expiration + retention + grace; none | create/commit/purge.lua |
| ``sess:{S}:lease``                | string | lease TTL                            | acquire/commit/release  |
| ``sess:{S}:fence``                | string | like ``sess:{S}``                    | acquire.lua (INCR)      |
| ``sess:{S}:relay``                | hash   | none; field per unrelayed commit     | create/commit/purge.lua |
| ``relay:{t}``                     | zset   | none; aggregates with unrelayed writes| create/commit/purge.lua, _emit.lua |
| ``user:{U}:relay`` (org, idp, intent alike) | hash | none; field per unrelayed write | _emit.lua |
| ``sessiond:events:{P}:replayed``  | zset   | none; trimmed after a day            | relay_apply.lua (repair)|
| ``idx:sessions:created``          | zset   | none (members removed by purge)      | relay_apply.lua         |
| ``idx:sessions:purge:{P}``        | zset   | none; score = expiration + retention | relay_apply.lua, sweeper|
| ``idx:user:{U}:sessions``         | zset   | none; score = creation ms            | relay_apply.lua         |
| ``idx:org:{O}:sessions``          | zset   | none; score = creation ms            | relay_apply.lua         |
| ``idx:creator:{U}:sessions``      | zset   | none; score = creation ms            | relay_apply.lua         |
| ``idx:fp:{sha256(F)}:sessions``   | zset   | none; score = creation ms            | relay_apply.lua         |
| ``sessiond:events:{P}``           | stream | none; MAXLEN ~ N                     | relay_apply, user/org/… |
| ``user:{U}``                      | hash   | none (deleted users stay, tombstoned)| user_write/password_*   |
| ``user:{U}:attempts``             | zset   | latest deadline; in-flight checks    | password_begin/finish   |
| ``user:{U}:otp_attempts``         | zset   | like attempts, second-factor checks  | otp_begin/finish        |
| ``sessiond:outbox``               | stream | none; acknowledged jobs trimmed      | relay_apply/user_write  |
| ``{sessiond:outbox}:dead``        | stream | none; MAXLEN ~ N                     | the delivery worker     |
| ``{sessiond:outbox}:retry``       | zset   | none; entry id → when it is due     | the delivery worker     |
| ``{sessiond:outbox}:attempts``    | hash   | none; entry id → attempts so far     | the delivery worker     |
| ``{sessiond:outbox}:sent:J``      | string | 1 day; job J was delivered           | the delivery worker     |
| ``login:{name}``                  | string | pending claim 30 s, then none; user id| claim_name/relay_apply |
| ``idplink:{idp:provider user}``   | string | pending claim 30 s, then none; user id| claim_name/relay_apply |
| ``idp:{I}:links``                 | zset   | none; JSON [user id, provider user]  | relay_apply.lua         |
| ``intent:{I}``                    | hash   | start 10 min; lifetime after success | intent_write.lua        |
| ``idp:{I}``                       | hash   | none; ``doc``, ``rev``, ``seq``      | idp_write.lua           |
| ``idps:instance``, ``idps:org:{O}``| set   | none; the owner's provider ids       | idp_write.lua           |
| ``org:{O}``                       | hash   | none                                 | org_create.lua          |
| ``orgname:{n}``, ``orgdomain:{d}``| string | pending claim 30 s, then none; org id| claim_name/relay_apply  |
| ``pat:{T}``                       | hash   | PAT expiration, else none            | pat_add.lua             |
| ``sessiond:instance``             | hash   | none; ``id``, ``default_org``        | bootstrap (HSETNX)      |
| ``sessiond:ready``                | string | 10 s; the readiness write probe      | /readyz                 |
| ``rl:{K:sha256(X)}``              | string | until the subject's budget is full   | rate_limit.lua          |
| ``st:{T}``                        | string | the session's expiry; T's one owner  | claim/relay_apply.lua   |
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from functools import lru_cache


def session(session_id: str) -> str:
    return f"sess:{{{session_id}}}"


def session_lease(session_id: str) -> str:
    return f"sess:{{{session_id}}}:lease"


def session_fence(session_id: str) -> str:
    return f"sess:{{{session_id}}}:fence"


def session_relay(session_id: str) -> str:
    """The session's commits whose effects are not applied yet (field → encoded entry)."""
    return f"sess:{{{session_id}}}:relay"


def aggregate_relay(aggregate_key: str) -> str:
    """A user's, org's, PAT owner's, IdP's or intent's writes whose events are not applied."""
    return f"{aggregate_key}:relay"


def relay_hash(member: str) -> str:
    """The relay hash a ``relay:{t}`` member names: a session id, or the hash's own name.

    Sessions, the most numerous, register their bare id; other aggregates register the
    key (``user:{U}:relay``), told apart by its hash tag.
    """
    return member if "{" in member else session_relay(member)


def relay_pending(slot: int) -> str:
    """The aggregates of one hash slot with unrelayed writes, scored by the oldest's time."""
    return f"relay:{{{slot_tag(slot)}}}"


def replayed_entries(partition_key: str) -> str:
    """Entries the relay's repair appended to a partition stream (its own slot)."""
    return f"{partition_key}:replayed"


@lru_cache(maxsize=1)
def _slot_tags() -> tuple[str, ...]:
    """For every hash slot, a short hash tag that lands in it (found once, ~0.1 s)."""
    tags: list[str | None] = [None] * SLOTS
    missing = SLOTS
    candidate = 0
    while missing:
        tag = format(candidate, "x")
        slot = binascii.crc_hqx(tag.encode(), 0) % SLOTS
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        candidate += 1
    return tuple(tag or "" for tag in tags)


def slot_tag(slot: int) -> str:
    return _slot_tags()[slot]


SLOTS = 16384

SESSIONS_BY_CREATION = "idx:sessions:created"
#: The purge schedule is split into this many sorted sets: their hash tags (those of the
#: event partitions) fall in different slots, so on a cluster every primary serves its share
#: of the sweep, and a session's schedule shares a slot with its events at the default
#: SESSIOND_EVENT_PARTITIONS (16).
PURGE_PARTITIONS = 16
#: Earlier versions' one schedule: nothing adds to it; the sweeper drains it.
EARLIER_SESSIONS_BY_PURGE = "idx:sessions:purge"


def sessions_by_purge(session_id: str) -> str:
    """The purge schedule that holds ``session_id``."""
    return purge_schedule(zlib.crc32(session_id.encode()) % PURGE_PARTITIONS)


def purge_schedule(partition: int) -> str:
    return f"idx:sessions:purge:{{{partition}}}"


def purge_schedules() -> list[str]:
    """Every purge schedule, the earlier versions' one last."""
    return [*(purge_schedule(p) for p in range(PURGE_PARTITIONS)), EARLIER_SESSIONS_BY_PURGE]


def sessions_of_user(user_id: str) -> str:
    return f"idx:user:{{{user_id}}}:sessions"


def active_sessions_of_user(user_id: str) -> str:
    """The user's live sessions by last activity: the per-user cap evicts the lowest."""
    return f"idx:user:{{{user_id}}}:active"


#: Sessions the cap pushed out, scored by when: ended right after, or by the sweeper.
SESSIONS_TO_EVICT = "idx:sessions:evict"


def session_by_st_token(token_hash: str) -> str:
    """A PingOne session token's keyed hash → its session id (``/sessions/me``)."""
    return f"st:{{{token_hash}}}"


def sessions_of_org(org_id: str) -> str:
    """Sessions whose checked user belongs to the organization (org-scoped readers list these)."""
    return f"idx:org:{{{org_id}}}:sessions"


def sessions_of_creator(user_id: str) -> str:
    return f"idx:creator:{{{user_id}}}:sessions"


def sessions_of_fingerprint(fingerprint_id: str) -> str:
    """Hashed: a fingerprint is client text and must not shape the key or its hash tag."""
    digest = hashlib.sha256(fingerprint_id.encode()).hexdigest()[:32]
    return f"idx:fp:{{{digest}}}:sessions"


def event_partition(aggregate_id: str, partitions: int) -> int:
    return zlib.crc32(aggregate_id.encode()) % partitions


def event_stream(partition: int) -> str:
    return f"sessiond:events:{{{partition}}}"


def user(user_id: str) -> str:
    return f"user:{{{user_id}}}"


def user_attempts(user_id: str) -> str:
    return f"user:{{{user_id}}}:attempts"


def user_otp_attempts(user_id: str) -> str:
    return f"user:{{{user_id}}}:otp_attempts"


def used_webauthn_challenge(user_id: str, challenge: str) -> str:
    """Marks a session's WebAuthn challenge as answered (in the user's slot)."""
    return f"user:{{{user_id}}}:webauthn:{challenge}"


#: The outbox stream; its other keys carry its name as their hash tag (one slot for all).
OUTBOX = "sessiond:outbox"
OUTBOX_DEAD = "{sessiond:outbox}:dead"
OUTBOX_RETRY = "{sessiond:outbox}:retry"
OUTBOX_ATTEMPTS = "{sessiond:outbox}:attempts"
#: earlier versions' names of the same keys (in other slots; moved at start)
EARLIER_OUTBOX_KEYS = {
    "sessiond:outbox:dead": OUTBOX_DEAD,
    "sessiond:outbox:retry": OUTBOX_RETRY,
    "sessiond:outbox:attempts": OUTBOX_ATTEMPTS,
}


def outbox_sent(job_id: str) -> str:
    """Set once job ``job_id`` was sent: a redelivered job is acknowledged, not sent again.

    In the outbox's slot, so the acknowledging script records it in the same step.
    """
    return f"{{sessiond:outbox}}:sent:{job_id}"


#: earlier versions' one hash of every login name (moved to ``login:{name}`` at start)
LOGIN_NAMES = "users:loginnames"


def login_name(name: str) -> str:
    """One lower-cased login name's claim: the user id (``storage.name_claims``)."""
    return f"login:{{{name}}}"


#: earlier versions' one hash of every IdP link (moved to one key each at start)
IDP_LINKS = "users:idplinks"


def idp_link_field(idp_id: str, idp_user_id: str) -> str:
    """A link's name: IdP ids hold no ``:``, so the split is unique."""
    return f"{idp_id}:{idp_user_id}"


def idp_link(link: str) -> str:
    """One IdP link's claim (``idp id:provider user id``): the user id it belongs to."""
    return f"idplink:{{{link}}}"


def idp_links_of(idp_id: str) -> str:
    """The users linked to a provider's accounts, in the provider's slot (for its removal)."""
    return f"idp:{{{idp_id}}}:links"


def idp_intent(intent_id: str) -> str:
    return f"intent:{{{intent_id}}}"


def idp(idp_id: str) -> str:
    return f"idp:{{{idp_id}}}"


def idps_of(org_id: str) -> str:
    """The identity providers of an organization, or of the instance (``org_id`` "")."""
    return f"idps:org:{{{org_id}}}" if org_id else "idps:instance"


def org(org_id: str) -> str:
    return f"org:{{{org_id}}}"


#: earlier versions' hashes of every org name and domain (moved to one key each at start)
ORG_NAMES = "orgs:names"
ORG_DOMAINS = "orgs:domains"


def org_name(name: str) -> str:
    """A lower-cased organization name's claim: the org id (``storage.name_claims``)."""
    return f"orgname:{{{name}}}"


def org_domain(domain: str) -> str:
    """A lower-cased generated org domain's claim: the org id."""
    return f"orgdomain:{{{domain}}}"


def pat(token_id: str) -> str:
    return f"pat:{{{token_id}}}"


@lru_cache(maxsize=65536)
def rate_limit(kind: str, subject: str) -> str:
    """A credential-check rate limit of one subject (``user``, ``ip``, ``caller``).

    Cached: every credential check names three subjects, mostly the same few callers and
    addresses, and hashing them again each time was a visible share of a check's cost.
    """
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"rl:{{{kind}:{digest}}}"


INSTANCE = "sessiond:instance"
READY_PROBE = "sessiond:ready"
