"""Shared fixtures of the suite, one section per resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.redis_server import TestRedisError, TestRedisServer, requested_kind, start_test_server

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


@pytest.fixture(scope="session")
def redis_server(pytestconfig: pytest.Config) -> TestRedisServer:
    return pytestconfig.stash[_SERVER].get()


@pytest.fixture(scope="session")
def redis_url(redis_server: TestRedisServer) -> str:
    """``unix://...`` (or the URL given in SESSIOND_TEST_REDIS); shared by worker processes."""
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database; bytes in, bytes out, like ``storage.connect``."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


pytest_plugins = ("tests.apifixtures", "tests.oidc_provider", "tests.redis_cluster")
