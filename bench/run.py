"""``make bench``: the session API under load, beside same-run baselines.

Starts one Redis (a throw-away redis-server on a unix socket, or ``SESSIOND_BENCH_REDIS_URL``),
the baseline app (``bench/baseline_server.py``) and the service (``python -m app``), seeds data
over HTTP, runs every scenario with wrk (or ``bench/pyload.py`` when wrk is missing) for the
same duration and connection count, and prints req/s and p50/p99 latency with each scenario's
ratio to the baselines and its target. Results also go to ``bench/results/`` (git-ignored).
Exit status: 0 when every selected scenario ran (whether or not it met its target), 1 when
something could not run, 130 on Ctrl-C.

    .venv/bin/python bench/run.py [--duration 10] [--connections 64] [--workers 1]
                                  [--scenarios bare,redis,create_user,...]

See bench/README.md for what each scenario sends and how to read the table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import argon2rate
import msgspec
import report
from procs import (
    Child,
    Children,
    CpuWatch,
    free_port,
    redis_calls,
    start_redis,
    tree_cpu_s,
    wait_http_ok,
)
from pyload import run_python
from scenarios import Load, LoadResult
from seeding import METADATA_VALUE_B64, PASSWORD, Api, admin_token
from wrkrun import run_wrk, wrk_path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
T = TypeVar("T")

SCENARIOS = [
    "bare",
    "redis",
    "redis_pipelined",
    "create_user",
    "connect_create",
    "create_password",
    "get",
    "connect_get",
    "set",
    "search",
    "delete",
]
BASELINES = {"bare", "redis", "redis_pipelined"}
TITLES = {
    "bare": "baseline: bare aiohttp JSON",
    "redis": "baseline: + 1 Redis round trip",
    "redis_pipelined": "baseline: + 1 round trip, pipelined",
    "argon2": "argon2id verify, raw",
    "create_user": "create (user check)",
    "connect_create": "create (user check), Connect",
    "create_password": "create (user+password)",
    "get": "get",
    "connect_get": "get, Connect",
    "set": "set (metadata)",
    "search": "search (100 sessions)",
    "delete": "delete",
}
TARGETS = {
    "get": report.Target(base="redis", ratio=0.80),
    "create_user": report.Target(base="redis", ratio=0.50),
    "set": report.Target(base="redis", ratio=0.40),
    "search": report.Target(base="redis", ratio=0.30),
    "create_password": report.Target(base="argon2", ratio=0.85),
    "connect_create": report.Target(base="create_user", ratio=0.95),
    "connect_get": report.Target(base="get", ratio=0.95),
}
EXPECTED_STATUS = {"create_user": 201, "create_password": 201}
SEARCH_SESSIONS = 100
#: CPU (in cores) used by processes outside the benchmark above which a row is flagged.
OTHER_CPU_WARN_CORES = 0.15


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the session API against same-run baselines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument(
        "--warmup",
        type=int,
        default=2,
        help="seconds of unrecorded load before each scenario (not delete)",
    )
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--workers", type=int, default=1, help="service worker processes (and baseline processes)"
    )
    parser.add_argument(
        "--scenarios",
        default="all",
        help=f"comma list of {','.join(SCENARIOS)}; or all / baselines",
    )
    parser.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="auto: wrk when installed, else the Python generator",
    )
    parser.add_argument(
        "--pool", type=int, default=2000, help="minimum sessions for get/set (and delete)"
    )
    parser.add_argument(
        "--hash-threads",
        type=int,
        default=2,
        help="threads of the raw argon2id measurement (the service's pool)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SESSIOND_BENCH_REDIS_URL", ""),
        help="use this Redis instead of a throw-away one (never flushed)",
    )
    parser.add_argument(
        "--service-cmd",
        default="python -m app",
        help="how to start the service (a leading 'python' is this interpreter)",
    )
    parser.add_argument(
        "--service-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the service's /healthz",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait, before each scenario, for other processes to leave the CPU",
    )
    parser.add_argument(
        "--busy-retries",
        type=int,
        default=1,
        help="measure again when other processes used the CPU (not for delete)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--keep-tmp", action="store_true", help="keep logs and Lua scripts")
    args = parser.parse_args(argv)
    args.selected = _selected(parser, args.scenarios)
    if args.duration < 1 or args.connections < args.threads or args.threads < 1:
        parser.error("need --duration >= 1 and --connections >= --threads >= 1")
    return args


def _selected(parser: argparse.ArgumentParser, text: str) -> list[str]:
    if text == "all":
        return list(SCENARIOS)
    if text == "baselines":
        return ["bare", "redis", "redis_pipelined"]
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        parser.error(f"unknown scenarios {unknown}; choose from {SCENARIOS}")
    return [name for name in SCENARIOS if name in names]


def run_async(coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout=timeout_s)

    return asyncio.run(bounded())


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    """One run: the processes, the seeded data, and the rows measured so far."""

    def __init__(self, args: argparse.Namespace, workdir: Path, children: Children) -> None:
        self.args = args
        self.workdir = workdir
        self.children = children
        self.rows: dict[str, report.Row] = {}
        self.notes: list[str] = []
        self.redis_url = ""
        self.baseline_url = ""
        self.baseline_pgids: list[int] = []
        self.service: Child | None = None
        self.service_url = ""
        self.token = admin_token()
        self.run_tag = os.urandom(3).hex()
        self.user1 = ""
        self.user2 = ""
        self.pool: list[str] = []
        self.generator = self._pick_generator()
        self.failed = False

    # ------------------------------------------------------------------ processes
    def _pick_generator(self) -> Callable[[Load, Path, Children], LoadResult]:
        choice = self.args.loadgen
        if choice == "wrk" or (choice == "auto" and wrk_path() is not None):
            if wrk_path() is None:
                raise SystemExit("--loadgen wrk: wrk is not installed (apt-get install wrk)")
            return run_wrk
        if choice == "auto":
            self.notes.append(
                "wrk not installed: the Python load generator (bench/pyload.py) "
                "drove this run; bare-handler numbers are client-bound"
            )
        return run_python

    def start_redis(self) -> None:
        if self.args.redis_url:
            self.redis_url = self.args.redis_url
            self.notes.append("Redis: given by SESSIOND_BENCH_REDIS_URL/--redis-url")
        else:
            self.redis_url = start_redis(self.children, self.workdir)
        log(f"redis at {self.redis_url}")

    def start_baseline(self) -> None:
        port = free_port()
        for index in range(self.args.workers):
            child = self.children.start(
                f"baseline-{index}",
                [
                    sys.executable,
                    str(BENCH / "baseline_server.py"),
                    "--port",
                    str(port),
                    "--redis-url",
                    self.redis_url,
                ],
                self.workdir / f"baseline-{index}.log",
                cwd=REPO,
            )
            self.baseline_pgids.append(child.proc.pid)
            if index == 0:
                wait_http_ok(child, f"http://127.0.0.1:{port}/redis", timeout_s=30)
        self.baseline_url = f"http://127.0.0.1:{port}"
        log(f"baseline app at {self.baseline_url} ({self.args.workers} process(es))")

    def start_service(self) -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
        env.update(
            {
                "SESSIOND_REDIS_URL": self.redis_url,
                "SESSIOND_HTTP_PORT": str(port),
                "SESSIOND_ADMIN_TOKEN": self.token,
                # generated per run: the bench seals nothing that outlives it
                "SESSIOND_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
                "SESSIOND_WORKERS": str(self.args.workers),
                "SESSIOND_LOG_LEVEL": "warning",
                "SESSIOND_LOG_FORMAT": "json",
                "SESSIOND_DATA_DIR": str(self.workdir / "service-data"),
                # One user and one address send everything here: keep the limiter in the
                # path (its Redis step is measured) but far above the load.
                "SESSIOND_RATE_LIMIT_USER": "100000000/1m",
                "SESSIOND_RATE_LIMIT_IP": "100000000/1m",
                "SESSIOND_RATE_LIMIT_CALLER": "100000000/1m",
            }
        )
        argv = shlex.split(self.args.service_cmd)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        self.service = self.children.start(
            "service", argv, self.workdir / "service.log", env=env, cwd=REPO
        )
        self.service_url = f"http://127.0.0.1:{port}"
        wait_http_ok(
            self.service, f"{self.service_url}/healthz", timeout_s=self.args.service_timeout
        )
        log(f"service at {self.service_url} (SESSIOND_WORKERS={self.args.workers})")

    # ------------------------------------------------------------------ measuring
    def measure(self, name: str, load: Load, *, warm: bool = True) -> LoadResult:
        """Warm up, then measure; measure again when other processes took the CPU."""
        row = self.rows[name]
        retries = 0 if load.consume else self.args.busy_retries
        attempt = 0
        while True:  # at most retries + 1 times
            self.wait_quiet(name)
            result, server_cpu_s, foreign, calls = self._measure_once(load, warm=warm)
            row.result = result
            ok = result.ok_rps * result.duration_s
            row.server_cpu_us = server_cpu_s / ok * 1e6 if ok else None
            row.other_cpu_cores = foreign
            if ok and name != "bare":
                row.redis_cmds = {k: round(v / ok, 2) for k, v in calls.items() if v}
                row.redis_cmds_per_req = sum(calls.values()) / ok
            log(
                f"{name}: {result.ok_rps:,.0f} req/s (2xx), p50 {result.p50_ms:.2f} ms, "
                f"p99 {result.p99_ms:.2f} ms, errors {result.errors}, "
                f"other processes {foreign:.2f} cores"
            )
            if foreign <= OTHER_CPU_WARN_CORES or attempt >= retries:
                break
            attempt += 1
            row.notes.append(f"measured again: other processes used {foreign:.2f} cores")
        self.flag_busy(row)
        expected = EXPECTED_STATUS.get(name, 200)
        others = {
            s: n for s, n in result.statuses.items() if 200 <= int(s) < 300 and int(s) != expected
        }
        if others:
            row.notes.append(f"expected status {expected}, also got {others}")
        return result

    def _measure_once(
        self, load: Load, *, warm: bool
    ) -> tuple[LoadResult, float, float, dict[str, int]]:
        """The result, the server's CPU seconds, other processes' CPU in cores, Redis calls."""
        pgids = self._server_pgids(load.name)
        if warm and self.args.warmup > 0:
            warm_load = _replace(
                load,
                name=f"{load.name}-warmup",
                duration_s=self.args.warmup,
                capture_prefix=(f"{load.capture_prefix}warm." if load.capture_prefix else None),
            )
            self.generator(warm_load, self.workdir, self.children)
        calls_before = redis_calls(self.redis_url)
        cpu_before = tree_cpu_s(pgids)
        watch = CpuWatch(self.children.pgids())
        result = self.generator(load, self.workdir, self.children)
        foreign = watch.foreign_s() / max(result.duration_s, 1e-9)
        cpu_used = tree_cpu_s(pgids) - cpu_before
        calls = redis_calls(self.redis_url)
        calls = {k: n - calls_before.get(k, 0) for k, n in calls.items() if k != "info"}
        return result, cpu_used, foreign, calls

    def wait_quiet(self, name: str) -> None:
        """Wait (at most ``--quiet-wait`` s) until other processes leave the CPU idle."""
        deadline = time.monotonic() + self.args.quiet_wait
        waited = False
        while time.monotonic() < deadline:
            watch = CpuWatch(self.children.pgids())
            time.sleep(1.0)
            if watch.foreign_s() <= OTHER_CPU_WARN_CORES:
                break
            if not waited:
                log(f"{name}: other processes are using the CPU; waiting for a quiet moment")
                waited = True

    def flag_busy(self, row: report.Row) -> None:
        if row.other_cpu_cores is not None and row.other_cpu_cores > OTHER_CPU_WARN_CORES:
            row.notes.append(
                f"machine busy: processes outside this benchmark used "
                f"{row.other_cpu_cores:.2f} cores during the measurement; ratio is suspect"
            )

    def _server_pgids(self, name: str) -> list[int]:
        if name in BASELINES:
            return self.baseline_pgids
        return [self.service.proc.pid] if self.service else []

    def load(
        self,
        name: str,
        method: str,
        path: str,
        body: str | None = None,
        *,
        base: str = "",
        ids: list[str] | None = None,
        consume: bool = False,
        capture: bool = False,
    ) -> Load:
        ids_file = None
        if ids is not None:
            ids_path = self.workdir / f"{name}.ids"
            ids_path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
            ids_file = str(ids_path)
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return Load(
            name=name,
            base_url=base or self.service_url,
            method=method,
            path=path,
            body=body,
            headers=headers,
            ids_file=ids_file,
            consume=consume,
            capture_prefix=str(self.workdir / f"{name}.captured.") if capture else None,
            connections=self.args.connections,
            threads=self.args.threads,
            duration_s=self.args.duration,
        )

    def collect_captured(self, name: str) -> int:
        found = 0
        for path in sorted(self.workdir.glob(f"{name}.captured.*")):
            ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            self.pool.extend(ids)
            found += len(ids)
            path.unlink()
        return found

    # ------------------------------------------------------------------ seeding
    def api(self) -> Api:
        return Api(self.service_url, self.token)

    def seed_users(self) -> None:
        async def go() -> tuple[str, str]:
            async with self.api() as api:
                one = await api.create_user(f"bench1-{self.run_tag}")
                two = await api.create_user(f"bench2-{self.run_tag}")
                return one, two

        self.user1, self.user2 = run_async(go(), 60)
        log(f"seeded users {self.user1} (password) and {self.user2}")

    def grow_pool(self, size: int) -> None:
        missing = size - len(self.pool)
        if missing <= 0:
            return
        log(f"seeding {missing:,} sessions of user 1 (pool {len(self.pool):,} -> {size:,})")

        async def go() -> list[str]:
            async with self.api() as api:
                return await api.create_sessions(self.user1, missing, concurrency=64)

        started = time.monotonic()
        self.pool.extend(run_async(go(), 60 + missing / 100))
        log(f"seeded in {time.monotonic() - started:.1f}s")

    # ------------------------------------------------------------------ scenarios
    def run_bare(self) -> None:
        self.measure("bare", self.load("bare", "GET", "/bare", base=self.baseline_url))

    def run_redis(self) -> None:
        self.measure("redis", self.load("redis", "GET", "/redis", base=self.baseline_url))

    def run_redis_pipelined(self) -> None:
        self.measure(
            "redis_pipelined",
            self.load("redis_pipelined", "GET", "/redis-pipelined", base=self.baseline_url),
        )

    def run_create_user(self) -> None:
        body = f'{{"checks":{{"user":{{"userId":"{self.user1}"}}}}}}'
        self.measure(
            "create_user", self.load("create_user", "POST", "/v2/sessions", body, capture=True)
        )
        self.collect_captured("create_user")

    def run_connect_create(self) -> None:
        body = f'{{"checks":{{"user":{{"userId":"{self.user1}"}}}}}}'
        path = "/zitadel.session.v2.SessionService/CreateSession"
        self.measure("connect_create", self.load("connect_create", "POST", path, body))

    def run_argon2(self) -> None:
        params = run_async(argon2rate.stored_params(self.redis_url, self.user1), 30)
        threads = self.args.hash_threads
        log(
            f"raw argon2id verify: t={params.time_cost} m={params.memory_kib} KiB "
            f"p={params.parallelism} ({params.source}), {threads} threads"
        )
        self.wait_quiet("argon2")
        watch = CpuWatch(self.children.pgids())
        rate, count = argon2rate.verify_rate(
            params, threads=threads, duration_s=self.args.duration, password=PASSWORD
        )
        row = self.rows["argon2"]
        row.other_cpu_cores = watch.foreign_s() / self.args.duration
        self.flag_busy(row)
        row.plain_rps = rate
        row.title = f"{TITLES['argon2']} ({threads} threads)"
        row.notes.append(
            f"{count} verifies; t={params.time_cost}, m={params.memory_kib} KiB, "
            f"p={params.parallelism} from {params.source}; in-process, no HTTP"
        )
        log(f"argon2: {rate:.1f} verifies/s")

    def run_create_password(self) -> None:
        body = (
            f'{{"checks":{{"user":{{"userId":"{self.user1}"}},'
            f'"password":{{"password":"{PASSWORD}"}}}}}}'
        )
        self.measure(
            "create_password",
            self.load("create_password", "POST", "/v2/sessions", body, capture=True),
        )
        self.collect_captured("create_password")

    def run_get(self) -> None:
        self.grow_pool(self.args.pool)
        self.measure("get", self.load("get", "GET", "/v2/sessions/{id}", ids=self.pool))

    def run_connect_get(self) -> None:
        self.grow_pool(self.args.pool)
        path = "/zitadel.session.v2.SessionService/GetSession"
        body = '{"sessionId":"{id}"}'
        self.measure("connect_get", self.load("connect_get", "POST", path, body, ids=self.pool))

    def run_set(self) -> None:
        self.grow_pool(self.args.pool)
        body = f'{{"metadata":{{"k{{n}}":"{METADATA_VALUE_B64}"}}}}'
        self.measure("set", self.load("set", "PATCH", "/v2/sessions/{id}", body, ids=self.pool))

    def run_search(self) -> None:
        async def go() -> int:
            async with self.api() as api:
                await api.create_sessions(self.user2, SEARCH_SESSIONS, concurrency=16)
                return len(await api.search_user_sessions(self.user2))

        found = run_async(go(), 120)
        row = self.rows["search"]
        row.notes.append(f"one search answered {found} sessions (expected {SEARCH_SESSIONS})")
        if found != SEARCH_SESSIONS:
            row.verdict = f"BAD DATA ({found} sessions)"
        body = f'{{"queries":[{{"userIdQuery":{{"id":"{self.user2}"}}}}]}}'
        self.measure("search", self.load("search", "POST", "/v2/sessions/search", body))

    def run_delete(self) -> None:
        # A delete is a write like create and set: size the pool from their rates.
        rates = [self.rows[n].rps or 0.0 for n in ("create_user", "set") if n in self.rows]
        expected = 1.5 * max([1000.0, *rates]) * self.args.duration
        self.grow_pool(max(self.args.pool, math.ceil(expected)))
        for attempt in (1, 2):
            ids, self.pool = self.pool, []
            result = self.measure(
                "delete",
                self.load("delete", "DELETE", "/v2/sessions/{id}", ids=ids, consume=True),
                warm=False,
            )
            if not result.wrapped:
                return
            self.rows["delete"].notes.append(
                f"attempt {attempt}: pool of {len(ids):,} ran out, {result.wrapped:,} "
                "requests repeated a deleted id"
            )
            if attempt == 1:
                self.grow_pool(math.ceil(1.5 * (result.requests + result.wrapped)))
        self.rows["delete"].verdict = "POOL SHORT"

    # ------------------------------------------------------------------ the run
    def run(self) -> report.Report:
        started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        selected = self.args.selected
        wants_service = any(name not in BASELINES for name in selected)
        for name in selected:
            if name == "create_password":
                self.rows["argon2"] = report.Row(name="argon2", title=TITLES["argon2"])
            self.rows[name] = report.Row(name=name, title=TITLES[name], target=TARGETS.get(name))
        self.start_redis()
        self.start_baseline()
        service_ok = False
        if wants_service:
            try:
                self.start_service()
                self.seed_users()
                service_ok = True
            except Exception as exc:
                self.failed = True
                self.notes.append(f"SERVICE NOT BENCHMARKED: {exc}".strip()[:2000])
                log(f"!!! service unavailable: {exc}")
        steps: list[tuple[str, Callable[[], None]]] = [
            ("bare", self.run_bare),
            ("redis", self.run_redis),
            ("redis_pipelined", self.run_redis_pipelined),
            ("argon2", self.run_argon2),
            ("create_user", self.run_create_user),
            ("connect_create", self.run_connect_create),
            ("create_password", self.run_create_password),
            ("get", self.run_get),
            ("connect_get", self.run_connect_get),
            ("set", self.run_set),
            ("search", self.run_search),
            ("delete", self.run_delete),
        ]
        for name, step in steps:
            if name not in self.rows:
                continue
            if name not in BASELINES and not service_ok:
                self.rows[name].verdict = "NOT RUN (service)"
                continue
            self._step(name, step)
        rows = list(self.rows.values())
        report.judge(rows)
        return report.Report(
            started_at=started_at,
            command=shlex.join([_interpreter(), *sys.argv]),
            machine=report.machine_facts(REPO),
            settings={
                "duration_s": str(self.args.duration),
                "warmup_s": str(self.args.warmup),
                "connections": str(self.args.connections),
                "threads": str(self.args.threads),
                "workers": str(self.args.workers),
                "loadgen": "wrk" if self.generator is run_wrk else "python",
                "redis": "external" if self.args.redis_url else "redis-server, unix socket",
            },
            rows=rows,
            notes=self.notes,
            service_log_findings=self.service_log_findings(),
        )

    def _step(self, name: str, step: Callable[[], None]) -> None:
        if self.service is not None and name not in BASELINES and not self.service.alive:
            self.rows[name].verdict = "NOT RUN (service died)"
            self.failed = True
            return
        try:
            step()
        except Exception as exc:
            self.failed = True
            self.rows[name].verdict = "CRASHED"
            self.rows[name].notes.append(f"{type(exc).__name__}: {exc}"[:1500])
            log(f"!!! {name} failed: {exc}")
            traceback.print_exc()

    def service_log_findings(self, limit: int = 8) -> list[str]:
        if self.service is None:
            return []
        text = self.service.log_tail(max_chars=2_000_000)
        flagged = [
            line
            for line in text.splitlines()
            if any(
                mark in line.lower()
                for mark in (
                    '"level":"error"',
                    '"level":"warning"',
                    '"level":"critical"',
                    '"level": "error"',
                    '"level": "warning"',
                    "traceback",
                )
            )
        ]
        if not flagged:
            return []
        distinct = list(dict.fromkeys(line[:300] for line in flagged))
        head = [f"{len(flagged)} warning/error lines in the service log"]
        return head + distinct[:limit]


def _interpreter() -> str:
    """This interpreter, relative to the repository when it is the project's venv."""
    exe = Path(sys.executable)
    return str(exe.relative_to(REPO)) if exe.is_relative_to(REPO) else str(exe)


def _replace(load: Load, **changes: Any) -> Load:
    return msgspec.structs.replace(load, **changes)


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C must reach the finally below even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="sessiond-bench-"))
    children = Children()
    try:
        bench = Bench(args, workdir, children)
        result = bench.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip teardown
        children.stop_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if args.keep_tmp:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report.text_table(result.rows))
    warnings = report.warnings_text(result)
    if warnings:
        print()
        print(warnings)
    json_path, md_path = report.write_files(result, args.results_dir)
    print(f"\nresults: {json_path} and {md_path.name}")
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
