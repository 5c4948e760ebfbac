"""No credential reaches the log, whoever sent it and whichever logger writes the line.

A malformed request makes aiohttp log, at ERROR, the header line it choked on: a bearer
token sent by an unauthenticated client used to land in the log, twice (in the message and
in the traceback). These tests run the real ``python -m app`` with its stderr in a file,
send such requests over a raw socket next to normal ones, and grep the file; the
redaction itself is unit-tested on strings. Expected faults log one line, not a stack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from app.process.logging import (
    REDACTED,
    Redactor,
    configure_logging,
    is_expected_fault,
    one_line_expected_faults,
    redact,
    secret_literals,
)
from app.process.settings import Settings
from tests.processes import logged_server
from tests.support import ADMIN_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "Q" * 10 + "abcdefghijklmnopqrstuvwxyz0123456-_"  # 45 base64url characters
SESSION_TOKEN = f"s.329421077445181441.{SECRET[:43]}"
PAT = f"p.329421077445181442.{SECRET[2:45]}"


async def raw_request(port: int, data: bytes) -> bytes:
    """Send ``data`` as is and read the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------------
# redact() on strings
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("Authorization: Bearer abc.def", "Authorization: " + REDACTED, "abc.def"),
        ("b'authorization: Basic dXNlcjpwdw==\\x00'", "authorization: ", "dXNlcjpwdw"),
        ("{'Authorization': 'Bearer xyz123'}", "'Authorization': '" + REDACTED, "xyz123"),
        ("Cookie: ST=s3cr3t-value; theme=dark", "Cookie: " + REDACTED, "s3cr3t"),
        ("Set-Cookie: ST=abcdef; HttpOnly", "Set-Cookie: " + REDACTED, "abcdef"),
        ("b'GET / HTTP/1.1\\r\\nCookie: a=1\\r\\nHost: x'", "\\r\\nHost: x", "a=1"),
        ("token was Bearer zzz-top", "Bearer " + REDACTED, "zzz-top"),
        (f"got {SESSION_TOKEN} back", "s.329421077445181441." + REDACTED, SECRET[:43]),
        (f"pat={PAT}", "p.329421077445181442." + REDACTED, SECRET[2:45]),
        (f"/v2/sessions/1?sessionToken={SESSION_TOKEN}&x=1", "&x=1", SECRET[:43]),
        ("?sessionToken=whatever-it-is", "sessionToken=" + REDACTED, "whatever"),
        ("cookies ST=abc123; other", "ST=" + REDACTED, "abc123"),
        ('{"session_token": "tok-1"}', REDACTED, "tok-1"),
        (
            "redis://default:hunter22@cache:6379/0 refused",
            "default:" + REDACTED + "@cache",
            "hunter22",
        ),
    ],
)
def test_redact_hides_credentials_and_keeps_the_rest(text: str, kept: str, gone: str) -> None:
    redacted = redact(text)
    assert gone not in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "request",
        "/v2/sessions/{sessionId}",
        "s.short.abc",  # not a token: the secret is far too short
        "first=1; best=2",
        "2026-12-01T20:00:00.000000Z",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_the_configured_admin_token_is_redacted_in_any_spelling() -> None:
    token = 'adm"in\\tok\x00en-0123456789'
    literals = secret_literals([token, "short"])
    assert "short" not in literals  # too short to replace literally
    for spelling in (token, repr(token), repr(token.encode())):
        assert token not in redact(f"x {spelling} y", literals)
        assert "tok" not in redact(f"x {spelling} y", literals)


def test_the_redactor_walks_keys_nested_values_and_objects() -> None:
    redactor = Redactor([ADMIN_TOKEN])
    event = {
        "event": f"saw {ADMIN_TOKEN}",
        "password": "hunter2",
        "headers": {"Cookie": "ST=1", "Accept": "*/*"},
        "items": [("Bearer x",)],
        "obj": ValueError(f"bad {SESSION_TOKEN}"),
        "status": 200,
    }
    out = redactor(None, "info", event)
    text = json.dumps(out)
    for secret in (ADMIN_TOKEN, "hunter2", "ST=1", "Bearer x", SECRET[:43]):
        assert secret not in text
    assert out["status"] == 200
    assert out["headers"]["Accept"] == "*/*"


def test_expected_faults_lose_their_stack_and_others_keep_it() -> None:
    from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader

    assert is_expected_fault(InvalidHeader(b"x"))
    assert is_expected_fault(ConnectionResetError())
    assert not is_expected_fault(ValueError())
    try:
        raise BadHttpMessage("Invalid header value char:\n\n  b'Cookie: ST=abc\\x00'\n  ^")
    except BadHttpMessage as exc:
        event = one_line_expected_faults(None, "error", {"event": "e", "exc_info": exc})
    assert "exc_info" not in event
    assert "\n" not in event["error"]
    assert event["error"].startswith("BadHttpMessage: 400, message: Invalid header value char")
    # a long quote is cut, and a token cut in half goes with it
    for pad in range(960, 1000, 7):
        long = BadHttpMessage("x" * pad + f" {SESSION_TOKEN} tail")
        line = one_line_expected_faults(None, "error", {"event": "e", "exc_info": long})
        assert len(line["error"]) <= 1003
        assert SECRET[:10] not in redact(line["error"])
    bug = {"event": "e", "exc_info": ValueError("x")}
    assert one_line_expected_faults(None, "error", dict(bug)) == bug


@pytest.fixture(name="restore_logging")
def _restore_logging() -> Iterator[None]:
    """``configure_logging`` changes process-wide state; put it back for the next tests."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = hooks
    structlog.reset_defaults()
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_our_own_lines_are_redacted_tracebacks_included(capsys: pytest.CaptureFixture[str]):
    configure_logging(
        Settings(log_format="json", log_level="info", admin_token=ADMIN_TOKEN),
        cache_loggers=False,
    )
    log = structlog.get_logger("test")
    try:
        raise RuntimeError(f"failed for {ADMIN_TOKEN} with {SESSION_TOKEN}")
    except RuntimeError:
        log.exception("boom", header=f"Bearer {ADMIN_TOKEN}")
    try:
        raise OSError(f"Cookie: ST={SECRET}")
    except OSError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "x")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert [line["event"] for line in lines] == ["boom", "Error handling request from x"]
    assert "Traceback" in lines[0]["exception"]  # a bug keeps its stack, redacted
    for secret in (ADMIN_TOKEN, SECRET[:43]):
        assert secret not in err


@pytest.mark.usefixtures("restore_logging")
def test_uncaught_exceptions_are_redacted_lines_too(capsys: pytest.CaptureFixture[str]):
    configure_logging(Settings(log_format="json", admin_token=ADMIN_TOKEN), cache_loggers=False)
    try:
        raise KeyError(f"Authorization: Bearer {ADMIN_TOKEN}")
    except KeyError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    worker = threading.Thread(target=lambda: 1 / 0, name="hasher")
    worker.start()
    worker.join()
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(line["level"], line["event"]) for line in lines] == [
        ("critical", "uncaught exception"),
        ("error", "uncaught exception in thread hasher"),
    ]
    assert ADMIN_TOKEN not in err
    assert "ZeroDivisionError" in lines[1]["exception"]


# ---------------------------------------------------------------------------------------------
# the real server: malformed requests, erroring routes, grep the log
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_no_token_or_cookie_reaches_the_log_of_the_real_server(
    redis_url: str, tmp_path: Path
) -> None:
    cookie_secret = "Zm9vYmFyYmF6cXV4" * 3
    with logged_server(redis_url, tmp_path / "stderr.log", log_level="info") as running:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            async with http.post(f"{running.url}/v2/sessions", json={}) as response:
                assert response.status == 201
                created = await response.json()
            token, sid = created["sessionToken"], created["sessionId"]
            async with http.get(f"{running.url}/v2/sessions/{sid}?sessionToken={token}") as got:
                assert got.status == 200
            # a valid admin token on routes that fail
            async with http.get(f"{running.url}/v2/sessions/1?sessionToken={token}x") as got:
                assert got.status >= 400
            async with http.post(f"{running.url}/v2/sessions", data=b"{") as got:
                assert got.status == 400
            async with http.get(
                f"{running.url}/v2/sessions/{sid}", headers={"Authorization": f"Bearer {PAT}"}
            ) as got:
                assert got.status == 401
        head = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
        malformed = [
            # a NUL in a header value: aiohttp quotes the whole line at ERROR
            f"{head}Authorization: Bearer {ADMIN_TOKEN}\x00\r\n\r\n",
            f"{head}Cookie: ST={cookie_secret}\x01; theme=dark\r\n\r\n",
            f"{head}Authorization: Bearer {token}\x00\r\n\r\n",
            f"{head}X-Note: {token} {ADMIN_TOKEN}\x7f\r\n\r\n",
            # an invalid character in the request line
            f"GET /v2/sessions/{sid}?sessionToken={token}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for request in malformed:
            answer = await raw_request(running.port, request.encode("latin-1"))
            assert answer.split(b" ", 2)[1] == b"400", answer
        await asyncio.sleep(0.3)  # let the last lines reach the file
        lines = running.lines()
    text = (tmp_path / "stderr.log").read_text()
    for secret in (ADMIN_TOKEN, token, token.rsplit(".", 1)[1], cookie_secret, SECRET[2:45]):
        assert secret not in text
    errors = [line for line in lines if line["event"].startswith("Error handling request")]
    assert len(errors) == len(malformed)
    for line in errors:
        assert line["level"] == "error"
        assert line["logger"] == "aiohttp.server"
        assert "exception" not in line
        assert REDACTED in line["error"]
    assert "Traceback" not in text
    requests = [line for line in lines if line["event"] == "request" and line["route"] != "/readyz"]
    assert [line["status"] for line in requests] == [201, 200, 404, 400, 401]
    assert {"method", "route", "status", "duration_ms", "request_id"} <= set(requests[0])
