"""The bearer rules of app/services/auth.py, each on its own, against in-memory ports.

Through the API some rules hide behind others (a terminated session's stored summary has no
user either); here every rule is the only one that can refuse, so dropping it is noticed.
"""

from __future__ import annotations

import msgspec
import pytest
from msgspec.structs import replace

from actors import tokens
from actors.errors import Unauthenticated
from actors.permissions import Caller, Grant
from actors.queries import SessionSummary
from actors.views import UserView
from app.services.auth import Authenticator
from app.services.user_views import UserViewCache

NOW = 1_700_000_000_000
PASSWORD_MS = NOW - 5_000
TOKEN = tokens.issue(tokens.SESSION_PREFIX, "s1", "t1", b"\x04" * 32)
META = SessionSummary(
    session_id="s1",
    wire=msgspec.Raw(b"{}"),
    user_id="alice",
    org_id="org1",
    creator_id="login",
    fingerprint_id="fp1",
    creation_ms=NOW - 10_000,
    expiration_ms=NOW + 60_000,
    view_version=0,
    password_ms=PASSWORD_MS,
)
ALICE = UserView(
    id="alice",
    org_id="org1",
    login_name="alice",
    display_name="Alice",
    state="USER_STATE_ACTIVE",
    password_changed_ms=NOW - 20_000,
)
ALICE_CALLER = Caller(user_id="alice", org_id="org1")
ROBOT = Caller(user_id="robot", grants=(Grant(roles=("IAM_OWNER",)),))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def now_ms(self) -> int:
        return self.now


class World:
    """Sessions, users and PATs as the authenticator's ports see them."""

    def __init__(self) -> None:
        self.meta: SessionSummary | None = META
        self.token_hash = TOKEN.token_hash
        self.views: dict[str, UserView] = {"alice": ALICE}
        self.callers: dict[str, Caller] = {"alice": ALICE_CALLER}
        self.pats: dict[str, Caller] = {}
        self.pat_lookups = 0

    async def read_meta(self, session_id: str) -> tuple[SessionSummary | None, str]:
        assert session_id == "s1"
        return self.meta, self.token_hash

    async def user_view(self, user_id: str) -> UserView | None:
        return self.views.get(user_id)

    async def caller_for_user(self, user_id: str) -> Caller | None:
        return self.callers.get(user_id)

    async def authenticate_pat(self, token: str) -> Caller | None:
        self.pat_lookups += 1
        return self.pats.get(token)


@pytest.fixture(name="world")
def _world() -> World:
    return World()


@pytest.fixture(name="clock")
def _clock() -> Clock:
    return Clock()


@pytest.fixture(name="views")
def _views(world: World) -> UserViewCache:
    return UserViewCache(world, ttl_ms=0)


@pytest.fixture(name="auth")
def _auth(world: World, views: UserViewCache, clock: Clock) -> Authenticator:
    return Authenticator(world, world, views, clock, cache_ttl_ms=60_000)  # type: ignore[arg-type]


async def refused(auth: Authenticator, token: str = TOKEN.plain) -> None:
    with pytest.raises(Unauthenticated) as raised:
        await auth.authenticate(token)
    assert (raised.value.error_id, raised.value.key) == ("AUTH-7fs1e", "Errors.Token.Invalid")


# -- session tokens ------------------------------------------------------------------------


async def test_a_live_session_acts_as_its_user_from_its_user_agent(auth):
    assert await auth.authenticate(TOKEN.plain) == replace(ALICE_CALLER, agent_id="fp1")


async def test_a_missing_session(auth, world):
    world.meta = None
    await refused(auth)


async def test_a_terminated_session_even_with_its_user_and_token(auth, world):
    world.meta = replace(META, terminated=True)
    await refused(auth)


async def test_a_session_without_a_user(auth, world):
    world.meta = replace(META, user_id="")
    await refused(auth)


async def test_a_rotated_or_wrong_token(auth, world):
    world.token_hash = tokens.issue("s", "s1", "t2", b"\x05" * 32).token_hash
    await refused(auth)
    world.token_hash = TOKEN.token_hash
    await refused(auth, "s.s1.not-the-secret")


async def test_an_expired_session_but_not_at_its_last_millisecond(auth, clock):
    clock.now = NOW + 60_000
    assert (await auth.authenticate(TOKEN.plain)).user_id == "alice"
    clock.now += 1
    await refused(auth)


async def test_a_session_that_never_expires(auth, world, clock):
    world.meta = replace(META, expiration_ms=None)
    clock.now = NOW * 10
    assert (await auth.authenticate(TOKEN.plain)).user_id == "alice"


@pytest.mark.parametrize(
    "state", ["USER_STATE_INACTIVE", "USER_STATE_LOCKED", "USER_STATE_INITIAL"]
)
async def test_only_an_active_user_authenticates(auth, world, state):
    world.views["alice"] = replace(ALICE, state=state)
    await refused(auth)


async def test_a_deleted_user(auth, world):
    del world.views["alice"]
    await refused(auth)


async def test_a_password_checked_before_the_last_change(auth, world):
    world.views["alice"] = replace(ALICE, password_changed_ms=PASSWORD_MS)
    assert (await auth.authenticate(TOKEN.plain)).user_id == "alice"
    world.views["alice"] = replace(ALICE, password_changed_ms=PASSWORD_MS + 1)
    await refused(auth)


async def test_a_session_without_a_checked_password(auth, world):
    world.meta = replace(META, password_ms=None)
    await refused(auth)


async def test_a_user_that_is_no_caller(auth, world):
    del world.callers["alice"]
    await refused(auth)


# -- personal access tokens ----------------------------------------------------------------


async def test_a_pat_is_looked_up_once_per_ttl(auth, world):
    world.pats["p.robot.secret"] = ROBOT
    assert await auth.authenticate("p.robot.secret") == ROBOT
    assert await auth.authenticate("p.robot.secret") == ROBOT
    assert world.pat_lookups == 1


async def test_an_unknown_pat_is_refused_and_remembered(auth, world):
    await refused(auth, "p.robot.wrong")
    await refused(auth, "p.robot.wrong")
    assert world.pat_lookups == 1


async def test_a_token_of_any_other_shape_is_the_configured_admin_token(auth, world):
    world.pats[tokens.as_pat("my-admin-token")] = ROBOT
    assert await auth.authenticate("my-admin-token") == ROBOT
    await refused(auth, "another-token")


async def test_a_dotted_admin_token_is_not_taken_for_a_pat(auth, world):
    world.pats[tokens.as_pat("x.admin.token")] = ROBOT
    assert await auth.authenticate("x.admin.token") == ROBOT


async def test_a_changed_user_is_looked_up_again(auth, world, views):
    world.pats["p.robot.secret"] = ROBOT
    other = Caller(user_id="other")
    world.pats["p.other.secret"] = other
    assert await auth.authenticate("p.robot.secret") == ROBOT
    assert await auth.authenticate("p.other.secret") == other
    views.invalidate("robot")
    del world.pats["p.robot.secret"]
    await refused(auth, "p.robot.secret")
    assert await auth.authenticate("p.other.secret") == other
    assert world.pat_lookups == 3
