"""Headless Chromium driven over the DevTools protocol with nothing but aiohttp.

``chromium()`` starts Debian's browser with a fresh profile and ``--remote-debugging-port=0``,
reads the port from the profile's ``DevToolsActivePort`` and speaks CDP over the websocket.
``Tab`` wraps one page target (flat session): navigate, evaluate, wait for a condition,
screenshot, and the WebAuthn domain's virtual authenticator. Console messages, uncaught
exceptions and browser log entries (CSP violations among them) are collected, so a test can
assert the page ran cleanly. A missing browser is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--password-store=basic",
]
CALL_TIMEOUT_S = 30.0


class BrowserError(RuntimeError):
    """The browser is missing, did not start, or a CDP call failed."""


def chromium_path() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        raise BrowserError(
            "chromium is not installed: run 'apt-get install -y chromium' (make test does)"
        )
    return found


class Cdp:
    """One DevTools websocket: numbered calls answered by id, events kept per session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the DevTools connection"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, CALL_TIMEOUT_S)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Tab:
    """One page, attached with a flat session id."""

    def __init__(self, cdp: Cdp, session: str) -> None:
        self.cdp = cdp
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, self.session)

    async def navigate(self, url: str) -> None:
        reply = await self.send("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise BrowserError(f"navigating to {url}: {reply['errorText']}")
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (awaited when a promise), run as if the user clicked."""
        reply = await self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": True,
            },
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JS error in {expression!r}: {text}")
        return reply["result"].get("value")

    async def wait_for(self, condition: str, timeout_s: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(BrowserError):  # the page may be between documents
                value = await self.evaluate(condition)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {condition}; {self.problems()}")
            await asyncio.sleep(0.05)

    async def screenshot(self, path: Path) -> Path:
        reply = await self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(reply["data"]))
        return path

    async def add_virtual_authenticator(self) -> str:
        """A platform passkey authenticator that verifies the user and says yes by itself."""
        await self.send("WebAuthn.enable")
        reply = await self.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return str(reply["authenticatorId"])

    async def credentials(self, authenticator_id: str) -> list[dict[str, Any]]:
        reply = await self.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
        return list(reply["credentials"])

    async def cookies(self) -> list[dict[str, Any]]:
        return list((await self.send("Network.getCookies"))["cookies"])

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (e.g. CSP) of this tab."""
        found: list[str] = []
        for event in self.cdp.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("text")))
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(str(params["entry"].get("text")))
        return found


async def _devtools_address(profile: Path, proc: subprocess.Popen[bytes]) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with {proc.returncode}")
        text = port_file.read_text() if port_file.exists() else ""
        lines = text.split()
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.05)
    raise BrowserError("chromium did not open its DevTools port")


@asynccontextmanager
async def chromium(width: int = 900, height: int = 1000) -> AsyncIterator[Tab]:
    """A fresh headless browser with one tab (Page, Runtime, Log, Network enabled)."""
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        arguments = [f"--user-data-dir={profile}", "--remote-debugging-port=0"]
        proc = subprocess.Popen(
            [executable, *FLAGS, *arguments, f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            address = await _devtools_address(Path(profile), proc)
            async with (
                aiohttp.ClientSession() as http,
                http.ws_connect(address, max_msg_size=0) as ws,
            ):
                cdp = Cdp(ws)
                try:
                    yield await _open_tab(cdp, width, height)
                    with contextlib.suppress(BrowserError, TimeoutError):
                        await cdp.send("Browser.close")
                finally:
                    await cdp.close()
        finally:
            _stop(proc)


async def _open_tab(cdp: Cdp, width: int, height: int) -> Tab:
    target = (await cdp.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
    attached = await cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})
    tab = Tab(cdp, str(attached["sessionId"]))
    for domain in ("Page", "Runtime", "Log", "Network"):
        await tab.send(f"{domain}.enable")
    await tab.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return tab


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
