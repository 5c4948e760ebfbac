"""The session rules, pure: (state, command, evidence) → events or an error, nothing else."""

from __future__ import annotations

import msgspec
import pytest

from actors import machine, tokens
from actors.commands import Checks, CreateSession, DeleteSession, Evidence, SetSession, UserCheck
from actors.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from actors.events import (
    LifetimeSet,
    MetadataSet,
    PasswordChecked,
    SessionAdded,
    Terminated,
    TokenSet,
    UserChecked,
)
from actors.model import UserRef
from actors.permissions import Caller, Grant
from actors.queries import SessionSummary, visible

NOW = 1_700_000_000_000
OWNER = Caller(user_id="admin", grants=(Grant(roles=("IAM_OWNER",)),))
LOGIN_CLIENT = Caller(user_id="login", grants=(Grant(roles=("IAM_LOGIN_CLIENT",)),))
NOBODY = Caller(user_id="someone")
ALICE = UserRef(
    id="alice", org_id="org1", state="USER_STATE_ACTIVE", login_name="alice", display_name="Alice A"
)
BOB = UserRef(
    id="bob", org_id="org1", state="USER_STATE_ACTIVE", login_name="bob", display_name="Bob B"
)
TOKEN = tokens.issue(tokens.SESSION_PREFIX, "s1", "tid1", b"\x01" * 32)


def ctx(
    caller: Caller = OWNER,
    now_ms: int = NOW,
    token: tokens.IssuedToken = TOKEN,
) -> machine.Context:
    return machine.Context(now_ms=now_ms, caller=caller, token=token)


def created(
    command: CreateSession | None = None, evidence: Evidence | None = None, caller: Caller = OWNER
):
    command = command or CreateSession()
    events = machine.decide(None, command, evidence or Evidence(), ctx(caller))
    return machine.evolve_all(None, events, session_id="s1", at_ms=NOW)


def with_alice():
    return created(
        CreateSession(checks=Checks(user=UserCheck(user_id="alice"))), Evidence(user=ALICE)
    )


class TestCreate:
    def test_an_empty_create_produces_a_session_and_a_token(self):
        events = machine.decide(None, CreateSession(), Evidence(), ctx())
        assert [type(e) for e in events] == [SessionAdded, TokenSet]

    def test_events_come_in_zitadel_order(self):
        command = CreateSession(
            checks=Checks(user=UserCheck(user_id="alice"), password="x"),
            metadata={"k": b"v"},
            lifetime_ms=1000,
        )
        events = machine.decide(None, command, Evidence(user=ALICE, password_verified=True), ctx())
        assert [type(e) for e in events] == [
            SessionAdded,
            UserChecked,
            PasswordChecked,
            MetadataSet,
            LifetimeSet,
            TokenSet,
        ]

    def test_empty_metadata_values_are_not_stored_on_create(self):
        events = machine.decide(None, CreateSession(metadata={"gone": b""}), Evidence(), ctx())
        assert not any(isinstance(e, MetadataSet) for e in events)

    def test_password_without_a_user_is_refused(self):
        with pytest.raises(FailedPrecondition) as err:
            machine.decide(None, CreateSession(checks=Checks(password="x")), Evidence(), ctx())
        assert err.value.error_id == "COMMAND-Sfw3f"

    @pytest.mark.parametrize(
        "state", ["USER_STATE_INACTIVE", "USER_STATE_LOCKED", "USER_STATE_DELETED"]
    )
    def test_a_user_that_is_not_enabled_cannot_be_checked(self, state):
        user = msgspec.structs.replace(ALICE, state=state)
        command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")))
        with pytest.raises(FailedPrecondition) as err:
            machine.decide(None, command, Evidence(user=user), ctx())
        assert err.value.error_id == "SESSION-Gj4ko"

    def test_create_needs_session_write_on_the_instance(self):
        with pytest.raises(PermissionDenied):
            machine.decide(None, CreateSession(), Evidence(), ctx(NOBODY))

    def test_a_negative_lifetime_is_refused(self):
        with pytest.raises(InvalidArgument) as err:
            machine.decide(None, CreateSession(lifetime_ms=-1), Evidence(), ctx())
        assert err.value.error_id == "COMMAND-asEG4"

    def test_evolve_sets_sequence_expiration_and_token(self):
        state = created(CreateSession(lifetime_ms=5000))
        assert state.sequence == 3
        assert state.expiration_ms == NOW + 5000
        assert state.token_hash == TOKEN.token_hash
        assert state.creator_id == "admin"


class TestSet:
    def test_a_noop_set_produces_nothing_and_keeps_the_token(self):
        state = created(CreateSession(metadata={"k": b"v"}))
        assert machine.decide(state, SetSession(metadata={"k": b"v"}), Evidence(), ctx()) == []
        assert machine.decide(state, SetSession(metadata={"x": b""}), Evidence(), ctx()) == []

    def test_metadata_merges_and_the_event_carries_the_full_map(self):
        state = created(CreateSession(metadata={"a": b"1", "b": b"2"}))
        events = machine.decide(
            state, SetSession(metadata={"b": b"", "c": b"3"}), Evidence(), ctx()
        )
        assert events[0] == MetadataSet(metadata={"a": b"1", "c": b"3"})
        assert isinstance(events[-1], TokenSet)

    def test_unknown_session_is_not_found(self):
        with pytest.raises(NotFound):
            machine.decide(None, SetSession(), Evidence(), ctx())

    def test_user_change_is_not_possible(self):
        state = with_alice()
        command = SetSession(checks=Checks(user=UserCheck(user_id="bob")))
        with pytest.raises(InvalidArgument) as err:
            machine.decide(state, command, Evidence(user=BOB), ctx())
        assert err.value.message == "user change not possible"

    def test_rechecking_the_same_user_refreshes_verified_at(self):
        state = with_alice()
        command = SetSession(checks=Checks(user=UserCheck(user_id="alice")))
        events = machine.decide(state, command, Evidence(user=ALICE), ctx(now_ms=NOW + 10))
        after = machine.evolve_all(state, events, session_id="s1", at_ms=NOW + 10)
        assert after is not None
        assert after.factors.user is not None
        assert after.factors.user.verified_at_ms == NOW + 10

    def test_password_uses_the_stored_user(self):
        state = with_alice()
        command = SetSession(checks=Checks(password="pw"))
        assert machine.preflight(state, command, Evidence(), ctx()) == "alice"

    def test_expired_session_cannot_be_written(self):
        state = created(CreateSession(lifetime_ms=1000))
        with pytest.raises(FailedPrecondition) as err:
            machine.decide(
                state, SetSession(metadata={"k": b"v"}), Evidence(), ctx(now_ms=NOW + 1001)
            )
        assert err.value.error_id == "COMMAND-Hkl3d"

    def test_expiry_is_strictly_before_now(self):
        state = created(CreateSession(lifetime_ms=1000))
        events = machine.decide(
            state, SetSession(lifetime_ms=1000), Evidence(), ctx(now_ms=NOW + 1000)
        )
        assert isinstance(events[0], LifetimeSet)

    def test_set_needs_write_permission_on_the_users_org(self):
        state = with_alice()
        org_owner_elsewhere = Caller(
            user_id="x", grants=(Grant(roles=("ORG_OWNER",), org_id="org2"),)
        )
        with pytest.raises(PermissionDenied):
            machine.decide(state, SetSession(lifetime_ms=5), Evidence(), ctx(org_owner_elsewhere))

    def test_a_rejected_command_leaves_the_state_unchanged(self):
        state = with_alice()
        before = msgspec.json.encode(state)
        with pytest.raises(InvalidArgument):
            machine.decide(
                state,
                SetSession(checks=Checks(user=UserCheck(user_id="bob"))),
                Evidence(user=BOB),
                ctx(),
            )
        assert msgspec.json.encode(state) == before


class TestDelete:
    def test_the_right_token_deletes(self):
        state = with_alice()
        events = machine.decide(
            state, DeleteSession(session_token=TOKEN.plain), Evidence(), ctx(NOBODY)
        )
        assert events == [Terminated()]

    def test_a_wrong_token_is_refused_even_with_permissions(self):
        state = with_alice()
        with pytest.raises(PermissionDenied) as err:
            machine.decide(state, DeleteSession(session_token="s.s1.wrong"), Evidence(), ctx())
        assert err.value.error_id == "COMMAND-sGr42"

    def test_the_sessions_own_user_may_delete_it(self):
        state = with_alice()
        events = machine.decide(state, DeleteSession(), Evidence(), ctx(Caller(user_id="alice")))
        assert events == [Terminated()]

    def test_another_user_without_permission_may_not(self):
        with pytest.raises(PermissionDenied):
            machine.decide(with_alice(), DeleteSession(), Evidence(), ctx(Caller(user_id="bob")))

    def test_an_org_owner_of_the_users_org_may(self):
        caller = Caller(user_id="o", grants=(Grant(roles=("ORG_OWNER",), org_id="org1"),))
        assert machine.decide(with_alice(), DeleteSession(), Evidence(), ctx(caller)) == [
            Terminated()
        ]

    def test_deleting_twice_is_idempotent(self):
        state = machine.evolve(with_alice(), Terminated(), session_id="s1", at_ms=NOW)
        assert machine.decide(state, DeleteSession(), Evidence(), ctx()) == []

    def test_an_expired_session_can_be_deleted(self):
        state = created(CreateSession(lifetime_ms=1))
        assert machine.decide(
            state, DeleteSession(session_token=TOKEN.plain), Evidence(), ctx(now_ms=NOW + 10_000)
        ) == [Terminated()]


class TestRead:
    """GetSession/ListSessions visibility without a token (spec §3.3, §6.3): queries.visible."""

    def _summary(self, **fields):
        base = {
            "session_id": "s1",
            "wire": msgspec.Raw(b"{}"),
            "user_id": "alice",
            "org_id": "org1",
            "creator_id": "login",
            "fingerprint_id": "fp",
            "creation_ms": NOW,
            "expiration_ms": None,
            "view_version": 0,
            "password_ms": None,
        }
        return SessionSummary(**{**base, **fields})

    def test_creator_user_user_agent_and_permission_grant_reading(self):
        summary = self._summary()
        assert visible(summary, Caller(user_id="login"))
        assert visible(summary, Caller(user_id="alice"))
        assert visible(summary, Caller(user_id="x", agent_id="fp"))
        assert visible(summary, OWNER)
        org_owner = Caller(user_id="o", grants=(Grant(roles=("ORG_OWNER",), org_id="org1"),))
        assert visible(summary, org_owner)

    def test_strangers_and_other_orgs_may_not_read(self):
        summary = self._summary()
        assert not visible(summary, Caller(user_id="x", agent_id="other"))
        other_org = Caller(user_id="o", grants=(Grant(roles=("ORG_OWNER",), org_id="org2"),))
        assert not visible(summary, other_org)
        assert not visible(self._summary(user_id="", org_id=""), other_org)
