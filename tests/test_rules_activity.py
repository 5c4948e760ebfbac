"""The activity rules: effective expiry, reported sign-ons, throttled token reads, logout.

Table tests of the pure core (``actors.activity``, ``actors.machine``): no Redis, no clock.
"""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import activity, machine
from actors.activity import ActivityPolicy
from actors.commands import (
    CreateSession,
    DeleteSession,
    Evidence,
    ResetAuthentication,
    SetSession,
    SignOnReport,
    TouchSession,
)
from actors.errors import InvalidArgument, NotFound
from actors.events import (
    ActivitySet,
    AuthenticationReset,
    IdleTimeoutSet,
    SessionAdded,
    SignOnReported,
    Terminated,
    TokenSet,
)
from actors.model import (
    AgentDetails,
    CheckedFactor,
    Factors,
    Location,
    PendingCode,
    SignOn,
    SignOnMethod,
    UserFactor,
)
from tests.test_rules_session import NOW, OWNER, TOKEN, session

MINUTE = 60_000
HERE = Location(at_ms=NOW - 1_000, remote_ip="174.1.62.19")
PWD = SignOn(
    remote_ip="174.1.62.19",
    authenticators=("pwd", "otp"),
    methods={
        "pwd": SignOnMethod(at_ms=NOW - 2_000, policy_id="p1", policy_type="PINGONE"),
        "otp": SignOnMethod(at_ms=NOW - 1_000, policy_id="p2", policy_type="PINGONE"),
    },
)


def ctx(now_ms: int = NOW, policy: ActivityPolicy | None = None) -> machine.Context:
    return machine.Context(
        now_ms=now_ms, caller=OWNER, token=TOKEN, activity=policy or ActivityPolicy()
    )


def report(**fields: object) -> SignOnReport:
    base = SignOnReport(active_ms=NOW - 1_000, location=HERE, idle_timeout_ms=30 * MINUTE)
    return replace(base, **fields)


@pytest.mark.parametrize(
    ("lifetime_end", "active", "idle", "expected"),
    [
        (None, None, None, None),
        (NOW + 10 * MINUTE, None, None, NOW + 10 * MINUTE),
        (None, NOW, 5 * MINUTE, NOW + 5 * MINUTE),
        (NOW + 10 * MINUTE, NOW, 5 * MINUTE, NOW + 5 * MINUTE),  # idle ends first
        (NOW + 2 * MINUTE, NOW, 5 * MINUTE, NOW + 2 * MINUTE),  # lifetime ends first
        (None, None, 5 * MINUTE, NOW - 5_000 + 5 * MINUTE),  # no report: the last write
    ],
)
def test_the_earlier_of_lifetime_and_idle_timeout_ends_a_session(
    lifetime_end: int | None, active: int | None, idle: int | None, expected: int | None
):
    state = session(expiration_ms=lifetime_end, active_ms=active, idle_timeout_ms=idle)
    assert state.expires_ms == expected
    assert state.is_expired(expected + 1) if expected is not None else not state.is_expired(NOW)


def test_locations_keep_the_last_five_newest_first():
    kept: tuple[Location, ...] = ()
    for n in range(7):
        kept = activity.with_location(kept, Location(at_ms=n, remote_ip=f"10.0.0.{n}"))
    assert [loc.at_ms for loc in kept] == [6, 5, 4, 3, 2]


def test_the_latest_authenticator_names_the_sign_on():
    assert PWD.latest == ("otp", PWD.methods["otp"])
    assert SignOn(remote_ip="1.2.3.4").latest is None


def test_a_pingone_create_stores_its_report_and_issues_no_zitadel_token():
    agent = AgentDetails(raw="Firefox", browser_name="Firefox")
    command = CreateSession(
        report=report(sign_on=PWD, agent=agent, st_token_hash="h1"),
    )
    events = machine.decide(None, command, Evidence(), ctx())
    assert [type(e) for e in events] == [SessionAdded, SignOnReported]  # one event: cheap
    state = machine.evolve_all(None, events, session_id="s1", at_ms=NOW)
    assert state is not None
    assert state.active_ms == NOW - 1_000
    assert state.expires_ms == NOW - 1_000 + 30 * MINUTE
    assert state.sign_on == PWD
    assert state.locations == (HERE,)
    assert state.st_token_hash == "h1"
    assert state.token_hash == ""  # no ZITADEL token exists for it


def test_a_zitadel_write_is_activity_and_the_default_idle_timeout_applies():
    policy = ActivityPolicy(default_idle_timeout_ms=15 * MINUTE)
    events = machine.decide(None, CreateSession(), Evidence(), ctx(policy=policy))
    assert IdleTimeoutSet(idle_timeout_ms=15 * MINUTE) in events
    assert isinstance(events[-1], TokenSet)
    state = machine.evolve_all(None, events, session_id="s1", at_ms=NOW)
    assert state is not None
    assert state.last_active_ms == NOW
    assert state.expires_ms == NOW + 15 * MINUTE
    touched = replace(state, active_ms=NOW - MINUTE)
    later = machine.evolve_all(
        touched,
        machine.decide(touched, SetSession(metadata={"k": b"v"}), Evidence(), ctx(NOW + 1)),
        session_id="s1",
        at_ms=NOW + 1,
    )
    assert later is not None
    assert later.last_active_ms == NOW + 1


def test_an_unchanged_report_records_only_the_sign_on():
    state = session(active_ms=NOW - 1_000, idle_timeout_ms=30 * MINUTE, st_token_hash="h1")
    events = machine.decide(state, SetSession(report=report(st_token_hash="h1")), Evidence(), ctx())
    assert events == [SignOnReported(active_ms=NOW - 1_000, location=HERE)]


@pytest.mark.parametrize(
    ("fields", "error_id"),
    [
        ({"active_ms": NOW + 10 * MINUTE}, "SESSION-activeAt"),
        ({"idle_timeout_ms": 0}, "SESSION-idleTimeout"),
        ({"idle_timeout_ms": -1}, "SESSION-idleTimeout"),
        ({"idle_timeout_ms": activity.MAX_IDLE_TIMEOUT_MS + 1}, "SESSION-idleTimeout"),
    ],
)
def test_a_bad_report_is_refused(fields: dict[str, int], error_id: str):
    with pytest.raises(InvalidArgument) as raised:
        machine.decide(None, CreateSession(report=report(**fields)), Evidence(), ctx())
    assert raised.value.error_id == error_id


@pytest.mark.parametrize(
    ("last_active", "expected"),
    [
        (NOW - MINUTE, [ActivitySet(active_ms=NOW)]),  # a full granule old: recorded
        (NOW - MINUTE + 1, []),  # fresher: a read stays a read
    ],
)
def test_a_token_read_records_activity_once_per_granule(
    last_active: int, expected: list[ActivitySet]
):
    state = session(active_ms=last_active)
    assert machine.decide(state, TouchSession(), Evidence(), ctx()) == expected


def test_a_token_read_of_an_idle_expired_session_is_not_found():
    state = session(active_ms=NOW - 10 * MINUTE, idle_timeout_ms=5 * MINUTE)
    with pytest.raises(NotFound):
        machine.decide(state, TouchSession(), Evidence(), ctx())


def test_logout_clears_every_factor_but_the_user_and_the_challenges():
    user = UserFactor(id="alice", org_id="org1", verified_at_ms=NOW - 9_000)
    state = session(
        factors=Factors(user=user, password=CheckedFactor(verified_at_ms=NOW - 8_000)),
        otp_sms_challenge=PendingCode(code_hash="x", expires_ms=NOW + MINUTE),
    )
    events = machine.decide(state, ResetAuthentication(), Evidence(), ctx())
    assert events == [AuthenticationReset()]
    after = machine.evolve_all(state, events, session_id="s1", at_ms=NOW)
    assert after is not None
    assert after.factors == Factors(user=user)
    assert after.otp_sms_challenge is None
    assert machine.decide(after, ResetAuthentication(), Evidence(), ctx()) == []


def test_an_eviction_says_why():
    events = machine.decide(session(), DeleteSession(reason="evicted"), Evidence(), ctx())
    assert events == [Terminated(reason="evicted")]
