"""Fallback load generator when wrk is missing: aiohttp client on uvloop, in its own process.

Run: ``python bench/pyload.py LOAD.json RESULT.json``. It reads a ``scenarios.Load``, keeps
``connections`` requests in flight for ``duration_s`` seconds and writes a
``scenarios.LoadResult``. One Python process drives far fewer requests per second than wrk
(roughly 5-8k/s here), so the bare-handler baseline measures the client, not the server; the
ratios of the service rows to the one-round-trip baseline stay meaningful as long as that
baseline is well below the client's own ceiling.
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
from scenarios import Load, LoadResult, percentile, read_ids, render, uses_ids

_SESSION_ID = re.compile(rb'"sessionId"\s*:\s*"([^"]+)"')


class _Tally:
    """Mutable counters shared by the worker coroutines of one run."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.sent = 0
        self.wrapped = 0
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.socket_errors: dict[str, int] = {}
        self.error_sample = ""
        self.captured: list[str] = []

    def next_request(self, load: Load) -> tuple[str, bytes | None]:
        index = self.sent
        self.sent += 1
        ident = ""
        if self.ids:
            if load.consume and index >= len(self.ids):
                self.wrapped += 1
            ident = self.ids[index % len(self.ids)]
        body = render(load.body, ident, index) if load.body is not None else None
        return render(load.path, ident, index), body.encode() if body is not None else None


async def _worker(
    load: Load, session: aiohttp.ClientSession, tally: _Tally, deadline: float
) -> None:
    while time.perf_counter() < deadline:
        path, body = tally.next_request(load)
        started = time.perf_counter()
        try:
            async with session.request(
                load.method, load.base_url + path, data=body, headers=load.headers
            ) as response:
                payload = await response.read()
                status = response.status
        except TimeoutError:
            tally.socket_errors["timeout"] = tally.socket_errors.get("timeout", 0) + 1
            continue
        except aiohttp.ClientError as exc:
            kind = type(exc).__name__
            tally.socket_errors[kind] = tally.socket_errors.get(kind, 0) + 1
            continue
        if time.perf_counter() > deadline:
            return  # finished after the end: not counted, like wrk
        tally.latencies.append((time.perf_counter() - started) * 1000)
        tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
        if not 200 <= status < 300:
            if not tally.error_sample:
                tally.error_sample = payload[:400].decode(errors="replace")
        elif load.capture_prefix is not None:
            match = _SESSION_ID.search(payload)
            if match:
                tally.captured.append(match.group(1).decode())


async def run_load(load: Load) -> LoadResult:
    ids = read_ids(load.ids_file) if load.ids_file and uses_ids(load) else []
    tally = _Tally(ids)
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
    return _result(tally, elapsed)


def _result(tally: _Tally, elapsed: float) -> LoadResult:
    lat = sorted(tally.latencies)
    requests = len(lat)
    ok = sum(n for status, n in tally.statuses.items() if 200 <= int(status) < 300)
    elapsed = max(elapsed, 1e-9)
    return LoadResult(
        generator="python",
        requests=requests,
        duration_s=round(elapsed, 3),
        rps=requests / elapsed,
        ok_rps=ok / elapsed,
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
