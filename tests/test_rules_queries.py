"""ListSessions semantics and the rendered session, pure (spec §6, §2.2)."""

from __future__ import annotations

import math

import msgspec
import pytest
from msgspec.structs import replace

from actors import queries as q
from actors.model import CheckedFactor, Factors, SessionState, UserAgent, UserFactor
from actors.permissions import Caller, Grant
from actors.queries import SessionFilter, SessionSummary, TimeCondition
from actors.views import (
    FactorsView,
    HeaderValues,
    SessionView,
    UserAgentView,
    UserFactorView,
    UserView,
    VerifiedFactor,
    is_fresh,
    render,
)

NOW = 1_700_000_000_000
SUMMARY = SessionSummary(
    session_id="s1",
    wire=msgspec.Raw(b"{}"),
    user_id="alice",
    org_id="org1",
    creator_id="login",
    fingerprint_id="fp1",
    creation_ms=1_000,
    expiration_ms=5_000,
    view_version=1,
    password_ms=None,
)


# -- time conditions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "below", "equal", "above"),
    [
        (q.EQUALS, False, True, False),
        (q.GREATER, False, False, True),
        (q.GREATER_OR_EQUALS, False, True, True),
        (q.LESS, True, False, False),
        (q.LESS_OR_EQUALS, True, True, False),
    ],
)
def test_compare(method, below, equal, above):
    assert (q.compare(method, 9, 10), q.compare(method, 10, 10), q.compare(method, 11, 10)) == (
        below,
        equal,
        above,
    )


def test_the_wire_names_of_the_methods():
    assert q.METHODS == {
        "TIMESTAMP_QUERY_METHOD_EQUALS": q.EQUALS,
        "TIMESTAMP_QUERY_METHOD_GREATER": q.GREATER,
        "TIMESTAMP_QUERY_METHOD_GREATER_OR_EQUALS": q.GREATER_OR_EQUALS,
        "TIMESTAMP_QUERY_METHOD_LESS": q.LESS,
        "TIMESTAMP_QUERY_METHOD_LESS_OR_EQUALS": q.LESS_OR_EQUALS,
    }
    assert len({q.EQUALS, q.GREATER, q.GREATER_OR_EQUALS, q.LESS, q.LESS_OR_EQUALS}) == 5


@pytest.mark.parametrize(
    ("method", "matches"),
    [
        (q.EQUALS, False),
        (q.GREATER, True),
        (q.GREATER_OR_EQUALS, True),
        (q.LESS, False),
        (q.LESS_OR_EQUALS, False),
    ],
)
def test_a_session_without_expiration_expires_after_everything(method, matches):
    assert q.expiration_matches(TimeCondition(method, NOW), None) is matches


def test_an_expiration_is_compared_with_the_condition():
    assert q.expiration_matches(TimeCondition(q.LESS, 5_001), 5_000)
    assert not q.expiration_matches(TimeCondition(q.LESS, 5_000), 5_000)
    assert q.expiration_matches(TimeCondition(q.EQUALS, 5_000), 5_000)


@pytest.mark.parametrize(
    ("conditions", "bounds"),
    [
        ((), (-math.inf, math.inf)),
        ((TimeCondition(q.EQUALS, 10),), (10, 10)),
        ((TimeCondition(q.GREATER, 10),), (11, math.inf)),
        ((TimeCondition(q.GREATER_OR_EQUALS, 10),), (10, math.inf)),
        ((TimeCondition(q.LESS, 10),), (-math.inf, 9)),
        ((TimeCondition(q.LESS_OR_EQUALS, 10),), (-math.inf, 10)),
        ((TimeCondition(q.GREATER, 10), TimeCondition(q.LESS, 20)), (11, 19)),
        ((TimeCondition(q.GREATER_OR_EQUALS, 30), TimeCondition(q.GREATER, 10)), (30, math.inf)),
        ((TimeCondition(q.GREATER, 30), TimeCondition(q.GREATER_OR_EQUALS, 10)), (31, math.inf)),
        ((TimeCondition(q.LESS_OR_EQUALS, 5), TimeCondition(q.LESS, 20)), (-math.inf, 5)),
        ((TimeCondition(q.LESS, 5), TimeCondition(q.LESS_OR_EQUALS, 20)), (-math.inf, 4)),
    ],
)
def test_creation_bounds_are_the_inclusive_range(conditions, bounds):
    assert q.creation_bounds(conditions) == bounds


# -- filters and visibility ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (SessionFilter(), True),
        (SessionFilter(ids=frozenset({"s1", "s2"})), True),
        (SessionFilter(ids=frozenset({"s2"})), False),
        (SessionFilter(ids=frozenset()), False),
        (SessionFilter(user_id="alice"), True),
        (SessionFilter(user_id="bob"), False),
        (SessionFilter(creator_id="login"), True),
        (SessionFilter(creator_id="other"), False),
        (SessionFilter(fingerprint_id="fp1"), True),
        (SessionFilter(fingerprint_id="fp2"), False),
        (SessionFilter(creation=(TimeCondition(q.EQUALS, 1_000),)), True),
        (SessionFilter(creation=(TimeCondition(q.GREATER, 1_000),)), False),
        (
            SessionFilter(creation=(TimeCondition(q.GREATER, 999), TimeCondition(q.LESS, 1_000))),
            False,
        ),
        (SessionFilter(expiration=(TimeCondition(q.LESS, 5_001),)), True),
        (SessionFilter(expiration=(TimeCondition(q.GREATER, 5_000),)), False),
        (
            SessionFilter(
                expiration=(TimeCondition(q.LESS, 6_000), TimeCondition(q.GREATER, 5_000))
            ),
            False,
        ),
        (SessionFilter(user_id="alice", creator_id="other"), False),
    ],
)
def test_matches(query, expected):
    assert q.matches(SUMMARY, query) is expected


def test_an_expiration_filter_on_a_session_that_never_expires():
    forever = replace(SUMMARY, expiration_ms=None)
    assert q.matches(forever, SessionFilter(expiration=(TimeCondition(q.GREATER, NOW),)))
    assert not q.matches(forever, SessionFilter(expiration=(TimeCondition(q.LESS, NOW),)))


class TestVisible:
    def test_the_creator_the_user_and_the_user_agent_see_it(self):
        assert q.visible(SUMMARY, Caller(user_id="login"))
        assert q.visible(SUMMARY, Caller(user_id="alice"))
        assert q.visible(SUMMARY, Caller(user_id="x", agent_id="fp1"))

    def test_others_do_not(self):
        assert not q.visible(SUMMARY, Caller(user_id="x"))
        assert not q.visible(SUMMARY, Caller(user_id="x", agent_id="fp2"))

    def test_empty_ids_never_match_each_other(self):
        anonymous = replace(SUMMARY, creator_id="", user_id="", fingerprint_id="")
        assert not q.visible(anonymous, Caller(user_id=""))
        assert not q.visible(anonymous, Caller(user_id="x", agent_id=""))

    def test_session_read_on_the_users_org_or_the_instance(self):
        org_reader = Caller(user_id="x", grants=(Grant(roles=("ORG_OWNER",), org_id="org1"),))
        other_org = Caller(user_id="x", grants=(Grant(roles=("ORG_OWNER",), org_id="org2"),))
        instance = Caller(user_id="x", grants=(Grant(roles=("IAM_OWNER_VIEWER",)),))
        assert q.visible(SUMMARY, org_reader)
        assert not q.visible(SUMMARY, other_org)
        assert q.visible(SUMMARY, instance)
        no_org = replace(SUMMARY, org_id="")
        assert not q.visible(no_org, org_reader)
        assert q.visible(no_org, instance)


@pytest.mark.parametrize(
    ("query", "scan"),
    [
        (SessionFilter(), False),
        (SessionFilter(user_id="u"), False),
        (SessionFilter(creator_id="c"), False),
        (SessionFilter(fingerprint_id="f"), False),
        (SessionFilter(creation=(TimeCondition(q.GREATER, 1),)), False),
        (SessionFilter(ids=frozenset({"s1"})), True),
        (SessionFilter(user_id="u", creator_id="c"), True),
        (SessionFilter(creator_id="c", fingerprint_id="f"), True),
        (SessionFilter(expiration=(TimeCondition(q.GREATER, 1),)), True),
    ],
)
def test_needs_scan(query, scan):
    assert q.needs_scan(query) is scan


def test_retention_keeps_a_session_until_expiration_plus_retention():
    assert q.retained(SUMMARY, 5_000 + 100, 100)
    assert not q.retained(SUMMARY, 5_000 + 101, 100)
    assert q.retained(replace(SUMMARY, expiration_ms=None), NOW, 0)


def test_page_limits():
    assert (q.DEFAULT_LIMIT, q.MAX_LIMIT) == (100, 1000)
    assert q.SORTING_COLUMNS == {
        "SESSION_FIELD_NAME_UNSPECIFIED": q.SORT_UNSPECIFIED,
        "SESSION_FIELD_NAME_CREATION_DATE": q.SORT_CREATION_DATE,
    }
    assert q.SORT_UNSPECIFIED != q.SORT_CREATION_DATE


# -- the rendered session ------------------------------------------------------------------

STATE = SessionState(
    id="s1",
    creation_ms=NOW,
    change_ms=NOW + 1_500,
    sequence=4,
    creator_id="login",
    factors=Factors(
        user=UserFactor(
            id="alice",
            org_id="org1",
            verified_at_ms=NOW + 1,
            login_name="alice-then",
            display_name="Alice Then",
        ),
        password=CheckedFactor(verified_at_ms=NOW + 2),
    ),
    metadata={"k": b"v1"},
    user_agent=UserAgent(
        fingerprint_id="fp1", ip="::1", description="Firefox", header={"a": ["1"]}
    ),
    lifetime_ms=60_000,
    expiration_ms=NOW + 60_000,
)
ALICE_NOW = UserView(
    id="alice",
    org_id="org2",
    login_name="alice-now",
    display_name="Alice Now",
    state="USER_STATE_ACTIVE",
    version=2,
    password_changed_ms=NOW + 2,
)


def test_a_full_session_renders_every_field_with_the_user_as_it_is_now():
    assert render(STATE, ALICE_NOW) == SessionView(
        id="s1",
        creation_date="2023-11-14T22:13:20Z",
        change_date="2023-11-14T22:13:21.500Z",
        sequence="4",
        factors=FactorsView(
            user=UserFactorView(
                verified_at="2023-11-14T22:13:20.001Z",
                id="alice",
                login_name="alice-now",
                display_name="Alice Now",
                organization_id="org2",
            ),
            password=VerifiedFactor(verified_at="2023-11-14T22:13:20.002Z"),
        ),
        metadata={"k": "djE="},
        user_agent=UserAgentView(
            fingerprint_id="fp1",
            ip="::1",
            description="Firefox",
            header={"a": HeaderValues(values=["1"])},
        ),
        expiration_date="2023-11-14T22:14:20Z",
    )


def test_without_the_user_the_snapshot_is_shown():
    factors = render(STATE).factors
    assert factors == FactorsView(
        user=UserFactorView(
            verified_at="2023-11-14T22:13:20.001Z",
            id="alice",
            login_name="alice-then",
            display_name="Alice Then",
            organization_id="org1",
        ),
        password=VerifiedFactor(verified_at="2023-11-14T22:13:20.002Z"),
    )
    assert render(STATE, replace(ALICE_NOW, id="bob")).factors == factors


def test_a_password_checked_before_the_last_change_is_not_shown():
    later = replace(ALICE_NOW, password_changed_ms=NOW + 3)
    factors = render(STATE, later).factors
    assert factors is not None
    assert factors.password is None
    assert factors.user is not None


def test_a_password_checked_at_the_epoch_is_shown_without_the_user():
    early = replace(STATE, factors=replace(STATE.factors, password=CheckedFactor(verified_at_ms=0)))
    factors = render(early).factors
    assert factors is not None
    assert factors.password == VerifiedFactor(verified_at="1970-01-01T00:00:00Z")


def test_a_bare_session_renders_only_what_it_has():
    bare = SessionState(id="s2", creation_ms=NOW, change_ms=NOW, sequence=1)
    assert render(bare) == SessionView(
        id="s2",
        creation_date="2023-11-14T22:13:20Z",
        change_date="2023-11-14T22:13:20Z",
        sequence="1",
    )
    assert msgspec.json.encode(render(bare)) == (
        b'{"id":"s2","creationDate":"2023-11-14T22:13:20Z",'
        b'"changeDate":"2023-11-14T22:13:20Z","sequence":"1"}'
    )


def test_an_empty_user_agent_is_not_rendered_but_a_partial_one_is():
    empty = replace(STATE, user_agent=UserAgent())
    assert render(empty).user_agent is None
    partial = replace(STATE, user_agent=UserAgent(description="curl"))
    assert render(partial).user_agent == UserAgentView(description="curl")


class TestIsFresh:
    def test_a_view_of_the_current_version_is_fresh(self):
        assert is_fresh(2, None, ALICE_NOW)
        assert is_fresh(2, NOW + 2, ALICE_NOW)

    def test_another_version_is_stale(self):
        assert not is_fresh(1, None, ALICE_NOW)

    def test_a_password_checked_before_the_change_is_stale(self):
        assert not is_fresh(2, NOW + 1, ALICE_NOW)
        assert is_fresh(2, NOW + 3, ALICE_NOW)
