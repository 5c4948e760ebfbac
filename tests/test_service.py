"""The service around the API: probes, OpenAPI, request logs, event streams, dev mode."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import structlog

from storage import keys
from tests.support import ADMIN_TOKEN, PASSWORD, Api, b64


async def test_probes_answer_without_authentication(client):
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200
        assert (await response.json())["status"] == "SERVING"


async def test_many_concurrent_requests_share_the_connection_without_failing(api: Api):
    sid = (await api.create({})).body["sessionId"]
    replies = await asyncio.gather(
        *[api.get(sid) for _ in range(40)],
        *[api.set(sid, {"metadata": {f"k{i}": b64("v")}}) for i in range(20)],
    )
    assert {reply.status for reply in replies} == {200}


async def test_each_request_logs_one_line_with_id_route_status_and_duration(client):
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        response = await client.post(
            "/v2/sessions",
            json={},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Request-Id": "req-42"},
        )
    assert response.headers["X-Request-Id"] == "req-42"
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["request_id"], line["route"], line["status"], line["method"]) == (
        "req-42",
        "/v2/sessions",
        201,
        "POST",
    )
    assert line["duration_ms"] >= 0


async def test_logs_and_streams_never_contain_passwords_or_tokens(api: Api, redis):
    user = await api.human()
    with structlog.testing.capture_logs() as logs:
        created = await api.session_for(user)
        await api.create(
            {"checks": {"user": {"userId": user}, "password": {"password": "Wr0ng-one"}}}
        )
    token = created.body["sessionToken"]
    secret = token.rsplit(".", 1)[1]
    logged = json.dumps(logs, default=str)
    values = [
        value
        for stream in await redis.keys("sessiond:events:*")
        for _, fields in await redis.xrange(stream)
        for value in fields.values()
    ]
    streamed = b"".join(values).decode()
    for text in (logged, streamed):
        for forbidden in (PASSWORD, "Wr0ng-one", secret, ADMIN_TOKEN):
            assert forbidden not in text


async def test_events_carry_zitadel_types_and_envelope(api: Api, redis, instance_id):
    user = await api.human()
    created = await api.session_for(user, metadata={"k": b64("v")}, lifetime="60s")
    sid = created.body["sessionId"]
    stream = keys.event_stream(keys.event_partition(sid, 16))
    entries = [
        fields for _, fields in await redis.xrange(stream) if fields[b"aggregateId"] == sid.encode()
    ]
    assert [e[b"type"].decode() for e in entries] == [
        "session.added",
        "session.user.checked",
        "session.password.checked",
        "session.metadata.set",
        "session.lifetime.set",
        "session.token.set",
    ]
    assert {e[b"instanceId"].decode() for e in entries} == {instance_id}
    assert [int(e[b"sequence"]) for e in entries] == list(range(1, 7))
    assert json.loads(entries[4][b"payload"]) == {"lifetime": 60_000_000_000}
    assert json.loads(entries[1][b"payload"])["userID"] == user


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
async def test_events_tail_prints_each_event_once(api: Api, redis_url):
    sid = (await api.create({})).body["sessionId"]
    env = {**os.environ, "SESSIOND_REDIS_URL": redis_url, "SESSIOND_LOG_LEVEL": "warning"}
    command = [
        sys.executable,
        "-m",
        "app",
        "events",
        "tail",
        "--from-start",
        "--until-idle",
        "--block-ms",
        "300",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=True)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    ours = [e for e in events if e["aggregateId"] == sid]
    assert [e["type"] for e in ours] == ["session.added", "session.token.set"]
    assert ours[1]["payload"].keys() == {"tokenID"}
    assert any(e["aggregateType"] == "user" for e in events)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=True)
    assert again.stdout == ""  # acknowledged: the group does not see them twice


@pytest.mark.slow
def test_dev_mode_starts_embedded_valkey_and_writes_a_private_admin_pat(tmp_path: Path):
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SESSIOND_") or key.startswith("SESSIOND_TEST_")
    }
    env.update(
        {
            "SESSIOND_DATA_DIR": str(tmp_path),
            "SESSIOND_HTTP_PORT": str(port),
            "SESSIOND_LOG_FORMAT": "json",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(port, proc)
        pat = tmp_path / "admin.pat"
        assert stat.S_IMODE(pat.stat().st_mode) == 0o600
        token = pat.read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/sessions",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 201
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert token not in stderr  # the log names the file, never the token
    assert "admin.pat" in stderr
    assert not (tmp_path / "valkey.sock").exists() or _socket_dead(tmp_path / "valkey.sock")


@pytest.mark.slow
def test_the_embedded_valkey_dies_when_the_service_is_killed(tmp_path: Path):
    """SIGKILL runs no cleanup code: the kernel's parent-death signal must stop Valkey."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSIOND_")}
    env.update(
        {
            "SESSIOND_DATA_DIR": str(tmp_path),
            "SESSIOND_HTTP_PORT": str(port),
            "SESSIOND_LOG_FORMAT": "json",
        }
    )
    proc = subprocess.Popen([sys.executable, "-m", "app"], env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        valkey = [int(pid) for pid in children if "valkey" in _cmdline(int(pid))]
        assert len(valkey) == 1
    finally:
        proc.kill()
        proc.wait(10)
    deadline = time.monotonic() + 10
    while _alive(valkey[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(valkey[0])


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _alive(pid: int) -> bool:
    """Running, or stopped but not yet reaped (a zombie: state Z) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_ready(port: int, proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not become ready")


def _socket_dead(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return True
    return False
