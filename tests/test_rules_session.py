"""The session rules, pure, beyond tests/test_machine.py: exact errors, events and states.

Clients branch on the error kind, id and i18n key; the stream consumers read the event
payloads; reads render the state. So each is compared whole here.
"""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import machine, tokens
from actors.commands import Checks, CreateSession, DeleteSession, Evidence, SetSession, UserCheck
from actors.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from actors.events import (
    LifetimeSet,
    MetadataSet,
    PasswordChecked,
    SessionAdded,
    Terminated,
    TokenSet,
    UserChecked,
    event_type,
    stream_payload,
)
from actors.limits import Limits
from actors.model import CheckedFactor, Factors, SessionState, UserAgent, UserFactor, UserRef
from actors.permissions import Caller, Grant
from tests.test_rules_users import expect

NOW = 1_700_000_000_000
OWNER = Caller(user_id="admin", grants=(Grant(roles=("IAM_OWNER",)),))
#: Reads and deletes the sessions of org1, but may not write them (no org role may).
ORG1_OWNER = Caller(user_id="w", grants=(Grant(roles=("ORG_OWNER",), org_id="org1"),))
TOKEN = tokens.issue(tokens.SESSION_PREFIX, "s1", "tid1", b"\x01" * 32)
ALICE = UserRef(
    id="alice",
    org_id="org1",
    state="USER_STATE_ACTIVE",
    login_name="alice@org1",
    display_name="Alice A",
    preferred_language="de",
    view_version=4,
)
UA = UserAgent(fingerprint_id="fp", ip="10.0.0.1", description="Firefox", header={"a": ["1"]})


def ctx(caller: Caller = OWNER, now_ms: int = NOW, limits: Limits | None = None):
    return machine.Context(now_ms=now_ms, caller=caller, token=TOKEN, limits=limits or Limits())


def session(**fields) -> SessionState:
    base = SessionState(
        id="s1",
        creation_ms=NOW - 10_000,
        change_ms=NOW - 5_000,
        sequence=3,
        creator_id="admin",
        factors=Factors(user=UserFactor(id="alice", org_id="org1", verified_at_ms=NOW - 9_000)),
        token_id="tid0",
        token_hash="old",
    )
    return replace(base, **fields)


USER_CHECK = Checks(user=UserCheck(user_id="alice"))


# -- refusals, by kind, id and key ---------------------------------------------------------


class TestRefusals:
    def test_a_user_check_without_the_resolved_user_is_an_internal_error(self):
        with expect(Internal, "SESSION-noUser", "Errors.Internal"):
            machine.decide(None, CreateSession(checks=USER_CHECK), Evidence(), ctx())

    def test_a_user_that_is_not_enabled(self):
        locked = replace(ALICE, state="USER_STATE_LOCKED")
        with expect(FailedPrecondition, "SESSION-Gj4ko", "Errors.User.NotActive"):
            machine.decide(None, CreateSession(checks=USER_CHECK), Evidence(user=locked), ctx())

    def test_creating_needs_session_write(self):
        with expect(PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied"):
            machine.decide(None, CreateSession(), Evidence(), ctx(Caller(user_id="x")))

    def test_setting_a_missing_session(self):
        with expect(NotFound, "COMMAND-Flk38", "Errors.Session.NotExisting"):
            machine.decide(None, SetSession(), Evidence(), ctx())

    def test_the_session_lookup_error(self):
        error = machine.session_not_found()
        assert (type(error), error.error_id, error.key) == (
            NotFound,
            "QUERY-SFeaa",
            "Errors.Session.NotExisting",
        )

    def test_setting_needs_session_write(self):
        command = SetSession(metadata={"k": b"v"})
        with expect(PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied"):
            machine.decide(session(), command, Evidence(), ctx(ORG1_OWNER))

    def test_setting_a_terminated_session(self):
        with expect(FailedPrecondition, "COMMAND-Hewfq", "Errors.Session.Terminated"):
            machine.decide(session(terminated=True), SetSession(), Evidence(), ctx())

    def test_setting_an_expired_session(self):
        expired = session(expiration_ms=NOW - 1)
        with expect(FailedPrecondition, "COMMAND-Hkl3d", "Errors.Session.Expired"):
            machine.decide(expired, SetSession(), Evidence(), ctx())
        still_live = session(expiration_ms=NOW, lifetime_ms=1)
        command = SetSession(metadata={"k": b"v"})
        assert machine.decide(still_live, command, Evidence(), ctx())

    def test_a_password_without_any_user(self):
        command = CreateSession(checks=Checks(password="pw"))
        with expect(FailedPrecondition, "COMMAND-Sfw3f", "Errors.User.UserIDMissing"):
            machine.decide(None, command, Evidence(password_verified=True), ctx())

    def test_a_password_not_verified_is_an_internal_error(self):
        command = CreateSession(checks=Checks(user=USER_CHECK.user, password="pw"))
        with expect(Internal, "SESSION-noPassword", "Errors.Internal"):
            machine.decide(None, command, Evidence(user=ALICE), ctx())

    @pytest.mark.parametrize("lifetime_ms", [0, -1])
    def test_a_lifetime_must_be_positive(self, lifetime_ms):
        with expect(InvalidArgument, "COMMAND-asEG4", "Errors.Session.PositiveLifetime"):
            machine.decide(None, CreateSession(lifetime_ms=lifetime_ms), Evidence(), ctx())

    def test_a_wrong_session_token_on_delete(self):
        wrong = DeleteSession(session_token="s.s1.wrong")
        with expect(PermissionDenied, "COMMAND-sGr42", "Errors.Session.Token.Invalid"):
            machine.decide(session(token_hash=TOKEN.token_hash), wrong, Evidence(), ctx())
        with expect(PermissionDenied, "COMMAND-sGr42", "Errors.Session.Token.Invalid"):
            machine.decide(None, DeleteSession(session_token=TOKEN.plain), Evidence(), ctx())

    def test_a_user_agent_over_the_limits_is_refused_on_create(self):
        command = CreateSession(user_agent=UA)
        small = Limits(header_names=0)
        with pytest.raises(InvalidArgument) as raised:
            machine.decide(None, command, Evidence(), ctx(limits=small))
        assert raised.value.error_id == "SESSION-uaHeaders"

    def test_metadata_over_the_limits_is_refused(self):
        command = SetSession(metadata={"k": b"v"})
        with pytest.raises(InvalidArgument) as raised:
            machine.decide(session(), command, Evidence(), ctx(limits=Limits(metadata_keys=0)))
        assert raised.value.error_id == "SESSION-metaKeys"


# -- preflight: whose password to verify ---------------------------------------------------


class TestPreflight:
    def test_the_checked_user_for_a_password_on_create(self):
        command = CreateSession(checks=Checks(user=USER_CHECK.user, password="pw"))
        assert machine.preflight(None, command, Evidence(user=ALICE), ctx()) == "alice"

    def test_the_sessions_user_for_a_password_on_set(self):
        command = SetSession(checks=Checks(password="pw"))
        assert machine.preflight(session(), command, Evidence(), ctx()) == "alice"

    def test_no_password_no_user_to_verify(self):
        command = CreateSession(checks=USER_CHECK)
        assert machine.preflight(None, command, Evidence(user=ALICE), ctx()) is None
        assert machine.preflight(session(), SetSession(), Evidence(), ctx()) is None
        assert machine.preflight(session(), DeleteSession(), Evidence(), ctx()) is None


# -- what a decision produces --------------------------------------------------------------


class TestEvents:
    def test_a_create_with_everything(self):
        command = CreateSession(
            checks=Checks(user=USER_CHECK.user, password="pw"),
            metadata={"k": b"v"},
            user_agent=UA,
            lifetime_ms=60_000,
        )
        evidence = Evidence(user=ALICE, password_verified=True)
        assert machine.decide(None, command, evidence, ctx()) == [
            SessionAdded(creator_id="admin", user_agent=UA),
            UserChecked(
                user_id="alice",
                user_org_id="org1",
                checked_at_ms=NOW,
                login_name="alice@org1",
                display_name="Alice A",
                preferred_language="de",
                view_version=4,
            ),
            PasswordChecked(checked_at_ms=NOW),
            MetadataSet(metadata={"k": b"v"}),
            LifetimeSet(lifetime_ms=60_000),
            TokenSet(token_id="tid1", token_hash=TOKEN.token_hash),
        ]

    def test_a_resolved_user_without_a_user_check_is_not_checked(self):
        command = SetSession(checks=Checks(password="pw"))
        evidence = Evidence(user=ALICE, password_verified=True)
        assert machine.decide(session(), command, evidence, ctx()) == [
            PasswordChecked(checked_at_ms=NOW),
            TokenSet(token_id="tid1", token_hash=TOKEN.token_hash),
        ]

    def test_deleting_the_last_metadata_key_sets_an_empty_map(self):
        command = SetSession(metadata={"k": b""})
        state = session(metadata={"k": b"v"})
        assert machine.decide(state, command, Evidence(), ctx()) == [
            MetadataSet(metadata={}),
            TokenSet(token_id="tid1", token_hash=TOKEN.token_hash),
        ]

    def test_deleting_a_missing_key_changes_nothing(self):
        command = CreateSession(metadata={"k": b""})
        assert machine.decide(None, command, Evidence(), ctx()) == [
            SessionAdded(creator_id="admin"),
            TokenSet(token_id="tid1", token_hash=TOKEN.token_hash),
        ]

    def test_deleting_twice_terminates_once(self):
        assert machine.decide(session(), DeleteSession(), Evidence(), ctx()) == [Terminated()]
        done = session(terminated=True)
        assert machine.decide(done, DeleteSession(), Evidence(), ctx()) == []


# -- evolve --------------------------------------------------------------------------------


class TestEvolve:
    def test_the_first_event_must_add_the_session(self):
        added = machine.evolve(
            None, SessionAdded(creator_id="c", user_agent=UA), session_id="s9", at_ms=NOW
        )
        assert added == SessionState(
            id="s9", creation_ms=NOW, change_ms=NOW, sequence=1, creator_id="c", user_agent=UA
        )
        with expect(Internal, "SESSION-evolve", "Errors.Internal"):
            machine.evolve(None, Terminated(), session_id="s9", at_ms=NOW)

    def test_a_session_is_added_once(self):
        with expect(Internal, "SESSION-added-twice", "Errors.Internal"):
            machine.evolve(session(), SessionAdded(creator_id="c"), session_id="s1", at_ms=NOW)

    def test_every_event_bumps_sequence_and_change_time(self):
        after = machine.evolve(session(), Terminated(), session_id="s1", at_ms=NOW)
        assert after == session(sequence=4, change_ms=NOW, terminated=True)

    def test_a_user_check_replaces_the_user_factor_and_keeps_the_password(self):
        state = session(factors=Factors(password=CheckedFactor(verified_at_ms=5)))
        event = UserChecked(
            user_id="bob",
            user_org_id="org2",
            checked_at_ms=NOW,
            login_name="bob@org2",
            display_name="Bob",
            preferred_language="fr",
            view_version=9,
        )
        after = machine.evolve(state, event, session_id="s1", at_ms=NOW)
        assert after.factors == Factors(
            user=UserFactor(
                id="bob",
                org_id="org2",
                verified_at_ms=NOW,
                login_name="bob@org2",
                display_name="Bob",
                view_version=9,
            ),
            password=CheckedFactor(verified_at_ms=5),
        )

    def test_lifetime_and_token(self):
        state = machine.evolve_all(
            session(),
            [LifetimeSet(lifetime_ms=1_000), TokenSet(token_id="t2", token_hash="h2")],
            session_id="s1",
            at_ms=NOW,
        )
        assert state == session(
            sequence=5,
            change_ms=NOW,
            lifetime_ms=1_000,
            expiration_ms=NOW + 1_000,
            token_id="t2",
            token_hash="h2",
        )


# -- events on the streams -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "tag", "payload"),
    [
        (SessionAdded(creator_id="c"), "session.added", {}),
        (
            SessionAdded(creator_id="c", user_agent=UA),
            "session.added",
            {
                "user_agent": {
                    "fingerprint_id": "fp",
                    "ip": "10.0.0.1",
                    "description": "Firefox",
                    "header": {"a": ["1"]},
                }
            },
        ),
        (
            SessionAdded(creator_id="c", user_agent=UserAgent(ip="::1")),
            "session.added",
            {"user_agent": {"ip": "::1"}},
        ),
        (
            UserChecked(user_id="u", user_org_id="o", checked_at_ms=NOW + 5),
            "session.user.checked",
            {"userID": "u", "userResourceOwner": "o", "checkedAt": "2023-11-14T22:13:20.005Z"},
        ),
        (
            UserChecked(
                user_id="u",
                user_org_id="o",
                checked_at_ms=NOW,
                login_name="secret-ish",
                preferred_language="de",
            ),
            "session.user.checked",
            {
                "userID": "u",
                "userResourceOwner": "o",
                "checkedAt": "2023-11-14T22:13:20Z",
                "preferredLanguage": "de",
            },
        ),
        (
            PasswordChecked(checked_at_ms=NOW),
            "session.password.checked",
            {"checkedAt": "2023-11-14T22:13:20Z"},
        ),
        (
            MetadataSet(metadata={"k": b"v1", "e": b""}),
            "session.metadata.set",
            {"metadata": {"k": "djE=", "e": ""}},
        ),
        (LifetimeSet(lifetime_ms=1_500), "session.lifetime.set", {"lifetime": 1_500_000_000}),
        (TokenSet(token_id="t1", token_hash="h"), "session.token.set", {"tokenID": "t1"}),
        (Terminated(), "session.terminated", {}),
    ],
)
def test_event_types_and_stream_payloads(event, tag, payload):
    assert event_type(event) == tag
    assert stream_payload(event) == payload
