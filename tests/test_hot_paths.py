"""The per-request fast paths keep the behaviour of the code they replaced.

Timestamps formatted once per second, hash fields parsed inline, a listing's views checked
with one user lookup per user, the auth middleware without a per-request closure, the request
log without building a filtered line, the actor's lazy idle timer and the registry's timer
in place of ``asyncio.timeout`` + ``shield``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re

import msgspec
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from actors.commands import SetSession
from actors.errors import DeadlineExceeded
from actors.model import CheckedFactor, Factors, SessionState, UserAgent, UserFactor
from actors.permissions import SYSTEM, Caller
from actors.timefmt import rfc3339_ms
from actors.views import UserView, render
from app.services.auth import Authenticator
from app.services.clock import SystemClock
from app.services.user_views import UserViewCache
from app.transports.appkeys import AUTHENTICATOR
from app.transports.http import caller, respond
from app.transports.middlewares import authenticate, error_body
from storage import codec, keys
from storage.multiplex import MultiplexedRedis
from storage.sessions import RedisSessionStore
from tests.support import ADMIN_TOKEN, Api
from tests.test_actor import _new_session, make_registry

# -- pure ---------------------------------------------------------------------------------


def _reference(ms: int) -> str:
    """Uncached, straight from datetime: what the per-second cache must reproduce."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def test_cached_rfc3339_matches_an_uncached_reference():
    rng = random.Random(7)  # noqa: S311 - test values, not secrets
    values = [0, 1, 999, 1000, 1001, -1, -999, -1000, -1001, 1_764_000_000_000, 253402300799999]
    values += [rng.randrange(-(10**12), 10**13) for _ in range(20_000)]
    values += list(range(1_764_000_000_990, 1_764_000_001_010))  # across one second boundary
    for ms in values:
        assert rfc3339_ms(ms) == _reference(ms), ms


def _state() -> SessionState:
    user = UserFactor(id="u1", org_id="o1", verified_at_ms=1_700_000_000_100, view_version=3)
    return SessionState(
        id="s1",
        creation_ms=1_700_000_000_123,
        change_ms=1_700_000_000_500,
        sequence=4,
        creator_id="c1",
        factors=Factors(user=user, password=CheckedFactor(verified_at_ms=1_700_000_000_500)),
        user_agent=UserAgent(fingerprint_id="f1"),
        expiration_ms=1_700_000_060_000,
    )


def test_a_summary_row_carries_every_field_and_the_rendered_view():
    state = _state()
    meta = codec.meta_from_fields("s1", [codec.summary_row(state), None])
    assert meta is not None
    assert msgspec.json.decode(meta.wire) == msgspec.json.decode(msgspec.json.encode(render(state)))
    assert (meta.session_id, meta.user_id, meta.org_id) == ("s1", "u1", "o1")
    assert (meta.creator_id, meta.fingerprint_id, meta.creation_ms) == ("c1", "f1", 1700000000123)
    assert (meta.expiration_ms, meta.view_version) == (1700000060000, 3)
    assert meta.password_ms == 1700000000500
    assert meta.terminated is False


def test_missing_and_terminated_sessions_and_a_page_of_rows():
    assert codec.meta_from_fields("s3", [None, None]) is None
    gone = codec.meta_from_fields("s4", [None, b"1"])
    assert gone is not None
    assert gone.terminated
    row = codec.summary_row(_state())
    page = codec.summaries_from_rows([row, None, row])
    assert [m.session_id if m else None for m in page] == ["s1", None, "s1"]
    assert codec.summaries_from_rows([None, None]) == [None, None]


def test_as_text_of_client_replies():
    assert codec.as_text(b"abc") == "abc"
    assert codec.as_text(b"") == ""
    assert codec.as_text(None) == ""
    assert codec.as_text(42) == "42"
    assert codec.as_text("x") == "x"


def test_a_user_agent_with_nothing_set_is_not_rendered():
    state = SessionState(id="s", creation_ms=1000, change_ms=1000, user_agent=UserAgent())
    assert render(state).user_agent is None
    blank = SessionState(id="s", creation_ms=1000, change_ms=1000, user_agent=UserAgent(ip=""))
    shown = render(blank).user_agent
    assert shown is not None
    assert shown.ip == ""
    headers = UserAgent(header={"accept": ["*/*"]})
    with_header = render(SessionState(id="s", creation_ms=1, change_ms=1, user_agent=headers))
    assert with_header.user_agent is not None
    assert with_header.user_agent.header["accept"].values == ["*/*"]


# -- the service ----------------------------------------------------------------------------


async def test_a_listing_rerenders_each_stale_session_and_keeps_the_fresh_ones(api: Api):
    changed, other = await api.human(), await api.human()
    first = (await api.session_for(changed)).body["sessionId"]
    second = (await api.session_for(changed)).body["sessionId"]
    third = (await api.session_for(other)).body["sessionId"]
    reply = await api.call(
        "POST",
        f"/v2/users/{changed}/password",
        body={"newPassword": {"password": "An0ther-Passw0rd!"}},
    )
    assert reply.status == 200, reply.body
    listed = await api.search({"queries": [{"idsQuery": {"ids": [first, second, third]}}]})
    assert listed.status == 200, listed.body
    factors = {s["id"]: s["factors"] for s in listed.body["sessions"]}
    assert "password" not in factors[first]
    assert "password" not in factors[second]
    assert "password" in factors[third]
    assert {f["user"]["id"] for f in factors.values()} == {changed, other}
    for sid in (first, second, third):  # the same as GetSession shows
        assert (await api.get(sid)).body["session"]["factors"] == factors[sid]


async def test_a_request_without_an_id_gets_a_generated_one(api: Api):
    response = await api.client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-Id"])


async def test_no_request_line_when_info_is_filtered(api: Api):
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        with structlog.testing.capture_logs() as logs:
            response = await api.client.get("/healthz")
        assert response.status == 200
        assert [entry for entry in logs if entry["event"] == "request"] == []
    finally:
        structlog.reset_defaults()


class _OnePat:
    """The callers of the middleware test: one PAT, one caller."""

    async def authenticate_pat(self, token: str) -> Caller | None:
        return SYSTEM if token == "p.svc.secret" else None

    async def caller_for_user(self, user_id: str) -> Caller | None:
        return None


class _NoUsers:
    async def user_view(self, user_id: str) -> UserView | None:
        return None


async def _whoami(request: web.Request) -> web.Response:
    return respond({"grants": len(caller(request).grants)})


async def _health(_request: web.Request) -> web.Response:
    return respond({"status": "SERVING"})


async def test_the_module_level_auth_middleware(fast_redis: MultiplexedRedis):
    sessions = RedisSessionStore(
        fast_redis,
        instance_id="inst",
        retention_ms=0,
        partitions=4,
        stream_maxlen=10,
        lease_ttl_ms=1000,
    )
    app = web.Application(middlewares=[error_body, authenticate])
    app[AUTHENTICATOR] = Authenticator(
        _OnePat(), sessions, UserViewCache(_NoUsers(), 0), SystemClock(), 60_000
    )
    app.router.add_get("/whoami", _whoami)
    app.router.add_get("/healthz", _health)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert (await client.get("/healthz")).status == 200
        for headers in ({}, {"Authorization": "Basic p.svc.secret"}, {"Authorization": "Bearer "}):
            response = await client.get("/whoami", headers=headers)
            assert response.status == 401
            assert (await response.json())["details"][0]["id"] == "AUTH-7fs1e"
        wrong = await client.get("/whoami", headers={"Authorization": "Bearer p.svc.wrong"})
        assert wrong.status == 401
        right = await client.get("/whoami", headers={"Authorization": "bearer  p.svc.secret "})
        assert right.status == 200
        assert await right.json() == {"grants": 1}


async def test_the_admin_token_of_any_shape_still_authenticates(api: Api):
    assert not ADMIN_TOKEN.startswith("p.")
    assert (await api.search({})).status == 200


# -- the actor runtime ----------------------------------------------------------------------


async def test_an_actor_kept_busy_past_idle_s_stays_then_stops(redis, fast_redis):
    idle_s = 0.25
    registry = make_registry(fast_redis, idle_s=idle_s)
    sid = await _new_session(registry)
    await registry.ask(sid, SetSession(metadata={"k0": b"v"}), user=None, caller=SYSTEM)
    actor = registry._actors[sid]
    loop = asyncio.get_running_loop()
    started, asked = loop.time(), 1
    while loop.time() - started < 2.5 * idle_s:  # busy for longer than idle_s ...
        await asyncio.sleep(0.02)  # ... never idle_s apart (a 0.23 s margin per gap)
        await registry.ask(sid, SetSession(metadata={f"k{asked}": b"v"}), user=None, caller=SYSTEM)
        asked += 1
        # the same actor: one stopped early and replaced by a new one would also be "1 live"
        assert registry._actors.get(sid) is actor
    deadline = loop.time() + 5
    while registry.live_actors and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert registry.live_actors == 0
    assert await redis.exists(keys.session_lease(sid)) == 0
    outcome = await registry.ask(sid, SetSession(metadata={"k": b"v"}), user=None, caller=SYSTEM)
    assert outcome.state is not None
    assert len(outcome.state.metadata) == asked + 1  # a new actor picks up where the old stopped
    assert registry._actors[sid] is not actor
    await registry.close()


async def test_an_ask_that_waits_too_long_fails_and_the_command_still_lands(redis, fast_redis):
    registry = make_registry(fast_redis, lease_wait_ms=30_000)
    registry._ask_timeout_s = 0.1  # the one knob make_registry fixes
    sid = await _new_session(registry)
    # held until the test lets go (no expiry racing the 0.1 s deadline on a slow machine)
    await redis.set(keys.session_lease(sid), "someone-else")
    with pytest.raises(DeadlineExceeded):
        await registry.ask(sid, SetSession(metadata={"late": b"v"}), user=None, caller=SYSTEM)
    assert isinstance(registry._store, RedisSessionStore)
    stored = await registry._store.read_state(sid)
    assert stored is not None
    assert stored.metadata == {}  # not landed: still waiting
    await redis.delete(keys.session_lease(sid))  # the other holder is done
    registry._ask_timeout_s = 10.0
    # queued behind the timed-out command, so it sees that one's outcome
    outcome = await registry.ask(sid, SetSession(), user=None, caller=SYSTEM)
    assert outcome.state is not None
    assert outcome.state.metadata == {"late": b"v"}
    await registry.close()


async def test_a_cancelled_ask_does_not_stop_its_command(redis, fast_redis):
    registry = make_registry(fast_redis, lease_wait_ms=30_000)
    sid = await _new_session(registry)
    await redis.set(keys.session_lease(sid), "someone-else")  # held until the test lets go
    asked = asyncio.ensure_future(
        registry.ask(sid, SetSession(metadata={"k": b"v"}), user=None, caller=SYSTEM)
    )
    await asyncio.sleep(0.05)
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    assert isinstance(registry._store, RedisSessionStore)
    stored = await registry._store.read_state(sid)
    assert stored is not None
    assert stored.metadata == {}  # cancelled before it ran
    await redis.delete(keys.session_lease(sid))
    outcome = await registry.ask(sid, SetSession(), user=None, caller=SYSTEM)
    assert outcome.state is not None
    assert outcome.state.metadata == {"k": b"v"}
    await registry.close()
