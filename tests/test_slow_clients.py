"""Slow clients are cut and a worker's connection cap holds, while everyone else is served.

200 slowloris connections (a request head dribbled byte by byte, or a body dribbled after
its headers) used to be held for as long as the clients liked. Against a real
``python -m app`` with 1 s header and body timeouts and a cap of ``CAP`` connections, on
loopback only: each slow connection is closed within its timeout plus a margin, normal
requests keep answering quickly meanwhile, and connections beyond the cap are closed at once
while the clients already connected are still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.processes import Server, logged_server
from tests.support import ADMIN_TOKEN

pytestmark = pytest.mark.slow

TIMEOUT_S = 1.0
#: How late a cut may come: the timer's own slack and a loaded test machine.
MARGIN_S = 1.0
CAP = 60
SLOW_HEADS = 40
SLOW_BODIES = 10
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(name="running", scope="module")
def _running(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("slow") / "stderr.log"
    with logged_server(
        redis_url,
        log,
        http_header_timeout_s=TIMEOUT_S,
        http_body_timeout_s=TIMEOUT_S,
        http_max_connections=CAP,
    ) as running:
        yield running


async def _read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sent before it closed the connection (a reset counts as closed)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


async def _dribble(writer: asyncio.StreamWriter, data: bytes, pause_s: float) -> None:
    """Send ``data`` a byte at a time until it is sent or the server hung up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause_s)


async def _slow_client(port: int, head: bytes, dribbled: bytes) -> tuple[float, bytes]:
    """Send ``head`` at once and ``dribbled`` slowly; seconds until closed, and the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        started = time.monotonic()
        sender = asyncio.create_task(_dribble(writer, dribbled, 0.05))
        answer = await _read_until_closed(reader, TIMEOUT_S + 5)
        elapsed = time.monotonic() - started
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        return elapsed, answer
    finally:
        writer.close()


async def _normal_traffic(url: str, until: float) -> list[float]:
    """GET /healthz and an authenticated CreateSession in turn; the duration of each."""
    durations: list[float] = []
    async with aiohttp.ClientSession(headers=AUTH) as http:
        while time.monotonic() < until:
            started = time.monotonic()
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200
            async with http.post(f"{url}/v2/sessions", json={}) as response:
                assert response.status == 201, await response.text()
            durations.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
    return durations


async def test_slow_heads_and_bodies_are_cut_and_others_are_served(running: Server):
    head_only = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    body_head = (
        b"POST /v2/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n"
    )
    slow = [_slow_client(running.port, b"", head_only) for _ in range(SLOW_HEADS)]
    slow += [_slow_client(running.port, body_head, b"{" + b" " * 998) for _ in range(SLOW_BODIES)]
    normal = _normal_traffic(running.url, time.monotonic() + TIMEOUT_S + 1.5)
    normal_task = asyncio.create_task(normal)
    cut = await asyncio.gather(*slow)
    durations = await normal_task
    for elapsed, answer in cut[:SLOW_HEADS]:
        assert TIMEOUT_S - 0.2 <= elapsed <= TIMEOUT_S + MARGIN_S
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 Request Timeout")
    for elapsed, answer in cut[SLOW_HEADS:]:
        assert TIMEOUT_S - 0.2 <= elapsed <= TIMEOUT_S + MARGIN_S
        assert answer == b""  # the handler waited for the body; nothing was answered
    assert len(durations) >= 5
    assert max(durations) < 0.5, durations
    events = [line["event"] for line in running.lines()]
    assert "unhandled error" not in events  # a cut handler is cancelled, not failed
    assert "slow or excess connections cut" in events


async def test_connections_beyond_the_cap_are_closed_at_once(running: Server):
    await asyncio.sleep(0.2)  # the previous test's connections are gone
    connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection, opened first
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{running.url}/healthz") as response:
            assert response.status == 200
        idle = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(CAP - 1)]
        extra: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            await asyncio.sleep(0.2)  # accepted: the worker now holds CAP connections
            started = time.monotonic()
            extra = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(10)]
            answers = await asyncio.gather(*[_read_until_closed(r, 2) for r, _ in extra])
            assert time.monotonic() - started < 0.5
            assert all(a == b"" or a.startswith(b"HTTP/1.1 503") for a in answers), answers
            for _ in range(3):  # the client connected before the flood is still served
                started = time.monotonic()
                async with http.get(f"{running.url}/healthz") as response:
                    assert response.status == 200
                assert time.monotonic() - started < 0.5
            # the idle ones never sent a head: cut by the header timeout, freeing the slots
            cut = await asyncio.gather(
                *[_read_until_closed(r, TIMEOUT_S + MARGIN_S) for r, _ in idle]
            )
            assert all(a.startswith(b"HTTP/1.1 408") for a in cut)
        finally:
            for _, writer in idle + extra:
                writer.close()
    async with (
        aiohttp.ClientSession() as fresh,
        fresh.get(f"{running.url}/healthz") as response,
    ):
        assert response.status == 200


def test_idle_kept_alive_connections_are_not_cut_by_the_header_timeout(running: Server):
    """The header timer runs while a head is awaited, not between requests."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read()
        sock = connection.sock
        time.sleep(TIMEOUT_S + 0.5)
        connection.request("GET", "/healthz")  # on a closed socket: RemoteDisconnected
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        assert connection.sock is sock
    finally:
        connection.close()
