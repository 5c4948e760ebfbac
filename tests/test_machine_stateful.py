"""Stateful property tests: the pure session rules agree with a hand-written model of the spec.

Hypothesis drives one session through random sequences of CreateSession, SetSession and
DeleteSession (with user and password checks, metadata patches, lifetimes, tokens and callers
of differing rights) and of clock advances. A small model in plain Python values predicts, from
spec §3-§4, §8 and §9 alone, whether each command succeeds, with which error, and which events
it produces. After every step the file proves that:

- a refused command changes nothing, and deciding never mutates the state it is given;
- ``sequence`` grows by exactly the number of events produced;
- a terminated session accepts nothing but an idempotent delete, which produces no events;
- the current token is the one issued by the last create or set that produced events (a
  delete's ``session.terminated`` issues none, spec §7), and every earlier token is dead;
- the stored metadata is the model's merge (set on differing non-empty values, delete on empty,
  untouched keys kept);
- lifetime, expiration (``at + lifetime``, strict "before now") and termination are the model's;
- the checked user, once set, never changes, not even on termination: a repeated delete by the
  session's own user (or an org owner of that user) must stay an idempotent success (§3.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors import machine, tokens
from actors.commands import (
    Checks,
    Command,
    CreateSession,
    DeleteSession,
    Evidence,
    SetSession,
    UserCheck,
)
from actors.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
)
from actors.events import Event
from actors.model import SessionState, UserRef
from actors.permissions import Caller, Grant

SID = "s1"
T0 = 1_700_000_000_000


def _user(user_id: str, org_id: str, state: str) -> UserRef:
    return UserRef(
        id=user_id,
        org_id=org_id,
        state=f"USER_STATE_{state}",
        login_name=user_id,
        display_name=user_id.title(),
    )


USERS = {
    "alice": _user("alice", "org1", "ACTIVE"),
    "bob": _user("bob", "org2", "ACTIVE"),
    "erin": _user("erin", "org1", "INITIAL"),
    "carol": _user("carol", "org1", "LOCKED"),
    "dave": _user("dave", "org2", "INACTIVE"),
}
#: Spec §3.1: enabled = active or initial; written out here, not taken from ``UserRef``.
ENABLED_USERS = frozenset({"alice", "bob", "erin"})


@dataclass(frozen=True)
class Who:
    """A caller and, from spec §10's role table, what it may do to sessions."""

    caller: Caller
    writes: bool = False  # session.write on the instance (no default org role grants it)
    deletes_everywhere: bool = False
    deletes_in_orgs: frozenset[str] = frozenset()


def _roles(*roles: str, org_id: str = "") -> tuple[Grant, ...]:
    return (Grant(roles=roles, org_id=org_id),)


CALLERS = {
    "owner": Who(Caller(user_id="admin", grants=_roles("IAM_OWNER")), True, True),
    "login": Who(Caller(user_id="login", grants=_roles("IAM_LOGIN_CLIENT")), True, True),
    "user_manager": Who(Caller(user_id="um", grants=_roles("IAM_USER_MANAGER")), False, True),
    "viewer": Who(Caller(user_id="viewer", grants=_roles("IAM_OWNER_VIEWER"))),
    "org1_owner": Who(
        Caller(user_id="o1", grants=_roles("ORG_OWNER", org_id="org1")),
        deletes_in_orgs=frozenset({"org1"}),
    ),
    "alice": Who(Caller(user_id="alice")),
    "bob": Who(Caller(user_id="bob")),
    "stranger": Who(Caller(user_id="someone")),
}

# Three quarters of the writes come from callers that may write, so that enough get past the
# permission check; deletes are tried by every caller alike.
anyone = st.sampled_from(sorted(CALLERS))
may_write = st.sampled_from(["owner", "login"])
writers = st.one_of(may_write, may_write, anyone)
checked_users = st.sampled_from([None, None, None, "alice", "alice", *sorted(USERS)])
metadata_patches = st.dictionaries(
    st.sampled_from(["a", "b", "c"]), st.sampled_from([b"", b"1", b"2"]), max_size=3
)
valid_lifetimes = st.integers(1, 3000)
lifetimes = st.one_of(st.none(), st.none(), valid_lifetimes, valid_lifetimes, st.integers(-2, 0))
delete_tokens = st.sampled_from(["none", "current", "stale", "forged", "other_session"])


@dataclass(frozen=True)
class Refusal:
    """An expected error: its class, its id, and (when the spec fixes it) its message."""

    kind: type[ServiceError]
    error_id: str | None = None
    message: str | None = None


def _permission_denied() -> Refusal:
    return Refusal(PermissionDenied)  # AUTHZ-*; the id is checked by prefix


@dataclass
class Model:
    """The spec's view of the one session, in plain values."""

    exists: bool = False
    terminated: bool = False
    user: str | None = None
    user_checked_at: int | None = None
    password_checked_at: int | None = None
    metadata: dict[str, bytes] = field(default_factory=dict)
    lifetime: int | None = None
    expiration: int | None = None
    sequence: int = 0
    token_plain: str | None = None
    token_id: str | None = None
    dead_tokens: list[str] = field(default_factory=list)

    @property
    def user_org(self) -> str | None:
        return USERS[self.user].org_id if self.user else None


def merged(current: dict[str, bytes], patch: dict[str, bytes]) -> dict[str, bytes]:
    """Spec §9.1 on plain dicts."""
    out = dict(current)
    for key, value in patch.items():
        if value:
            out[key] = value
        elif key in out:
            del out[key]
    return out


@dataclass
class Step:
    """What the last command did, for the invariants."""

    command: Command
    before: SessionState | None
    before_json: bytes
    events: list[Event] = field(default_factory=list)
    error: ServiceError | None = None


class SessionRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.state: SessionState | None = None
        self.now = T0
        self.minted = 0
        self.step: Step | None = None
        self.first_user: tuple[str, str] | None = None

    # -- expectations (the model) ---------------------------------------------------------------

    def _expect_checks(self, user: str | None, password: bool) -> Refusal | None:
        """Spec §4: user change, then password without any user."""
        m = self.model
        if user is not None and m.user is not None and m.user != user:
            return Refusal(InvalidArgument, "", "user change not possible")
        if password and user is None and m.user is None:
            return Refusal(FailedPrecondition, "COMMAND-Sfw3f")
        return None

    def _expect_create(
        self,
        user: str | None,
        password: bool,
        patch: dict[str, bytes],
        lifetime: int | None,
        who: Who,
    ) -> Refusal | list[str]:
        if user is not None and user not in ENABLED_USERS:
            return Refusal(FailedPrecondition, "SESSION-Gj4ko")
        if not who.writes:
            return _permission_denied()
        if refused := self._expect_checks(user, password):
            return refused
        if lifetime is not None and lifetime <= 0:
            return Refusal(InvalidArgument, "COMMAND-asEG4")
        events = ["SessionAdded"]
        events += self._expect_write_events(user, password, patch, lifetime)
        return [*events, "TokenSet"]

    def _expect_set(
        self,
        user: str | None,
        password: bool,
        patch: dict[str, bytes],
        lifetime: int | None,
        who: Who,
    ) -> Refusal | list[str]:
        m = self.model
        if user is not None and user not in ENABLED_USERS:
            return Refusal(FailedPrecondition, "SESSION-Gj4ko")
        if not m.exists:
            return Refusal(NotFound, "COMMAND-Flk38")
        if not who.writes:
            return _permission_denied()
        if m.terminated:
            return Refusal(FailedPrecondition, "COMMAND-Hewfq")
        if m.expiration is not None and m.expiration < self.now:
            return Refusal(FailedPrecondition, "COMMAND-Hkl3d")
        if refused := self._expect_checks(user, password):
            return refused
        if lifetime is not None and lifetime <= 0:
            return Refusal(InvalidArgument, "COMMAND-asEG4")
        events = self._expect_write_events(user, password, patch, lifetime)
        return [*events, "TokenSet"] if events else []

    def _expect_write_events(
        self, user: str | None, password: bool, patch: dict[str, bytes], lifetime: int | None
    ) -> list[str]:
        events = []
        if user is not None:
            events.append("UserChecked")
        if password:
            events.append("PasswordChecked")
        if merged(self.model.metadata, patch) != self.model.metadata:
            events.append("MetadataSet")
        if lifetime is not None:
            events.append("LifetimeSet")
        return events

    def _expect_delete(self, token: str | None, who: Who) -> Refusal | list[str]:
        """Spec §3.4: token, else own user, else session.delete; then idempotence."""
        m = self.model
        if token is not None:
            if not m.exists or token != m.token_plain:
                return Refusal(PermissionDenied, "COMMAND-sGr42")
        elif not (m.exists and m.user is not None and m.user == who.caller.user_id):
            org = m.user_org if m.exists else None
            if not (who.deletes_everywhere or (org is not None and org in who.deletes_in_orgs)):
                return _permission_denied()
        if not m.exists or m.terminated:
            return []
        return ["Terminated"]

    # -- running a command against the machine ---------------------------------------------------

    def _run(self, command: Command, evidence: Evidence, who: Who, expected: Refusal | list[str]):
        """Decide and evolve; return the events, or None when the command was refused."""
        self.minted += 1  # fewer than 254 commands per run: secrets never repeat or forge
        n = self.minted
        token = tokens.issue(tokens.SESSION_PREFIX, SID, f"t{n}", bytes([n % 256]) * 32)
        ctx = machine.Context(now_ms=self.now, caller=who.caller, token=token)
        before = self.state
        self.step = Step(command=command, before=before, before_json=msgspec.json.encode(before))
        outcome = self._decide(before, command, evidence, ctx)
        if isinstance(outcome, ServiceError):
            self.step.error = outcome
            assert isinstance(expected, Refusal), (
                f"model expected {expected}, machine refused with {outcome!r}"
            )
            self._assert_refusal_matches(outcome, expected)
            return None
        events = outcome
        names = [type(event).__name__ for event in events]
        assert not isinstance(expected, Refusal), (
            f"model expected {expected}, machine produced {names}"
        )
        assert names == expected
        self.step.events = events
        self.state = machine.evolve_all(before, events, session_id=SID, at_ms=self.now)
        self.model.sequence += len(events)
        if events and not isinstance(command, DeleteSession):  # spec §7: create/set rotate
            if self.model.token_plain is not None:
                self.model.dead_tokens.append(self.model.token_plain)
            self.model.token_plain, self.model.token_id = token.plain, token.token_id
        return events

    @staticmethod
    def _decide(
        state: SessionState | None, command: Command, evidence: Evidence, ctx: machine.Context
    ) -> list[Event] | ServiceError:
        try:
            return machine.decide(state, command, evidence, ctx)
        except ServiceError as err:
            return err

    @staticmethod
    def _assert_refusal_matches(err: ServiceError, expected: Refusal) -> None:
        assert type(err) is expected.kind, f"expected {expected}, got {err!r}"
        if expected.error_id is not None:
            assert err.error_id == expected.error_id, f"expected {expected}, got {err!r}"
        elif expected.kind is PermissionDenied:
            assert err.error_id.startswith("AUTHZ-"), err
        if expected.message is not None:
            assert err.message == expected.message, f"expected {expected}, got {err!r}"

    def _apply_write(
        self, user: str | None, password: bool, patch: dict[str, bytes], lifetime: int | None
    ) -> None:
        m = self.model
        if user is not None:
            m.user, m.user_checked_at = user, self.now
        if password:
            m.password_checked_at = self.now
        m.metadata = merged(m.metadata, patch)
        if lifetime is not None:
            m.lifetime, m.expiration = lifetime, self.now + lifetime

    @staticmethod
    def _command_parts(user: str | None, password: bool) -> tuple[Checks, Evidence]:
        checks = Checks(
            user=UserCheck(user_id=user) if user is not None else None,
            password="pw" if password else None,
        )
        evidence = Evidence(user=USERS[user] if user else None, password_verified=password)
        return checks, evidence

    # -- rules -----------------------------------------------------------------------------------

    @precondition(lambda self: not self.model.exists)
    @rule(
        user=checked_users,
        password=st.booleans(),
        patch=metadata_patches,
        lifetime=lifetimes,
        caller=writers,
    )
    def create_the_session(self, user, password, patch, lifetime, caller):
        checks, evidence = self._command_parts(user, password)
        command = CreateSession(checks=checks, metadata=patch, lifetime_ms=lifetime)
        expected = self._expect_create(user, password, patch, lifetime, CALLERS[caller])
        if self._run(command, evidence, CALLERS[caller], expected) is not None:
            self.model.exists = True
            self._apply_write(user, password, patch, lifetime)

    @precondition(lambda self: self.model.exists)
    @rule(
        user=checked_users,
        password=st.booleans(),
        patch=metadata_patches,
        lifetime=lifetimes,
        caller=writers,
    )
    def set_the_session(self, user, password, patch, lifetime, caller):
        self._set(user, password, patch, lifetime, caller)

    def _set(self, user, password, patch, lifetime, caller):
        checks, evidence = self._command_parts(user, password)
        command = SetSession(checks=checks, metadata=patch, lifetime_ms=lifetime)
        expected = self._expect_set(user, password, patch, lifetime, CALLERS[caller])
        if self._run(command, evidence, CALLERS[caller], expected) is not None:
            self._apply_write(user, password, patch, lifetime)

    @precondition(lambda self: self.model.exists)
    @rule(which=delete_tokens, caller=anyone)
    def delete_the_session(self, which, caller):
        self._delete(which, caller)

    def _delete(self, which, caller):
        token = self._delete_token(which)
        expected = self._expect_delete(token, CALLERS[caller])
        events = self._run(
            DeleteSession(session_token=token), Evidence(), CALLERS[caller], expected
        )
        if events:
            self.model.terminated = True

    @precondition(lambda self: not self.model.exists)
    @rule(
        data=st.data(),
        user=checked_users,
        password=st.booleans(),
        caller=writers,
        delete=st.booleans(),
    )
    def address_a_session_that_does_not_exist(self, data, user, password, caller, delete):
        """Set is NotFound; delete fails on any token, else is a no-op for those allowed."""
        if delete:
            self._delete(data.draw(delete_tokens), caller)
        else:
            self._set(user, password, {"a": b"1"}, None, caller)

    def _delete_token(self, which: str) -> str | None:
        current = self.model.token_plain
        forged = tokens.issue(tokens.SESSION_PREFIX, SID, "forged", b"\xfe" * 32).plain
        match which:
            case "current":
                return current or forged
            case "stale":
                return self.model.dead_tokens[-1] if self.model.dead_tokens else forged
            case "forged":
                return forged
            case "other_session":
                return (current or forged).replace(f"s.{SID}.", "s.s2.")
            case _:
                return None

    @rule(ms=st.integers(0, 2500))
    def let_time_pass(self, ms):
        self.now += ms
        self.step = None

    @precondition(
        lambda self: self.model.expiration is not None and self.model.expiration >= self.now
    )
    @rule(past=st.sampled_from([0, 1]))
    def jump_to_the_expiry(self, past):
        """Land exactly on the expiration (still live) or one ms after it (expired)."""
        assert self.model.expiration is not None
        self.now = self.model.expiration + past
        self.step = None

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def a_failed_command_changes_nothing(self):
        if self.step is None:
            return
        assert msgspec.json.encode(self.step.before) == self.step.before_json, "decide mutated"
        if self.step.error is not None:
            assert self.state is self.step.before
            assert msgspec.json.encode(self.state) == self.step.before_json

    @invariant()
    def a_terminated_session_accepts_only_an_idempotent_delete(self):
        step = self.step
        if step is None or step.before is None or not step.before.terminated:
            return
        if step.error is None:
            assert isinstance(step.command, DeleteSession), f"accepted {step.command}"
            assert step.events == []

    @invariant()
    def sequence_grows_by_the_events_produced(self):
        if self.step is not None:
            before = self.step.before.sequence if self.step.before else 0
            after = self.state.sequence if self.state else 0
            assert after == before + len(self.step.events)
        assert (self.state.sequence if self.state else 0) == self.model.sequence

    @invariant()
    def the_checked_user_never_changes(self):
        """Termination only marks the session (ZITADEL's ``reduceTerminate`` sets the state)."""
        if self.state is None:
            return
        user = self.state.factors.user
        if self.first_user is None:
            if user is not None:
                self.first_user = (user.id, user.org_id)
            return
        assert user is not None, f"the checked user {self.first_user[0]} vanished"
        assert (user.id, user.org_id) == self.first_user

    @invariant()
    def the_current_token_is_the_last_one_issued(self):
        if self.state is None:
            assert self.model.token_plain is None
            return
        m = self.model
        assert m.token_plain is not None
        assert self.state.token_id == m.token_id
        assert tokens.verify(
            m.token_plain, prefix="s", owner_id=SID, stored_hash=self.state.token_hash
        )
        for dead in m.dead_tokens:
            assert not tokens.verify(
                dead, prefix="s", owner_id=SID, stored_hash=self.state.token_hash
            )

    @invariant()
    def the_metadata_is_the_models(self):
        if self.state is not None:
            assert self.state.metadata == self.model.metadata

    @invariant()
    def the_state_matches_the_model(self):
        m, state = self.model, self.state
        assert (state is not None) == m.exists
        if state is None:
            return
        assert state.terminated == m.terminated
        assert state.lifetime_ms == m.lifetime
        assert state.expiration_ms == m.expiration
        assert state.is_expired(self.now) == (m.expiration is not None and m.expiration < self.now)
        assert state.user_id == m.user
        user = state.factors.user
        assert (user.verified_at_ms if user else None) == m.user_checked_at
        password = state.factors.password
        assert (password.verified_at_ms if password else None) == m.password_checked_at


SessionRules.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSessionRules = SessionRules.TestCase
