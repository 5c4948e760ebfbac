"""Fallback load generator when wrk is missing: aiohttp client on uvloop, in its own process.

Run: ``python bench/pyload.py LOAD.json RESULT.json``. It reads a ``scenarios.Load``, keeps
``connections`` requests in flight for ``duration_s`` seconds and writes a
``scenarios.LoadResult``. One Python process drives far fewer requests per second than wrk
(roughly 5-8k/s here), so the bare-handler baseline measures the client, not the server; the
ratios of the service rows to the one-round-trip baseline stay meaningful as long as that
baseline is well below the client's own ceiling.

It is also the generator of two-request iterations (``Load.followup_body``: the second request
carries a code read from the first answer), which wrk cannot chain per connection.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import uvloop
from procs import Children
from scenarios import (
    Load,
    LoadResult,
    percentile,
    read_ids,
    render,
    run_token,
    split_entry,
    templated_headers,
    uses_ids,
)

_SESSION_ID = re.compile(rb'"sessionId"\s*:\s*"([^"]+)"')


class _Tally:
    """Mutable counters shared by the worker coroutines of one run."""

    def __init__(self, ids: list[str], *, header_templates: bool = False) -> None:
        self.ids = ids
        self.run = run_token()
        self.header_templates = header_templates
        self.sent = 0
        self.wrapped = 0
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.socket_errors: dict[str, int] = {}
        self.error_sample = ""
        self.captured: list[str] = []
        self.iterations = 0

    def next_request(self, load: Load) -> tuple[str, bytes | None, str, dict[str, str]]:
        """Path, body, the ``{id}`` and the headers of the next request."""
        index = self.sent
        self.sent += 1
        ident = code = ""
        if self.ids:
            if load.consume and index >= len(self.ids):
                self.wrapped += 1
            ident, code = split_entry(self.ids[index % len(self.ids)])
        run = self.run
        body = render(load.body, ident, index, code, run) if load.body is not None else None
        path = render(load.path, ident, index, code, run)
        headers = load.headers
        if self.header_templates:
            headers = {k: render(v, ident, index, code, run) for k, v in headers.items()}
        return path, body.encode() if body is not None else None, ident, headers

    def count(self, status: int, payload: bytes, started: float) -> None:
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if not 200 <= status < 300 and not self.error_sample:
            self.error_sample = payload[:400].decode(errors="replace")


async def _send(
    load: Load,
    session: aiohttp.ClientSession,
    tally: _Tally,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes] | None:
    """One request: its status and body, or None after a socket error (counted)."""
    try:
        async with session.request(
            load.method, load.base_url + path, data=body, headers=headers
        ) as response:
            return response.status, await response.read()
    except TimeoutError:
        tally.socket_errors["timeout"] = tally.socket_errors.get("timeout", 0) + 1
    except aiohttp.ClientError as exc:
        kind = type(exc).__name__
        tally.socket_errors[kind] = tally.socket_errors.get(kind, 0) + 1
    return None


async def _worker(
    load: Load, session: aiohttp.ClientSession, tally: _Tally, deadline: float
) -> None:
    followup = re.compile(load.followup_capture.encode()) if load.followup_body else None
    while time.perf_counter() < deadline:
        path, body, ident, headers = tally.next_request(load)
        started = time.perf_counter()
        answer = await _send(load, session, tally, path, body, headers)
        if answer is None:
            continue
        if time.perf_counter() > deadline:
            return  # finished after the end: not counted, like wrk
        status, payload = answer
        tally.count(status, payload, started)
        if not 200 <= status < 300:
            continue
        if load.capture_prefix is not None:
            match = _SESSION_ID.search(payload)
            if match:
                tally.captured.append(match.group(1).decode())
        if followup is None or load.followup_body is None:
            continue
        found = followup.search(payload)
        if found is None:
            missing = "no code in the first answer"
            tally.socket_errors[missing] = tally.socket_errors.get(missing, 0) + 1
            if not tally.error_sample:
                tally.error_sample = payload[:400].decode(errors="replace")
            continue
        second = render(load.followup_body, ident, tally.sent, found.group(1).decode(), tally.run)
        started = time.perf_counter()
        answer = await _send(load, session, tally, path, second.encode(), headers)
        if answer is None or time.perf_counter() > deadline:
            continue
        tally.count(*answer, started)
        if 200 <= answer[0] < 300:
            tally.iterations += 1


async def run_load(load: Load) -> LoadResult:
    ids = read_ids(load.ids_file) if load.ids_file and uses_ids(load) else []
    tally = _Tally(ids, header_templates=templated_headers(load))
    timeout = aiohttp.ClientTimeout(total=load.timeout_s)
    connector = aiohttp.TCPConnector(limit=load.connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + load.duration_s
        workers = [
            asyncio.create_task(_worker(load, session, tally, deadline))
            for _ in range(load.connections)
        ]
        # Every request has its own timeout, so the workers end by deadline + timeout.
        done, pending = await asyncio.wait(workers, timeout=load.duration_s + load.timeout_s + 5)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
        elapsed = min(time.perf_counter(), deadline) - started
    if load.capture_prefix is not None:
        Path(f"{load.capture_prefix}0").write_text(
            "".join(f"{sid}\n" for sid in tally.captured), encoding="utf-8"
        )
    return _result(tally, elapsed, chained=load.followup_body is not None)


def _result(tally: _Tally, elapsed: float, *, chained: bool) -> LoadResult:
    lat = sorted(tally.latencies)
    requests = len(lat)
    ok = sum(n for status, n in tally.statuses.items() if 200 <= int(status) < 300)
    elapsed = max(elapsed, 1e-9)
    # a two-request iteration counts once, and only when both answers were 2xx
    done = tally.iterations if chained else ok
    return LoadResult(
        generator="python",
        requests=requests,
        duration_s=round(elapsed, 3),
        rps=requests / elapsed,
        ok_rps=done / elapsed,
        p50_ms=percentile(lat, 50),
        p90_ms=percentile(lat, 90),
        p99_ms=percentile(lat, 99),
        mean_ms=sum(lat) / requests if requests else 0.0,
        max_ms=lat[-1] if lat else 0.0,
        statuses=dict(sorted(tally.statuses.items())),
        non2xx=requests - ok,
        socket_errors=tally.socket_errors,
        wrapped=tally.wrapped,
        captured=len(tally.captured),
        error_sample=tally.error_sample,
        sent=[tally.sent],
        iterations=tally.iterations,
    )


def run_python(load: Load, workdir: Path, children: Children) -> LoadResult:
    """Run this module as its own process (own process group) for ``load``."""
    spec = workdir / f"{load.name}.load.json"
    out = workdir / f"{load.name}.result.json"
    out.unlink(missing_ok=True)
    spec.write_bytes(msgspec.json.encode(load))
    argv = [sys.executable, str(Path(__file__).resolve()), str(spec), str(out)]
    child = children.start(f"pyload {load.name}", argv, workdir / f"{load.name}.pyload.log")
    try:
        child.proc.wait(timeout=load.duration_s + load.timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"pyload {load.name} did not finish: {child.log_tail()}") from exc
    finally:
        children.stop(child)
    if child.proc.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"pyload {load.name} failed (rc={child.proc.returncode}):\n{child.log_tail()}"
        )
    return msgspec.json.decode(out.read_bytes(), type=LoadResult)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: pyload.py LOAD.json RESULT.json", file=sys.stderr)
        return 2
    load = msgspec.json.decode(Path(argv[0]).read_bytes(), type=Load)
    result = uvloop.run(run_load(load))
    Path(argv[1]).write_bytes(msgspec.json.encode(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
