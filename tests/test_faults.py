"""Redis failing under the real service: crashes, freezes, a full memory, every error reply.

What this file proves, each against a real ``redis-server`` the test owns (tests/fault_server.py:
AOF with ``appendfsync always``, killed, frozen, restarted and reconfigured by the test) and the
real application in-process:

- SIGKILL and an AOF restart under write load: no 500, only retryable 503s with
  ``Retry-After`` while Redis is gone or loading, recovery without restarting the service,
  and not one acknowledged write lost;
- a frozen Redis (SIGSTOP): answers within about the command timeout, then at once once the
  circuit is open, a 503 readiness probe within a second, recovery after SIGCONT;
- ``maxmemory`` reached: 429 ``STORAGE-full`` at once for every write, 503 readiness;
- each error reply of ``storage.errors`` produced by a real server (BUSY, READONLY,
  MASTERDOWN, NOAUTH, WRONGPASS, NOPERM, MISCONF; LOADING in the crash test): its 503 and id,
  ``Retry-After``, and recovery when the condition ends; the two a single node cannot produce
  (CLUSTERDOWN, TRYAGAIN) through the pure mapping function;
- a commit whose relay step meets an error reply nothing maps (a corrupted key: WRONGTYPE)
  is answered, the actor survives, and the repair publishes its events once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ResponseError

from actors.errors import ResourceExhausted, Unavailable
from app.application import create_app
from app.process.bootstrap import bootstrap
from storage import keys
from storage.errors import mapped_errors
from tests.apifixtures import make_settings
from tests.fault_server import FaultRedis
from tests.support import ADMIN_TOKEN, b64

pytestmark = pytest.mark.slow

Client = TestClient[web.Request, web.Application]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

#: Short bounds, so that no test ever waits for the production defaults (2 s, 10 s).
TIMEOUT_S = 0.3
FAST: dict[str, Any] = {
    "redis_timeout_ms": int(TIMEOUT_S * 1000),
    "redis_circuit_failures": 3,
    "redis_circuit_open_ms": 500,
    "lease_wait_ms": 500,
    "ask_timeout_s": 3.0,
    "sweep_interval_s": 3600.0,
}
#: What a client may see while Redis is gone or loading its AOF after a restart.
WHILE_DOWN = frozenset({"STORAGE-down", "STORAGE-loading", "STORAGE-circuit"})


# ---------------------------------------------------------------------------------------------
# helpers: the service, one HTTP call with its latency, polling
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    method: str
    path: str
    status: int
    body: dict[str, Any]
    retry_after: str | None
    started: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def error_id(self) -> str:
        details = self.body.get("details")
        if not isinstance(details, list) or not details:
            return ""  # a success's "details" is an object
        return str(details[0].get("id", ""))

    def __str__(self) -> str:
        return (
            f"{self.method} {self.path} -> {self.status} {self.body}"
            f" Retry-After={self.retry_after} in {self.seconds * 1000:.0f} ms"
        )


async def call(client: Client, method: str, path: str, body: Any = None) -> Answer:
    started = time.monotonic()
    response = await client.request(method, path, json=body, headers=AUTH)
    try:
        payload = await response.json()
    finally:
        response.release()
    return Answer(
        method,
        path,
        response.status,
        payload,
        response.headers.get("Retry-After"),
        started,
        time.monotonic(),
    )


async def create(client: Client, body: dict[str, Any] | None = None) -> Answer:
    return await call(client, "POST", "/v2/sessions", body or {})


async def set_metadata(client: Client, session_id: str, key: str, value: str = "v") -> Answer:
    return await call(
        client, "PATCH", f"/v2/sessions/{session_id}", {"metadata": {key: b64(value)}}
    )


async def metadata_of(client: Client, session_id: str) -> dict[str, str]:
    """The session's metadata; a 503 (retryable by contract, e.g. one command that timed
    out while the restarted Redis is still busy) is retried a few times, anything else not."""
    got = await call(client, "GET", f"/v2/sessions/{session_id}")
    for _ in range(4):
        if got.status != 503:
            break
        await asyncio.sleep(0.2)
        got = await call(client, "GET", f"/v2/sessions/{session_id}")
    assert got.status == 200, str(got)
    return dict(got.body["session"].get("metadata", {}))


@contextlib.asynccontextmanager
async def service(redis_url: str, **overrides: Any) -> AsyncIterator[Client]:
    """The real application (bootstrap, then create_app) on a real HTTP server."""
    settings = make_settings(redis_url, **{**FAST, **overrides})
    await bootstrap(settings, dev_mode=False)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        yield client


@pytest.fixture(name="new_server")
def _new_server() -> Iterator[Callable[..., FaultRedis]]:
    """Start servers of this test; every one is killed and its dir removed afterwards."""
    started: list[FaultRedis] = []

    def start(*args: str, appendonly: bool = True) -> FaultRedis:
        server = FaultRedis(*args, appendonly=appendonly)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


def unavailable_problem(answer: Answer, error_id: str, *, within_s: float = 1.0) -> str | None:
    """Why ``answer`` is not a REST 503 with this id and a Retry-After, in time; or None."""
    if (answer.status, answer.body.get("code"), answer.error_id) != (503, 14, error_id):
        return f"expected 503/14/{error_id}: {answer}"
    if answer.retry_after is None or int(answer.retry_after) < 1:
        return f"no Retry-After: {answer}"
    if answer.seconds >= within_s:
        return f"slower than {within_s}s: {answer}"
    return None


def assert_all_unavailable(answers: list[Answer], error_id: str, within_s: float = 1.0) -> None:
    problems = [unavailable_problem(a, error_id, within_s=within_s) for a in answers]
    assert not any(problems), "\n".join(p for p in problems if p)


def assert_unavailable(answer: Answer, error_id: str, *, within_s: float = 1.0) -> None:
    """A REST 503 (gRPC UNAVAILABLE) with this id and a Retry-After, answered in time."""
    assert (answer.status, answer.body.get("code"), answer.error_id) == (503, 14, error_id), str(
        answer
    )
    assert answer.retry_after is not None, str(answer)
    assert int(answer.retry_after) >= 1, str(answer)
    assert answer.seconds < within_s, str(answer)


def assert_not_ready(answer: Answer, error_ids: set[str], *, within_s: float = 1.3) -> None:
    assert answer.status == 503, str(answer)
    assert answer.body.get("status") == "NOT_SERVING", str(answer)
    assert answer.body.get("redis") in error_ids, str(answer)
    assert answer.retry_after is not None, str(answer)
    assert answer.seconds < within_s, str(answer)


async def eventually(
    attempt: Callable[[], Awaitable[Answer]],
    done: Callable[[Answer], bool],
    *,
    within_s: float,
    pause_s: float = 0.05,
) -> tuple[Answer, float, list[Answer]]:
    """Repeat ``attempt`` until ``done``; the answer, the seconds it took, all answers."""
    started = time.monotonic()
    seen: list[Answer] = []
    while True:
        answer = await attempt()
        seen.append(answer)
        if done(answer):
            return answer, time.monotonic() - started, seen
        if time.monotonic() - started > within_s:
            last = "\n".join(str(a) for a in seen[-5:])
            raise AssertionError(f"not done within {within_s}s; last answers:\n{last}")
        await asyncio.sleep(pause_s)


async def until_created(client: Client, within_s: float) -> tuple[Answer, float]:
    answer, took, _ = await eventually(
        lambda: create(client), lambda a: a.status == 201, within_s=within_s
    )
    return answer, took


async def until_ready(client: Client, within_s: float = 1.0) -> None:
    await eventually(
        lambda: call(client, "GET", "/readyz"), lambda a: a.status == 200, within_s=within_s
    )


async def info(control: aioredis.Redis, section: str) -> dict[str, Any]:
    return dict(await control.info(section))


def unused_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _assert_raises_until(
    check: Callable[[], Awaitable[Any]], text: str, within_s: float = 3.0
) -> None:
    """Poll ``check`` until it fails with an error reply containing ``text`` (redis-py
    strips the first word of the replies it has an exception class for)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await check()
        except redis.RedisError as exc:
            if text in str(exc):
                return
            if time.monotonic() > deadline:
                raise
        else:
            assert time.monotonic() < deadline, f"the server never answered {text!r}"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# 1. SIGKILL and an AOF restart under write load
# ---------------------------------------------------------------------------------------------

PRELOAD_KEYS = 200_000
#: At restart: a per-key delay while loading (negative: 1 µs for one key in N), and events
#: processed every KiB of the file, so that clients get LOADING replies instead of waiting.
SLOW_LOADING = ("--key-load-delay", "-15", "--loading-process-events-interval-bytes", "1024")
WRITERS = 8
SETS_PER_SESSION = 3


@dataclass
class WriteLoad:
    """What the writers saw; ``acknowledged`` maps a 201 session to its 200 metadata keys."""

    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)

    async def writer(self, client: Client, number: int, stop: asyncio.Event) -> None:
        round_ = 0
        while not stop.is_set():
            round_ += 1
            created = await create(client, {"metadata": {"writer": b64(f"{number}-{round_}")}})
            self.answers.append(created)
            if created.status != 201:
                await asyncio.sleep(0.02)  # a failing client retries, but does not spin
                continue
            session_id = created.body["sessionId"]
            self.acknowledged[session_id] = set()
            for index in range(SETS_PER_SESSION):
                key = f"k{index}"
                updated = await set_metadata(client, session_id, key)
                self.answers.append(updated)
                if updated.status == 200:
                    self.acknowledged[session_id].add(key)
                else:
                    await asyncio.sleep(0.02)


async def _preload(server: FaultRedis) -> None:
    """PRELOAD_KEYS small keys, rewritten into the AOF's base (an RDB preamble) so that a
    restart loads them one by one (and ``key-load-delay`` applies)."""
    control = server.client(timeout_s=60)
    try:
        fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'preload:' .. i, 'x') end"
        await control.eval(fill, 0, PRELOAD_KEYS)
        with contextlib.suppress(ResponseError):  # "already in progress" is as good
            await control.bgrewriteaof()
        deadline = time.monotonic() + 30
        while True:
            persistence = await info(control, "persistence")
            if not (persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]):
                break
            assert time.monotonic() < deadline, "the AOF rewrite did not finish"
            await asyncio.sleep(0.05)
        assert persistence["aof_last_bgrewrite_status"] == "ok", persistence
        assert await control.dbsize() == PRELOAD_KEYS
    finally:
        await control.aclose()


async def _watch_loading(server: FaultRedis, stop: asyncio.Event) -> list[float]:
    """Moments at which the server itself reported ``loading:1`` (seen from outside)."""
    seen: list[float] = []
    while not stop.is_set():
        client = server.client(timeout_s=0.5)
        try:
            if (await info(client, "persistence")).get("loading") == 1:
                seen.append(time.monotonic())
        except (redis.RedisError, OSError):
            pass
        finally:
            await client.aclose()
        await asyncio.sleep(0.02)
    return seen


async def _probe_readiness(client: Client, stop: asyncio.Event) -> list[Answer]:
    seen: list[Answer] = []
    while not stop.is_set():
        seen.append(await call(client, "GET", "/readyz"))
        await asyncio.sleep(0.05)
    return seen


async def test_a_redis_sigkill_and_aof_restart_under_load_loses_no_acknowledged_write(
    new_server: Callable[..., FaultRedis],
):
    server = new_server()
    await _preload(server)
    load = WriteLoad()
    # A kill is seen at once (refused connections) and loading answers at once (LOADING):
    # nothing here needs the short command timeout, and with appendfsync always a busy
    # disk can stall a write past it before the kill, which is not what this test is about.
    async with service(server.url, redis_timeout_ms=2000) as client:
        stop, stop_watch = asyncio.Event(), asyncio.Event()
        writers = [
            asyncio.create_task(load.writer(client, number, stop)) for number in range(WRITERS)
        ]
        watcher = asyncio.create_task(_watch_loading(server, stop_watch))
        prober = asyncio.create_task(_probe_readiness(client, stop_watch))
        try:
            await asyncio.sleep(1.0)
            # taken before the signal: kill() waits for the process to end, and the service
            # may notice the dropped connection (and answer 503) before that
            killed_at = time.monotonic()
            server.kill()
            await asyncio.sleep(0.5)
            server.spawn(*SLOW_LOADING)
            restarted_at = time.monotonic()
            await server.wait_ready()
            back_at = time.monotonic()  # PING answers: the AOF is loaded
            await asyncio.sleep(1.0)
        finally:
            stop.set()
            await asyncio.gather(*writers)
            stop_watch.set()
            loading_seen = await watcher
            probes = await prober

        statuses = Counter((a.method, a.status, a.error_id) for a in load.answers)
        print(
            f"\nkill at +{killed_at - load.answers[0].started:.2f}s, restart after"
            f" {restarted_at - killed_at:.2f}s, loaded after {back_at - restarted_at:.2f}s"
            f" (loading:1 seen {len(loading_seen)} times); answers: {dict(statuses)}"
        )
        assert loading_seen, "the restart never spent time LOADING; preload more data"
        for probe in probes:
            if probe.status != 200:
                assert_not_ready(probe, set(WHILE_DOWN))
            # killed, or still loading by the server's own account: never ready
            if probe.started >= killed_at and probe.ended <= loading_seen[-1]:
                assert probe.status == 503, str(probe)
        not_ready = Counter(p.body.get("redis") for p in probes if p.status == 503)
        print(f"readiness while down: {dict(not_ready)}")
        for answer in load.answers:
            assert answer.status != 500, str(answer)
            if answer.status == 503:
                assert answer.error_id in WHILE_DOWN, str(answer)
                assert answer.retry_after == "1", str(answer)
            elif answer.status == 409:
                # a lease taken just before the kill was restored from the AOF with its TTL
                assert (answer.method, answer.error_id) == ("PATCH", "SESSION-lease"), str(answer)
            else:
                assert answer.status in (200, 201), str(answer)
        unavailable = Counter(a.error_id for a in load.answers if a.status == 503)
        assert unavailable["STORAGE-down"] > 0, "the kill was not noticed"
        assert unavailable["STORAGE-loading"] > 0, "no request answered LOADING while loading"
        early = [a for a in load.answers if a.status == 503 and a.ended < killed_at]
        assert not early, f"503s before Redis was killed (at {killed_at}): {early[:3]}"

        after_back = [a for a in load.answers if a.status == 201 and a.started >= back_at]
        assert after_back, "no create succeeded in the second after Redis was back"
        recovered_s = min(a.ended for a in after_back) - back_at
        assert recovered_s < 2.0, f"the first create succeeded {recovered_s:.2f}s after"
        print(f"first create {recovered_s * 1000:.0f} ms after Redis was back")

        # every acknowledged write is there, read back through the service
        assert len(load.acknowledged) > WRITERS
        for session_id, keys_ in load.acknowledged.items():
            assert keys_ <= set(await metadata_of(client, session_id)), session_id
        print(
            f"verified {len(load.acknowledged)} acknowledged creates and"
            f" {sum(len(k) for k in load.acknowledged.values())} acknowledged sets"
        )


# ---------------------------------------------------------------------------------------------
# 2. a frozen Redis (SIGSTOP)
# ---------------------------------------------------------------------------------------------

FREEZE_S = 2.0


async def test_a_frozen_redis_answers_503_within_the_timeout_then_fast_and_recovers_after_sigcont(
    new_server: Callable[..., FaultRedis],
):
    server = new_server()
    async with service(server.url) as client:
        session_id = (await create(client)).body["sessionId"]
        assert (await set_metadata(client, session_id, "before")).status == 200
        server.pause()
        frozen_at = time.monotonic()
        try:
            # concurrent requests each wait about the timeout; their timeouts open the circuit
            timed_out = await asyncio.gather(*(create(client) for _ in range(4)))
            for answer in timed_out:
                assert_unavailable(answer, "STORAGE-down", within_s=TIMEOUT_S + 0.7)
                assert answer.seconds >= TIMEOUT_S * 0.8, str(answer)  # the timeout, no error
            # the circuit is open: fail fast, without waiting for Redis at all
            fast = [await create(client) for _ in range(5)]
            fast.append(await set_metadata(client, session_id, "frozen"))
            for answer in fast:
                assert_unavailable(answer, "STORAGE-circuit", within_s=0.1)
            ready = await call(client, "GET", "/readyz")
            assert_not_ready(ready, {"STORAGE-circuit", "STORAGE-down", "STORAGE-timeout"})
            # until the freeze ends: never longer than about the timeout, only these ids
            during: list[Answer] = []
            while time.monotonic() - frozen_at < FREEZE_S:
                during.extend(
                    await asyncio.gather(
                        create(client),
                        set_metadata(client, session_id, "frozen"),
                        call(client, "GET", "/readyz"),
                    )
                )
                await asyncio.sleep(0.02)
        finally:
            server.resume()
        resumed_at = time.monotonic()
        for answer in during:
            if answer.path == "/readyz":
                assert_not_ready(answer, {"STORAGE-circuit", "STORAGE-down", "STORAGE-timeout"})
            else:
                assert answer.error_id in ("STORAGE-down", "STORAGE-circuit"), str(answer)
                assert_unavailable(answer, answer.error_id, within_s=TIMEOUT_S + 0.7)

        created, recovered_s = await until_created(client, within_s=2.0)
        await until_ready(client)
        assert (await set_metadata(client, session_id, "after")).status == 200
        assert {"before", "after"} <= set(await metadata_of(client, session_id))
        api = [a for a in [*timed_out, *fast, *during] if a.path != "/readyz"]
        ids = Counter(a.error_id for a in api)
        probes = Counter(a.body.get("redis") for a in [ready, *during] if a.path == "/readyz")
        slowest = max(a.seconds for a in [*timed_out, *during])
        slowest_circuit = max(a.seconds for a in fast)
        print(
            f"\nfrozen {resumed_at - frozen_at:.2f}s: API {dict(ids)}, /readyz {dict(probes)};"
            f" slowest answer {slowest * 1000:.0f} ms, slowest circuit answer"
            f" {slowest_circuit * 1000:.1f} ms; first create {recovered_s * 1000:.0f} ms"
            " after SIGCONT"
        )
        assert created.status == 201


# ---------------------------------------------------------------------------------------------
# 3. maxmemory reached
# ---------------------------------------------------------------------------------------------


async def test_a_full_redis_refuses_every_write_with_429_at_once_and_recovers_when_raised(
    new_server: Callable[..., FaultRedis],
):
    server = new_server()
    control = server.client()
    try:
        async with service(server.url) as client:
            to_set = (await create(client)).body["sessionId"]
            to_delete = (await create(client)).body["sessionId"]
            # 2 MiB of data, then a limit 1 MiB below what is used: a margin no request's
            # own buffers can bridge (right at the limit, freed query buffers flip it)
            for index in range(32):
                await control.set(f"fill:{index}", b"x" * 65536)
            used = int((await info(control, "memory"))["used_memory"])
            await control.config_set("maxmemory-policy", "noeviction")
            await control.config_set("maxmemory", used - 1024 * 1024)
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                await control.set("one-more", "x")

            writes = [
                await create(client),
                await set_metadata(client, to_set, "full"),
                await call(client, "DELETE", f"/v2/sessions/{to_delete}", {}),
            ]
            for answer in writes:
                assert (answer.status, answer.body.get("code"), answer.error_id) == (
                    429,
                    8,
                    "STORAGE-full",
                ), str(answer)
                assert answer.retry_after == "1", str(answer)
                assert answer.seconds < 1.0, str(answer)
            assert (await call(client, "GET", f"/v2/sessions/{to_set}")).status == 200  # reads
            ready = await call(client, "GET", "/readyz")
            assert_not_ready(ready, {"STORAGE-full"})

            await control.config_set("maxmemory", 0)
            assert (await create(client)).status == 201
            assert (await set_metadata(client, to_set, "room")).status == 200
            deleted = await call(client, "DELETE", f"/v2/sessions/{to_delete}", {})
            assert deleted.status == 200, str(deleted)
            assert (await call(client, "GET", "/readyz")).status == 200
            print("\nfull: " + "; ".join(f"{a.method} {a.seconds * 1000:.1f} ms" for a in writes))
    finally:
        await control.aclose()


# ---------------------------------------------------------------------------------------------
# 4. every error reply of the mapping, from a real server where one can produce it
# ---------------------------------------------------------------------------------------------


class Condition:
    """A server state that makes Redis answer with one error reply, and its undoing."""

    name: ClassVar[str]
    error_id: ClassVar[str]
    #: The admin's token lookup and a GET of a session still work (only writes are refused).
    reads_work: ClassVar[bool]
    #: What the readiness probe (a plain SET) reports, when not ``error_id``.
    probe_id: ClassVar[str | None] = None
    server_args: ClassVar[tuple[str, ...]] = ()
    appendonly: ClassVar[bool] = True

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        raise NotImplementedError

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        raise NotImplementedError


class Busy(Condition):
    """A script running longer than ``busy-reply-threshold`` (``lua-time-limit``)."""

    name, error_id, reads_work = "BUSY", "STORAGE-busy", False

    def __init__(self) -> None:
        self.script: asyncio.Future[Any] | None = None
        self.runner: aioredis.Redis | None = None

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.config_set("busy-reply-threshold", 100)
        self.runner = server.client(timeout_s=30)
        self.script = asyncio.ensure_future(self.runner.eval("while true do end", 0))
        await _assert_raises_until(control.ping, "BUSY")

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.script_kill()
        assert self.script is not None
        assert self.runner is not None
        with pytest.raises(ResponseError, match="killed"):
            await self.script
        await self.runner.aclose()


class ReadOnly(Condition):
    """A replica (of a master that does not answer) serving its stale data read-only."""

    name, error_id, reads_work = "READONLY", "STORAGE-readonly", True

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.execute_command("REPLICAOF", "127.0.0.1", unused_tcp_port())
        await _assert_raises_until(lambda: control.set("probe", "1"), "You can't write")

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.execute_command("REPLICAOF", "NO", "ONE")


class MasterDown(Condition):
    """The same replica with ``replica-serve-stale-data no``: it refuses reads too.

    Redis checks READONLY before MASTERDOWN, so a plain write (the readiness probe) still
    answers READONLY; every API request fails at its first read, the token lookup.
    """

    name, error_id, reads_work = "MASTERDOWN", "STORAGE-masterdown", False
    probe_id = "STORAGE-readonly"

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.config_set("replica-serve-stale-data", "no")
        await control.execute_command("REPLICAOF", "127.0.0.1", unused_tcp_port())
        await _assert_raises_until(lambda: control.get("probe"), "Link with MASTER is down")

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.execute_command("REPLICAOF", "NO", "ONE")
        await control.config_set("replica-serve-stale-data", "yes")


class NoAuth(Condition):
    """A password set on the server while the service has none; its connection dropped."""

    name, error_id, reads_work = "NOAUTH", "STORAGE-auth", False

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.config_set("requirepass", "now-required")
        await control.execute_command("CLIENT", "KILL", "TYPE", "normal")  # not this one

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.config_set("requirepass", "")


class NoPerm(Condition):
    """An ACL that takes the write commands away from the service's user."""

    name, error_id, reads_work = "NOPERM", "STORAGE-auth", True

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.execute_command("ACL", "SETUSER", "default", "-@write")
        await _assert_raises_until(
            lambda: control.set("probe", "1"), "no permissions to run the 'set' command"
        )

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.execute_command("ACL", "SETUSER", "default", "+@all")


class MisConf(Condition):
    """A failed background save (its directory vanished) with stop-writes-on-bgsave-error.

    Root ignores permissions, but nobody can create a file in a deleted directory.
    """

    name, error_id, reads_work = "MISCONF", "STORAGE-misconf", True
    server_args = ("--enable-protected-configs", "yes")  # CONFIG SET dir
    appendonly = False

    async def enter(self, server: FaultRedis, control: aioredis.Redis) -> None:
        gone = server.directory / "gone"
        gone.mkdir()
        await control.config_set("dir", str(gone))
        gone.rmdir()
        await control.config_set("save", "3600 1")
        await control.bgsave()
        await self._saved(control, "err")
        await _assert_raises_until(lambda: control.set("probe", "1"), "MISCONF")

    async def leave(self, server: FaultRedis, control: aioredis.Redis) -> None:
        await control.config_set("dir", str(server.directory))
        await control.bgsave()
        await self._saved(control, "ok")

    @staticmethod
    async def _saved(control: aioredis.Redis, status: str) -> None:
        deadline = time.monotonic() + 5
        while True:
            persistence = await info(control, "persistence")
            if not persistence["rdb_bgsave_in_progress"]:
                assert persistence["rdb_last_bgsave_status"] == status, persistence
                return
            assert time.monotonic() < deadline, "BGSAVE did not finish"
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "condition",
    [Busy, ReadOnly, MasterDown, NoAuth, NoPerm, MisConf],
    ids=lambda c: c.name,
)
async def test_each_error_reply_is_a_503_with_its_id_and_the_service_recovers_after_it(
    new_server: Callable[..., FaultRedis], condition: type[Condition]
):
    state = condition()
    probe_id = state.probe_id or state.error_id
    server = new_server(*state.server_args, appendonly=state.appendonly)
    control = server.client()
    try:
        async with service(server.url) as client:
            to_set = (await create(client)).body["sessionId"]
            to_delete = (await create(client)).body["sessionId"]
            await state.enter(server, control)
            try:
                # the service sees it (after NOAUTH: once it noticed the dropped connection)
                _, _, probes = await eventually(
                    lambda: call(client, "GET", "/readyz"),
                    lambda a: a.body.get("redis") == probe_id,
                    within_s=2.0,
                )
                for probe in probes:
                    assert_not_ready(probe, {probe_id, "STORAGE-down"})
                answers = [
                    await create(client),
                    await set_metadata(client, to_set, "refused"),
                    await call(client, "DELETE", f"/v2/sessions/{to_delete}", {}),
                ]
                assert_all_unavailable(answers, state.error_id)
                read = await call(client, "GET", f"/v2/sessions/{to_set}")
                if state.reads_work:
                    assert read.status == 200, str(read)
                else:
                    assert_unavailable(read, state.error_id)
            finally:
                await state.leave(server, control)

            _, recovered_s = await until_created(client, within_s=2.0)
            await until_ready(client)
            assert (await set_metadata(client, to_set, "after")).status == 200
            deleted = await call(client, "DELETE", f"/v2/sessions/{to_delete}", {})
            assert deleted.status == 200, str(deleted)
            assert "refused" not in await metadata_of(client, to_set)
            print(
                f"\n{state.name}: "
                + "; ".join(f"{a.method} {a.seconds * 1000:.1f} ms" for a in answers)
                + f"; recovered in {recovered_s * 1000:.0f} ms"
            )
    finally:
        await control.aclose()


async def test_a_wrong_password_is_a_503_and_every_failed_handshake_closes_its_connection(
    new_server: Callable[..., FaultRedis],
):
    server = new_server()
    control = server.client()
    await control.config_set("requirepass", "right")  # this connection stays authenticated
    url = f"unix://:right@{server.socket_path}"
    try:
        async with service(url) as client:
            assert (await create(client)).status == 201
            await control.config_set("requirepass", "changed")
            await control.execute_command("CLIENT", "KILL", "TYPE", "normal")
            answers = [await create(client) for _ in range(20)]
            # the first may still meet the dropped connection
            assert {a.error_id for a in answers[:1]} <= {"STORAGE-auth", "STORAGE-down"}
            for answer in answers[1:]:
                if answer.error_id == "STORAGE-down":  # a busy host: the AUTH reply came late
                    assert answer.seconds >= TIMEOUT_S * 0.8, str(answer)  # a timeout, no error
                    continue
                assert_unavailable(answer, "STORAGE-auth")
            refused = [a for a in answers[1:] if a.error_id == "STORAGE-auth"]
            assert len(refused) >= 15, [str(a) for a in answers]
            clients = int((await info(control, "clients"))["connected_clients"])
            # this control connection, and at most the service's one (re)connection
            assert clients <= 2, (
                f"{clients} connections open after 20 refused AUTH handshakes: a connection"
                " is left open each time the handshake fails"
            )
            await control.config_set("requirepass", "right")
            _, recovered_s = await until_created(client, within_s=2.0)
            print(f"\nWRONGPASS: recovered in {recovered_s * 1000:.0f} ms")
    finally:
        await control.aclose()


# Replies a single standalone server cannot produce (they need Redis Cluster): checked
# through the mapping function itself, which is pure (reply text → service error).
@pytest.mark.parametrize(
    ("reply", "error_id"),
    [
        ("CLUSTERDOWN The cluster is down", "STORAGE-clusterdown"),
        ("CLUSTERDOWN Hash slot not served", "STORAGE-clusterdown"),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "STORAGE-tryagain"),
        ("ERR CLUSTERDOWN The cluster is down", "STORAGE-clusterdown"),  # hiredis keeps ERR
        (
            "TRYAGAIN Multiple keys request during rehashing of slot script: 4f2e, on"
            " @user_script:7.",
            "STORAGE-tryagain",
        ),
    ],
)
def test_cluster_only_replies_map_to_retryable_503s(reply: str, error_id: str):
    with pytest.raises(Unavailable) as caught, mapped_errors():
        raise ResponseError(reply)
    assert (caught.value.error_id, caught.value.http_status) == (error_id, 503)
    assert caught.value.retry_after_s == 1


def test_an_oom_reply_inside_a_script_is_storage_full():
    reply = (
        "OOM command not allowed when used memory > 'maxmemory'. script: 4f2e, on @user_script:9."
    )
    with pytest.raises(ResourceExhausted) as caught, mapped_errors():
        raise ResponseError(reply)
    assert (caught.value.error_id, caught.value.http_status) == ("STORAGE-full", 429)


# ---------------------------------------------------------------------------------------------
# 5. a session actor survives an error reply nothing maps
# ---------------------------------------------------------------------------------------------


def _actor_tasks(session_id: str) -> list[asyncio.Task[Any]]:
    name = f"session-actor:{session_id}"
    return [task for task in asyncio.all_tasks() if task.get_name() == name]


async def test_a_commit_whose_relay_fails_is_answered_and_its_events_follow_the_repair(
    new_server: Callable[..., FaultRedis],
):
    server = new_server()
    control = server.client()
    try:
        async with service(server.url, actor_idle_s=60.0) as client:
            session_id = (await create(client)).body["sessionId"]
            assert (await set_metadata(client, session_id, "first")).status == 200
            [actor] = _actor_tasks(session_id)
            # a corrupted key: the session's event partition is a string, so the relay's
            # step refuses with WRONGTYPE_KEY, an error reply no mapping knows; the commits
            # themselves (the session's own slot) are stored and answered
            events_key = keys.event_stream(keys.event_partition(session_id, 16))
            await control.delete(events_key)
            await control.set(events_key, "not a stream")
            while_corrupt = [
                await set_metadata(client, session_id, f"while-corrupt-{i}") for i in range(5)
            ]
            for answer in while_corrupt:
                assert answer.status == 200, str(answer)
                assert answer.seconds < 2.0, str(answer)
            assert not actor.done(), "the actor died of the error"
            assert _actor_tasks(session_id) == [actor]
            assert await control.exists(keys.session_relay(session_id)) == 1  # kept for later

            await control.delete(events_key)  # repaired: the next write finishes the others
            repaired = await set_metadata(client, session_id, "repaired")
            assert repaired.status == 200, str(repaired)
            assert _actor_tasks(session_id) == [actor]
            assert not actor.done()
            names = set(await metadata_of(client, session_id))
            assert {"first", "repaired"} | {f"while-corrupt-{i}" for i in range(5)} <= names
            stream: Any = await control.xrange(events_key)
            sequences = [
                int(fields[b"sequence"])
                for _, fields in stream
                if fields[b"aggregateId"] == session_id.encode()
            ]
            # every commit's events once, in order: the five deferred ones went first
            assert sequences == sorted(set(sequences)), sequences
            assert len(sequences) >= 6, sequences
            assert await control.exists(keys.session_relay(session_id)) == 0
    finally:
        await control.aclose()
