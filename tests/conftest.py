"""Shared fixtures of the suite, one section per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.redis_server import (
    CLUSTER_KIND,
    TestRedisError,
    TestRedisServer,
    inspecting_client,
    requested_kind,
    start_test_server,
)

# ---------------------------------------------------------------------------------------------
# Redis server: one real server per test session (tests/redis_server.py, SESSIOND_TEST_REDIS)
# ---------------------------------------------------------------------------------------------


class _SessionServer:
    """Starts the server on first use (the report header, else the first fixture) and once.

    A failed start is remembered, so every test that needs Redis errors with the same
    message instead of each retrying; the run fails rather than skips.
    """

    def __init__(self) -> None:
        self.server: TestRedisServer | None = None
        self.error: TestRedisError | None = None

    def get(self) -> TestRedisServer:
        if self.error is not None:
            raise self.error
        if self.server is None:
            try:
                self.server = start_test_server()
            except TestRedisError as exc:
                self.error = exc
                raise
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


_SERVER = pytest.StashKey[_SessionServer]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SERVER] = _SessionServer()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER in config.stash:
        config.stash[_SERVER].stop()


_LEFT_OUT = pytest.StashKey[dict[str, int]]()


def _cluster_leaves_out(item: pytest.Item) -> str:
    """Why the run against the test cluster leaves ``item`` out ("" = it runs).

    A test that does not use the suite's server (pure rules, or one that starts its own
    servers from the valkey binary) is the same test in the valkey run: it runs there.
    """
    if item.get_closest_marker("node_only") is not None:
        return "node_only"
    if "redis_server" not in getattr(item, "fixturenames", ()):
        return "not on the suite's server (run in the valkey run)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against the test cluster: every test on the suite's server but the ``node_only`` ones."""
    if requested_kind() != CLUSTER_KIND:
        return
    left_out: dict[str, int] = {}
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        why = _cluster_leaves_out(item)
        if why:
            left_out[why] = left_out.get(why, 0) + 1
        (dropped if why else kept).append(item)
    config.stash[_LEFT_OUT] = left_out
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    """Say which server this run tests against, before any test runs."""
    try:
        server = config.stash[_SERVER].get()
    except TestRedisError as exc:
        return f"redis: {requested_kind()}: FAILED TO START: {exc}"
    return f"redis: {server.describe()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Repeat it at the end, where CI logs are read first."""
    server = terminalreporter.config.stash[_SERVER].server
    if server is not None:
        terminalreporter.write_line(f"redis: tested against {server.kind}: {server.version}")
    for why, count in terminalreporter.config.stash.get(_LEFT_OUT, {}).items():
        terminalreporter.write_line(f"redis: left out on the cluster: {count} tests, {why}")


@pytest.fixture(scope="session")
def redis_server(pytestconfig: pytest.Config) -> TestRedisServer:
    return pytestconfig.stash[_SERVER].get()


@pytest.fixture(scope="session")
def redis_url(redis_server: TestRedisServer) -> str:
    """``unix://...`` (or the URL given in SESSIOND_TEST_REDIS); shared by worker processes."""
    return redis_server.url


@pytest.fixture
async def redis(redis_server: TestRedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database; bytes in, bytes out, like ``storage.connect``.

    On the test cluster it is redis-py's cluster client (typed as the node's: the commands
    the tests use are the same), which routes each key and flushes every primary.
    """
    client = inspecting_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


pytest_plugins = ("tests.apifixtures", "tests.oidc_provider", "tests.redis_cluster")
