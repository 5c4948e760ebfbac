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
import contextlib
import math
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import argon2rate
import msgspec
import pyotp
import redis
import relaylag
import report
import webauthn_seed
from onetime import TotpPairs
from procs import (
    Child,
    Children,
    CpuWatch,
    free_port,
    http_status,
    redis_calls,
    start_cluster,
    start_redis,
    stored_bytes,
    tree_cpu_s,
    wait_http_ok,
)
from pyload import run_python
from scenarios import Load, LoadResult
from seeding import METADATA_VALUE_B64, PASSWORD, Api, admin_token, bounded_map, pingone_body
from smtpsink import ask, sink_count
from wrkrun import run_wrk, wrk_path

from storage import keys

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
    "pingone_create",
    "pingone_me",
    "idp_intent_start",
    "totp_set",
    "webauthn_set",
    "otp_email",
    "outbox_delivery",
    "cluster_create",
    "cluster_get",
    "cluster_set",
    "cluster_search",
    "growth",
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
    "pingone_create": "PingOne create (user agent parsed)",
    "pingone_me": "PingOne GET /sessions/me (by ST cookie)",
    "idp_intent_start": "IdP intent start (OIDC, discovery cached)",
    "totp_set": "set (TOTP check)",
    "webauthn_set": "set (WebAuthn passkey check)",
    "otp_email": "OTP e-mail challenge + check (iterations/s, 2 requests each)",
    "smtp_raw": "baseline: raw aiosmtplib sends (messages/s)",
    "outbox_delivery": "outbox worker -> SMTP sink (messages/s)",
    "cluster_create": "create (user check), 3-primary cluster",
    "cluster_get": "get, 3-primary cluster",
    "cluster_set": "set (metadata), 3-primary cluster",
    "cluster_search": "search (100 sessions), 3-primary cluster",
    **{
        f"grown_{kind}_{label}": f"{title}, {size} sessions stored"
        for kind, title in (("get", "get"), ("search", "search (100 sessions)"))
        for label, size in (("10k", "10k"), ("100k", "100k"), ("1m", "1M"))
    },
    "grown_get_1m_same_ids": "get, 1M sessions stored, the 10k row's ids",
    **{
        f"grown_redis_{label}": f"baseline: + 1 Redis round trip, beside the {size} rows"
        for label, size in (("10k", "10k"), ("100k", "100k"), ("1m", "1M"))
    },
}
TARGETS = {
    "get": report.Target(base="redis", ratio=0.80),
    "create_user": report.Target(base="redis", ratio=0.50),
    "set": report.Target(base="redis", ratio=0.40),
    "search": report.Target(base="redis", ratio=0.30),
    "pingone_create": report.Target(base="redis", ratio=0.50),
    "pingone_me": report.Target(base="redis", ratio=0.80),
    "create_password": report.Target(base="argon2", ratio=0.85),
    "connect_create": report.Target(base="create_user", ratio=0.95),
    "connect_get": report.Target(base="get", ratio=0.95),
    "totp_set": report.Target(base="redis", ratio=0.40),
    "webauthn_set": report.Target(base="redis", ratio=0.30),
    # otp_email, idp_intent_start: no target set; their rates are recorded only
    "outbox_delivery": report.Target(base="smtp_raw", ratio=0.70),
    # a cluster row against its single-node row of the same run (set, search: recorded only)
    "cluster_create": report.Target(base="create_user", ratio=0.80),
    "cluster_get": report.Target(base="get", ratio=0.80),
    # the 1M-session store against the same service at 10k (within 20%), each row's rate
    # taken as a share of the one-round-trip baseline measured in rounds alternating with it,
    # so the host's drift over the minutes of seeding between the stages cancels
    "grown_get_1m": report.Target(base="grown_get_10k", ratio=0.80, host_relative=True),
    "grown_search_1m": report.Target(base="grown_search_10k", ratio=0.80, host_relative=True),
}
#: Rows measured against the service on the loopback cluster (its own processes and data).
CLUSTER_ROWS = {"cluster_create", "cluster_get", "cluster_set", "cluster_search"}
#: Rows measured on a store that grows from 10k to 1M sessions (its own server and service).
GROWTH_STAGES = (("10k", 10_000), ("100k", 100_000), ("1m", 1_000_000))
GROWTH_ROWS = [
    *(f"grown_{kind}_{label}" for label, _ in GROWTH_STAGES for kind in ("redis", "get", "search")),
    "grown_get_1m_same_ids",
]
#: Users the growth store's sessions belong to (each with about 1,000 at 1M).
GROWTH_USERS = 1000
#: What ``Bench.on_stack`` swaps: the target a scenario's code reads.
STACK_FIELDS = ("redis_url", "service", "service_url", "service_env", "user1", "user2", "pool")
#: Pairs measured in alternating rounds (REST twin, Connect twin) so both see the same moments.
TWINS = {"create_user": "connect_create", "get": "connect_get"}
#: The code of an ``{"challenges":{"otpEmail":{"returnCode":{}}}}`` answer.
OTP_EMAIL_CODE = r'"otpEmail"\s*:\s*"([^"]+)"'

EXPECTED_STATUS = {
    "create_user": 201,
    "cluster_create": 201,
    "create_password": 201,
    "pingone_create": 201,
}
SEARCH_SESSIONS = 100
#: Passkey users of webauthn_set (their sessions share the load).
WEBAUTHN_USERS = 64
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
        "--pool",
        type=int,
        default=2000,
        help="minimum sessions for get/set (and delete); PingOne sessions of pingone_me",
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
        "--service-env",
        action="append",
        default=[],
        metavar="SESSIOND_NAME=VALUE",
        help="an extra setting of the service (repeatable), e.g. SESSIOND_REDIS_WAIT_REPLICAS=1",
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
    parser.add_argument(
        "--twin-rounds",
        type=int,
        default=3,
        help="rounds of REST/Connect alternation for each twin pair (duration split evenly)",
    )
    parser.add_argument(
        "--totp-users",
        type=int,
        default=12000,
        help="users with a TOTP secret (one session each) for totp_set; each passes at most "
        "3 checks per 30-s window",
    )
    parser.add_argument(
        "--otp-users", type=int, default=500, help="users with OTP e-mail for otp_email"
    )
    parser.add_argument(
        "--outbox-jobs", type=int, default=2000, help="messages per outbox_delivery round"
    )
    parser.add_argument(
        "--outbox-rounds",
        type=int,
        default=2,
        help="alternating rounds of the raw send loop and the worker (outbox_delivery)",
    )
    parser.add_argument(
        "--delivery-concurrency",
        type=int,
        default=4,
        help="consumers of the delivery worker, and concurrent sends of the raw loop",
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
        # generated per run: the bench seals nothing that outlives it
        self.master_key = base64.b64encode(os.urandom(32)).decode()
        self.service_env: dict[str, str] = {}
        self.sink: Child | None = None
        self.smtp_port = 0
        self.sink_control_port = 0
        self.otp_sessions: list[str] = []
        # PingOne: the environment (this instance's id), the ST-token prefix of this run,
        # one activeAt / sign-on time for every body (fixed at start, so a little in the past)
        self.env_id = ""
        self.pingone_tag = os.urandom(4).hex()
        self.pingone_at = _iso_ms(datetime.now(UTC) - timedelta(seconds=1))
        self.pingone_tokens: list[str] = []
        #: Other stacks ("cluster", "growth": their STACK_FIELDS), swapped in by ``on_stack``.
        self.stacks: dict[str, dict[str, Any]] = {}

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

    def start_service(self, name: str = "service") -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
        env.update(
            {
                "SESSIOND_REDIS_URL": self.redis_url,
                "SESSIOND_HTTP_PORT": str(port),
                "SESSIOND_ADMIN_TOKEN": self.token,
                "SESSIOND_MASTER_KEY": self.master_key,
                "SESSIOND_WORKERS": str(self.args.workers),
                "SESSIOND_LOG_LEVEL": "warning",
                "SESSIOND_LOG_FORMAT": "json",
                "SESSIOND_DATA_DIR": str(self.workdir / "service-data"),
                # One user and one address send everything here: keep the limiter in the
                # path (its Redis step is measured) but far above the load.
                "SESSIOND_RATE_LIMIT_USER": "100000000/1m",
                "SESSIOND_RATE_LIMIT_IP": "100000000/1m",
                "SESSIOND_RATE_LIMIT_CALLER": "100000000/1m",
                "SESSIOND_WEBAUTHN_ORIGINS": webauthn_seed.ORIGIN,
            }
        )
        for setting in self.args.service_env:
            name, equals, value = setting.partition("=")
            if not equals or not name.startswith("SESSIOND_"):
                raise ValueError(f"--service-env wants SESSIOND_NAME=VALUE, not {setting!r}")
            env[name] = value
            self.notes.append(f"service setting {name}={value}")
        if self.sink is not None:  # outbox_delivery: e-mail jobs for the sink
            env.update(
                {
                    "SESSIOND_SMTP_HOST": "127.0.0.1",
                    "SESSIOND_SMTP_PORT": str(self.smtp_port),
                    "SESSIOND_SMTP_TLS": "none",
                }
            )
        self.service_env = env
        argv = shlex.split(self.args.service_cmd)
        if argv and argv[0] == "python":
            argv[0] = sys.executable
        self.service = self.children.start(
            name, argv, self.workdir / f"{name}.log", env=env, cwd=REPO
        )
        self.service_url = f"http://127.0.0.1:{port}"
        wait_http_ok(
            self.service, f"{self.service_url}/healthz", timeout_s=self.args.service_timeout
        )
        log(f"{name} at {self.service_url} (SESSIOND_WORKERS={self.args.workers})")

    def start_cluster_service(self) -> None:
        """The same service on a 3-primary loopback cluster, with its own users and pool."""
        with self.on_stack("cluster", new=True):
            self.redis_url = start_cluster(self.children, self.workdir)
            log(f"cluster at {self.redis_url}")
            self.start_service("service-cluster")
            self.seed_users()

    def start_growth_service(self) -> None:
        """A second single node and service whose store only the growth rows fill."""
        with self.on_stack("growth", new=True):
            directory = self.workdir / "growth"
            directory.mkdir()
            self.redis_url = start_redis(self.children, directory)
            self.start_service("service-growth")
            self.seed_users()

    @contextlib.contextmanager
    def on_stack(self, stack: str, *, new: bool = False) -> Iterator[None]:
        """Run the enclosed code against another stack's service (every STACK_FIELDS name).

        ``new``: a stack being started, with no service, data or settings of its own yet.
        """
        if new:
            self.stacks[stack] = {"pool": [], "service": None, "service_env": {}}
        if stack not in self.stacks:
            raise RuntimeError(f"the {stack} service was not started")
        main = {name: getattr(self, name) for name in STACK_FIELDS}
        for name in STACK_FIELDS:
            setattr(self, name, self.stacks[stack].get(name, main[name]))
        try:
            yield
        finally:
            self.stacks[stack] = {name: getattr(self, name) for name in STACK_FIELDS}
            for name, value in main.items():
                setattr(self, name, value)

    def start_sink(self) -> None:
        """The SMTP sink of outbox_delivery (its own process), before the service starts."""
        self.smtp_port, self.sink_control_port = free_port(), free_port()
        self.sink = self.children.start(
            "smtp-sink",
            [
                sys.executable,
                str(BENCH / "smtpsink.py"),
                "sink",
                "--port",
                str(self.smtp_port),
                "--control-port",
                str(self.sink_control_port),
            ],
            self.workdir / "smtp-sink.log",
            cwd=REPO,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                ask(self.sink_control_port, "RESET", timeout_s=1)
                break
            except OSError:
                if not self.sink.alive or time.monotonic() > deadline:
                    raise RuntimeError(f"SMTP sink did not start: {self.sink.log_tail()}") from None
                time.sleep(0.1)
        log(f"SMTP sink at 127.0.0.1:{self.smtp_port}")

    # ------------------------------------------------------------------ measuring
    def _fill(
        self,
        row: report.Row,
        result: LoadResult,
        cpu_s: float,
        foreign: float,
        calls: dict[str, int],
    ) -> None:
        row.result = result
        ok = result.ok_rps * result.duration_s
        row.server_cpu_us = cpu_s / ok * 1e6 if ok else None
        row.other_cpu_cores = foreign
        if ok and row.name != "bare":
            row.redis_cmds = {k: round(v / ok, 2) for k, v in calls.items() if v}
            row.redis_cmds_per_req = sum(calls.values()) / ok

    def measure(
        self,
        name: str,
        load: Load,
        *,
        warm: bool = True,
        generator: Callable[[Load, Path, Children], LoadResult] | None = None,
        pairs: TotpPairs | None = None,
    ) -> LoadResult:
        """Warm up, then measure; measure again when other processes took the CPU.

        ``pairs``: the load's ids file holds one-use TOTP codes, written afresh before the
        warm-up and before the measurement (no retries then: each try uses pairs up).
        """
        row = self.rows[name]
        retries = 0 if load.consume else self.args.busy_retries
        attempt = 0
        while True:  # at most retries + 1 times
            self.wait_quiet(name)
            result, server_cpu_s, foreign, calls = self._measure_once(
                load, warm=warm, generator=generator or self.generator, pairs=pairs
            )
            self._fill(row, result, server_cpu_s, foreign, calls)
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
        self,
        load: Load,
        *,
        warm: bool,
        generator: Callable[[Load, Path, Children], LoadResult] | None = None,
        pairs: TotpPairs | None = None,
    ) -> tuple[LoadResult, float, float, dict[str, int]]:
        """The result, the server's CPU seconds, other processes' CPU in cores, Redis calls."""
        run = generator or self.generator
        pgids = self._server_pgids(load)
        warmup = self.args.warmup if warm else 0
        if pairs is not None:
            # wrk start-up and the gap between the runs: about 1 s each
            pairs.wait_for_window(warmup + load.duration_s + 3, log=log)
        if warmup > 0:
            warm_load = _replace(
                load,
                name=f"{load.name}-warmup",
                duration_s=warmup,
                capture_prefix=(f"{load.capture_prefix}warm." if load.capture_prefix else None),
            )
            if pairs is not None and load.ids_file:
                warm_load = _replace(warm_load, ids_file=f"{load.ids_file}.warm")
                pairs.write(Path(warm_load.ids_file or ""), threads=load.threads, span_s=warmup + 1)
            warmed = run(warm_load, self.workdir, self.children)
            if pairs is not None:
                pairs.consumed(warmed.sent)
            if warmed.errors and load.name in self.rows:
                self.rows[load.name].notes.append(
                    f"warm-up (not recorded) had {warmed.errors} errors: {warmed.statuses} "
                    f"{warmed.socket_errors} {warmed.error_sample[:200]!r}"
                )
        if pairs is not None and load.ids_file:
            lines = pairs.write(
                Path(load.ids_file), threads=load.threads, span_s=load.duration_s + 1
            )
            log(f"{load.name}: {lines:,} one-use (session, TOTP code) pairs for this run")
        calls_before = redis_calls(self.redis_url)
        stored_before = stored_bytes(self.redis_url)
        cpu_before = tree_cpu_s(pgids)
        watch = CpuWatch(self.children.pgids())
        result = run(load, self.workdir, self.children)
        if pairs is not None:
            pairs.consumed(result.sent)
        foreign = watch.foreign_s() / max(result.duration_s, 1e-9)
        cpu_used = tree_cpu_s(pgids) - cpu_before
        calls = redis_calls(self.redis_url)
        calls = {k: n - calls_before.get(k, 0) for k, n in calls.items() if k != "info"}
        self._note_memory(load.name, stored_before, stored_bytes(self.redis_url))
        return result, cpu_used, foreign, calls

    def _note_memory(self, name: str, before: tuple[int, int], after: tuple[int, int]) -> None:
        """Bytes per session for rows that store sessions (at least 1,000 new ones)."""
        added = after[1] - before[1]
        row = self.rows.get(name.split("-r")[0])
        if row is not None and added >= 1000:
            row.bytes_per_session = (after[0] - before[0]) / added

    def measure_twins(self, names: tuple[str, str], loads: tuple[Load, Load]) -> None:
        """Two loads in alternating short rounds (A B, B A, A B, ...), so both twins see the
        same machine state; each row's rate is the median of its rounds' 2xx rates."""
        self.measure_interleaved(names, loads)

    def measure_interleaved(self, names: tuple[str, ...], loads: tuple[Load, ...]) -> None:
        """Loads in alternating short rounds (A B C, C B A, A B C, ...), so all see the same
        machine state; each row's rate is the median of its rounds' 2xx rates, and each row
        after the first also gets the median of its per-round ratios to the first.

        All are warmed up once (``--warmup`` each) before the first round. Disturbed
        rounds (other processes on the CPU) repeat them all, like ``measure``.
        """
        rounds = max(1, self.args.twin_rounds)
        per_round = max(1, round(self.args.duration / rounds))
        attempt = 0
        while True:
            self.wait_quiet("+".join(names))
            if self.args.warmup > 0:
                for load in loads:
                    warm = _replace(
                        load,
                        name=f"{load.name}-warmup",
                        duration_s=self.args.warmup,
                        capture_prefix=(
                            f"{load.capture_prefix}warm." if load.capture_prefix else None
                        ),
                    )
                    self.generator(warm, self.workdir, self.children)
            samples: dict[str, list[tuple[LoadResult, float, float, dict[str, int]]]] = {
                name: [] for name in names
            }
            forward = tuple(range(len(loads)))
            for index in range(rounds):
                order = forward if index % 2 == 0 else forward[::-1]
                for k in order:
                    load = loads[k]
                    one = _replace(
                        load,
                        name=f"{load.name}-r{index + 1}",
                        duration_s=per_round,
                        capture_prefix=(
                            f"{load.capture_prefix}r{index + 1}." if load.capture_prefix else None
                        ),
                    )
                    samples[names[k]].append(self._measure_once(one, warm=False))
            foreign = max(f for runs in samples.values() for _, _, f, _ in runs)
            for name in names:
                rates = ", ".join(f"{r.ok_rps:,.0f}" for r, _, _, _ in samples[name])
                log(f"{name}: rounds {rates} req/s (2xx); other processes <= {foreign:.2f}")
            if foreign <= OTHER_CPU_WARN_CORES or attempt >= self.args.busy_retries:
                break
            attempt += 1
            for name in names:
                self.rows[name].notes.append(
                    f"measured again: other processes used {foreign:.2f} cores"
                )
        letters = "".join(chr(ord("A") + k) for k in range(len(names)))
        order_text = " ".join(
            letters if index % 2 == 0 else letters[::-1] for index in range(rounds)
        )
        legend = ", ".join(f"{letters[k]}={name}" for k, name in enumerate(names))
        for k, name in enumerate(names):
            runs = samples[name]
            row = self.rows[name]
            combined = _combine([r for r, _, _, _ in runs])
            calls: dict[str, int] = {}
            for _, _, _, c in runs:
                for cmd, n in c.items():
                    calls[cmd] = calls.get(cmd, 0) + n
            self._fill(row, combined, sum(c for _, c, _, _ in runs), foreign, {})
            ok = sum(r.ok_rps * r.duration_s for r, _, _, _ in runs)
            row.server_cpu_us = sum(c for _, c, _, _ in runs) / ok * 1e6 if ok else None
            if ok:
                row.redis_cmds = {c: round(n / ok, 2) for c, n in calls.items() if n}
                row.redis_cmds_per_req = sum(calls.values()) / ok
            rates = ", ".join(f"{r.ok_rps:,.0f}" for r, _, _, _ in runs)
            if k > 0:  # the same rounds as ratios: each round beside the first load's
                paired = [
                    b.ok_rps / a.ok_rps
                    for (a, _, _, _), (b, _, _, _) in zip(samples[names[0]], runs, strict=True)
                    if a.ok_rps
                ]
                row.paired_ratio = statistics.median(paired) if paired else None
                row.notes.append(
                    "per-round ratio to "
                    f"{names[0]}: {', '.join(f'{x:.0%}' for x in paired)}"
                    + (f" (median {statistics.median(paired):.0%})" if paired else "")
                )
            partners = ", ".join(other for other in names if other != name)
            row.notes.append(
                f"interleaved with {partners}: {rounds} rounds of {per_round} s "
                f"({legend}: {order_text}) after one {self.args.warmup} s "
                f"warm-up each; rate = median of the rounds ({rates} req/s); p50/p99 = "
                "median of the rounds'"
            )
            self.flag_busy(row)
            expected = EXPECTED_STATUS.get(name, 200)
            others = {
                st: n
                for st, n in combined.statuses.items()
                if 200 <= int(st) < 300 and int(st) != expected
            }
            if others:
                row.notes.append(f"expected status {expected}, also got {others}")

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

    def _server_pgids(self, load: Load) -> list[int]:
        if load.base_url == self.baseline_url:
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

    def _twins_selected(self, name: str) -> bool:
        twin = TWINS.get(name) or next((a for a, b in TWINS.items() if b == name), "")
        return name in self.rows and twin in self.rows

    def _create_body(self) -> str:
        return f'{{"checks":{{"user":{{"userId":"{self.user1}"}}}}}}'

    def _create_load(self, name: str) -> Load:
        return self.load(name, "POST", "/v2/sessions", self._create_body(), capture=True)

    def run_create_user(self) -> None:
        rest = self._create_load("create_user")
        before = relaylag.scrape(self.service_url)
        if self._twins_selected("create_user"):
            self.measure_twins(("create_user", "connect_create"), (rest, self._connect_create()))
        else:
            self.measure("create_user", rest)
        self._note_relay_lag("create_user", before)
        self.collect_captured("create_user")

    def run_cluster_create(self) -> None:
        before = relaylag.scrape(self.service_url)
        self.measure("cluster_create", self._create_load("cluster_create"))
        self._note_relay_lag("cluster_create", before)
        self.collect_captured("cluster_create")

    def _note_relay_lag(self, name: str, before: relaylag.Buckets) -> None:
        lag = relaylag.summary(before, relaylag.scrape(self.service_url))
        self.rows[name].notes.append(f"relay lag (commit to events and indexes): {lag}")
        log(f"{name}: relay lag {lag}")

    def _connect_create(self) -> Load:
        path = "/zitadel.session.v2.SessionService/CreateSession"
        return self.load("connect_create", "POST", path, self._create_body())

    def run_connect_create(self) -> None:
        if not self._twins_selected("connect_create"):  # else measured with create_user
            self.measure("connect_create", self._connect_create())

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
        rest = self.load("get", "GET", "/v2/sessions/{id}", ids=self.pool)
        if self._twins_selected("get"):
            self.measure_twins(("get", "connect_get"), (rest, self._connect_get()))
        else:
            self.measure("get", rest)

    def _connect_get(self) -> Load:
        path = "/zitadel.session.v2.SessionService/GetSession"
        body = '{"sessionId":"{id}"}'
        return self.load("connect_get", "POST", path, body, ids=self.pool)

    def run_connect_get(self) -> None:
        if not self._twins_selected("connect_get"):  # else measured with get
            self.grow_pool(self.args.pool)
            self.measure("connect_get", self._connect_get())

    def run_cluster_get(self) -> None:
        self.grow_pool(self.args.pool)
        self.measure(
            "cluster_get", self.load("cluster_get", "GET", "/v2/sessions/{id}", ids=self.pool)
        )

    def run_set(self, name: str = "set") -> None:
        self.grow_pool(self.args.pool)
        body = f'{{"metadata":{{"k{{n}}":"{METADATA_VALUE_B64}"}}}}'
        self.measure(name, self.load(name, "PATCH", "/v2/sessions/{id}", body, ids=self.pool))

    def run_cluster_set(self) -> None:
        self.run_set("cluster_set")

    def run_growth(self) -> None:
        """get and search at 10k, 100k and 1M stored sessions of 1,000 users, one store."""
        users = run_async(self._growth_users(), 300)
        run_async(self._search_sessions(), 120)  # user 2's 100, searched at every size
        search_body = f'{{"queries":[{{"userIdQuery":{{"id":"{self.user2}"}}}}]}}'
        first_ids: list[str] = []
        for label, size in GROWTH_STAGES:
            self._grow_to(size, users)
            dataset, stored = stored_bytes(self.redis_url)
            where = f"store: {stored:,} sessions, {dataset / 2**20:,.0f} MiB of data"
            baseline = f"grown_redis_{label}"
            get, search = f"grown_get_{label}", f"grown_search_{label}"
            self.rows[get].notes.append(f"{where}; ids drawn from all {len(self.pool):,}")
            self.rows[search].notes.append(where)
            self.measure_interleaved(
                (baseline, get, search),
                (
                    self.load(baseline, "GET", "/redis", base=self.baseline_url),
                    self.load(get, "GET", "/v2/sessions/{id}", ids=self.pool),
                    self.load(search, "POST", "/v2/sessions/search", search_body),
                ),
            )
            # the baseline app talks to the main stack's Redis, not the one counted here
            self.rows[baseline].redis_cmds_per_req = None
            self.rows[baseline].redis_cmds = {}
            if label == "10k":
                first_ids = list(self.pool)
        # the 1M store read over the first stage's ids: a bigger store, the same working set
        same = "grown_get_1m_same_ids"
        self.rows[same].notes.append(f"{len(first_ids):,} ids, those of the 10k row")
        self.measure(same, self.load(same, "GET", "/v2/sessions/{id}", ids=first_ids))

    async def _growth_users(self) -> list[str]:
        async with self.api() as api:
            return await bounded_map(
                GROWTH_USERS,
                lambda i: api.create_user(f"grow{i}-{self.run_tag}", password=None),
                concurrency=32,
            )

    async def _search_sessions(self) -> int:
        async with self.api() as api:
            await api.create_sessions(self.user2, SEARCH_SESSIONS, concurrency=16)
            return len(await api.search_user_sessions(self.user2))

    def _grow_to(self, size: int, users: list[str]) -> None:
        """Create sessions (round robin over ``users``, by wrk) until the store holds ``size``."""
        body = '{"checks":{"user":{"userId":"{id}"}}}'
        rate = 2000.0  # a first guess; then the rate the last round reached
        while (missing := size - stored_bytes(self.redis_url)[1]) > 0:
            seconds = max(2, min(60, math.ceil(missing / rate)))
            load = _replace(
                self.load("growth-seed", "POST", "/v2/sessions", body, ids=users, capture=True),
                duration_s=seconds,
            )
            result = self.generator(load, self.workdir, self.children)
            rate = max(100.0, result.ok_rps)
            self.collect_captured("growth-seed")
            log(f"growth: {len(self.pool):,} sessions ({rate:,.0f}/s)")

    def run_cluster_search(self) -> None:
        self.run_search("cluster_search")

    def run_search(self, name: str = "search") -> None:
        found = run_async(self._search_sessions(), 120)
        row = self.rows[name]
        row.notes.append(f"one search answered {found} sessions (expected {SEARCH_SESSIONS})")
        if found != SEARCH_SESSIONS:
            row.verdict = f"BAD DATA ({found} sessions)"
        body = f'{{"queries":[{{"userIdQuery":{{"id":"{self.user2}"}}}}]}}'
        self.measure(name, self.load(name, "POST", "/v2/sessions/search", body))

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

    # ------------------------------------------------------------------ PingOne facade
    def environment(self) -> str:
        """The PingOne environment id: the instance id the service keeps in Redis."""
        if not self.env_id:
            client = self._redis()
            try:
                raw = client.hget(keys.INSTANCE, "id")
            finally:
                client.close()
            if not raw:
                raise RuntimeError(f"no instance id in Redis ({keys.INSTANCE} id)")
            self.env_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            log(f"PingOne environment (instance id) {self.env_id}")
        return self.env_id

    def _pingone_body(self, token: str) -> str:
        return msgspec.json.encode(pingone_body(self.user1, token, self.pingone_at)).decode()

    def run_pingone_create(self) -> None:
        env = self.environment()
        token = f"bench-{self.pingone_tag}-{{run}}-{{n}}"
        load = self.load(
            "pingone_create",
            "POST",
            f"/v1/environments/{env}/sessions",
            self._pingone_body(token),
        )
        self.measure("pingone_create", load)
        self.rows["pingone_create"].notes.append(
            f"the seed's body (user 1, Firefox 103 on macOS, activeAt {self.pingone_at}); "
            f"token bench-{self.pingone_tag}-<run>-<n>, unique per request"
        )

    def run_idp_intent_start(self) -> None:
        """StartIdentityProviderIntent against a configured OIDC provider on loopback."""
        port = free_port()
        provider = self.children.start(
            "oidc-provider",
            [sys.executable, str(BENCH / "oidc_mock.py"), str(port)],
            self.workdir / "oidc-provider.log",
            cwd=REPO,
        )
        issuer = f"http://127.0.0.1:{port}"
        wait_http_ok(provider, f"{issuer}/.well-known/openid-configuration")
        config = {
            "name": f"bench-{self.run_tag}",
            "issuer": issuer,
            "clientId": "sessiond-bench",
            "clientSecret": "bench-client-secret",
            "scopes": ["openid", "profile"],
        }
        urls = {
            "successUrl": "https://login.example.com/ok",
            "failureUrl": "https://login.example.com/no",
        }

        async def configure() -> str:
            async with self.api() as api:
                idp = await api.call("POST", "/admin/v1/idps/generic_oidc", config)
                await api.call("POST", "/v2/idp_intents", {"idpId": idp["id"], "urls": urls})
                return str(idp["id"])

        idp_id = run_async(configure(), 60)
        body = msgspec.json.encode({"idpId": idp_id, "urls": urls}).decode()
        try:
            self.measure(
                "idp_intent_start", self.load("idp_intent_start", "POST", "/v2/idp_intents", body)
            )
        finally:
            self.children.stop(provider)
        self.rows["idp_intent_start"].notes.append(
            "one generic OIDC provider (oidc-provider-mock, its own process); each request "
            "writes a new intent (id, nonce, sealed PKCE verifier, 10-min TTL) and its event"
        )

    def seed_pingone_sessions(self, count: int) -> list[str]:
        """``count`` PingOne sessions of user 1, each with its own ST token; the tokens."""
        missing = count - len(self.pingone_tokens)
        if missing > 0:
            env = self.environment()
            start = len(self.pingone_tokens)
            tokens = [f"bench-{self.pingone_tag}-seed-{start + i}" for i in range(missing)]
            log(f"seeding {missing:,} PingOne sessions of user 1 (each its own ST token)")

            async def go() -> list[str]:
                async with self.api() as api:

                    async def one(index: int) -> str:
                        body = pingone_body(self.user1, tokens[index], self.pingone_at)
                        return await api.create_pingone_session(env, body)

                    return await bounded_map(missing, one, concurrency=16)

            started = time.monotonic()
            run_async(go(), 60 + missing / 50)
            self.pingone_tokens.extend(tokens)
            log(f"seeded in {time.monotonic() - started:.1f}s")
        return self.pingone_tokens[:count]

    def run_pingone_me(self) -> None:
        env = self.environment()
        tokens = self.seed_pingone_sessions(max(self.args.pool, 1))

        async def probe() -> tuple[str, str]:
            async with self.api() as api:
                return await api.pingone_me(env, tokens[0]), await api.pingone_me(env, tokens[-1])

        first, last = run_async(probe(), 30)
        row = self.rows["pingone_me"]
        if not first or not last or first == last:
            row.verdict = "BAD DATA (ST tokens)"
        load = self.load("pingone_me", "GET", f"/v1/environments/{env}/sessions/me", ids=tokens)
        load = _replace(load, headers={**load.headers, "Cookie": "ST={id}"})
        self.measure("pingone_me", load)
        row.notes.append(
            f"{len(tokens):,} PingOne sessions of user 1, one ST token each, walked like the "
            "get pool; a token read records activity at most once per 60 s per session "
            "(the warm-up takes those writes)"
        )

    # ------------------------------------------------------------------ second factors
    def seed_totp_users(self) -> TotpPairs:
        count = self.args.totp_users
        log(f"seeding {count:,} users with an imported TOTP secret, one session each")
        secrets_b32 = [pyotp.random_base32() for _ in range(count)]

        async def go() -> list[str]:
            async with self.api() as api:

                async def one(index: int) -> str:
                    user = await api.create_factor_user(
                        f"benchtotp{index}-{self.run_tag}", totp_secret=secrets_b32[index]
                    )
                    return await api.create_session(user)

                return await bounded_map(count, one, concurrency=64)

        started = time.monotonic()
        sessions = run_async(go(), 120 + count / 20)
        log(f"seeded in {time.monotonic() - started:.1f}s")
        gap = max(256, 4 * self.args.connections)
        return TotpPairs(list(zip(sessions, secrets_b32, strict=True)), min_gap=gap)

    def run_totp_set(self) -> None:
        pairs = self.seed_totp_users()
        body = '{"checks":{"totp":{"code":"{code}"}}}'
        load = self.load("totp_set", "PATCH", "/v2/sessions/{id}", body, ids=[], consume=True)
        result = self.measure("totp_set", load, pairs=pairs)
        row = self.rows["totp_set"]
        row.notes.append(
            f"{self.args.totp_users:,} users with an imported TOTP secret, one session each; "
            "every request sends a fresh (user, 30-s step) code of the steps the server "
            "accepts during the whole run (current ±1), each user's steps in increasing order"
        )
        if result.wrapped:
            row.notes.append(
                f"the (session, code) pairs ran out: {result.wrapped:,} requests repeated a "
                "used pair (replays, refused); raise --totp-users"
            )

    def run_webauthn_set(self) -> None:
        """One SetSession with a passkey assertion per request; each (session, assertion)
        pair is prepared before the clock starts and used once."""
        rates = [self.rows[n].rps or 0.0 for n in ("totp_set", "set") if n in self.rows]
        count = max(self.args.pool, math.ceil(1.3 * max([1000.0, *rates]) * self.args.duration))
        body = '{"checks":{"webAuthN":{"credentialAssertionData":{code}}}}'
        row = self.rows["webauthn_set"]
        for attempt in (1, 2):
            log(f"seeding {count:,} sessions with a WebAuthn challenge and their assertions")
            started = time.monotonic()
            pairs = run_async(self._webauthn_pairs(count, attempt), 120 + count / 100)
            log(f"seeded in {time.monotonic() - started:.1f}s")
            load = self.load(
                "webauthn_set", "PATCH", "/v2/sessions/{id}", body, ids=pairs, consume=True
            )
            result = self.measure("webauthn_set", load, warm=False)
            if not result.wrapped:
                break
            row.notes.append(
                f"attempt {attempt}: {count:,} pairs ran out, {result.wrapped:,} requests "
                "repeated a used assertion (refused)"
            )
            count = math.ceil(1.5 * (result.requests + result.wrapped))
        else:
            row.verdict = "POOL SHORT"
        row.notes.append(
            f"{WEBAUTHN_USERS} users with one ES256 passkey (counter 0); every request answers "
            "its own session's REQUIRED challenge, prepared outside the timed loop; no warm-up"
        )

    async def _webauthn_pairs(self, count: int, attempt: int) -> list[str]:
        """A second attempt seeds new users: login names are unique in a run's store."""
        async with self.api() as api:
            return await webauthn_seed.seed_pairs(
                api, users=WEBAUTHN_USERS, sessions=count, run_tag=f"{self.run_tag}a{attempt}"
            )

    def seed_otp_users(self) -> list[str]:
        """Sessions (one per user) of users with OTP e-mail ready, made once per run."""
        if self.otp_sessions:
            return self.otp_sessions
        count = self.args.otp_users
        log(f"seeding {count:,} users with OTP e-mail, one session each")

        async def go() -> list[str]:
            async with self.api() as api:

                async def one(index: int) -> str:
                    user = await api.create_factor_user(
                        f"benchotp{index}-{self.run_tag}", otp_email=True
                    )
                    return await api.create_session(user)

                return await bounded_map(count, one, concurrency=64)

        self.otp_sessions = run_async(go(), 120 + count / 20)
        return self.otp_sessions

    def run_otp_email(self) -> None:
        sessions = self.seed_otp_users()
        challenge = '{"challenges":{"otpEmail":{"returnCode":{}}}}'
        load = _replace(
            self.load("otp_email", "PATCH", "/v2/sessions/{id}", challenge, ids=sessions),
            followup_body='{"checks":{"otpEmail":{"code":"{code}"}}}',
            followup_capture=OTP_EMAIL_CODE,
        )
        result = self.measure("otp_email", load, generator=run_python)
        self.rows["otp_email"].notes.append(
            f"driven by the Python generator (bench/pyload.py; wrk cannot chain a request on "
            f"an answer per connection): one iteration = the challenge with returnCode, then "
            f"the check with the code it answered, on one of {len(sessions):,} sessions of as "
            f"many users; {result.requests:,} requests; the rate, CPU and Redis columns are "
            "per iteration, p50/p99 per request"
        )

    # ------------------------------------------------------------------ outbox delivery
    def fill_outbox(self, sessions: list[str], count: int) -> None:
        body: dict[str, Any] = {"challenges": {"otpEmail": {"sendCode": {}}}}

        async def go() -> None:
            async with self.api() as api:

                async def one(index: int) -> bool:
                    await api.call("PATCH", f"/v2/sessions/{sessions[index % len(sessions)]}", body)
                    return True

                await bounded_map(count, one, concurrency=min(64, len(sessions)))

        run_async(go(), 120 + count / 20)
        queued = self._redis().xlen(keys.OUTBOX)
        if queued < count:
            raise RuntimeError(f"outbox holds {queued} jobs after {count} sendCode challenges")

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=10)

    def _await_sink(
        self, child: Child, count: int, timeout_s: float
    ) -> tuple[int, float, float, float]:
        """Poll the sink until ``count`` messages arrived (or ``child`` ended, or timeout).

        Returns (received, first, last, CPU seconds of ``child`` from the first message on).
        """
        deadline = time.monotonic() + timeout_s
        cpu_at_first: float | None = None
        received, first, last = 0, 0.0, 0.0
        while time.monotonic() < deadline:
            received, first, last = sink_count(self.sink_control_port)
            if received and cpu_at_first is None:
                cpu_at_first = tree_cpu_s([child.proc.pid])
            if received >= count or not child.alive:
                break
            time.sleep(0.02)
        cpu = tree_cpu_s([child.proc.pid]) - (cpu_at_first or 0.0)
        return received, first, last, cpu

    def _delivery_round(self, kind: str, count: int) -> dict[str, Any]:
        """One timed send of ``count`` messages to the sink by ``kind`` (raw | worker)."""
        concurrency = self.args.delivery_concurrency
        ask(self.sink_control_port, "RESET")
        out = self.workdir / f"smtp-raw-{time.monotonic_ns()}.json"
        if kind == "raw":
            argv = [
                sys.executable,
                str(BENCH / "smtpsink.py"),
                "send",
                "--port",
                str(self.smtp_port),
                "--count",
                str(count),
                "--concurrency",
                str(concurrency),
                "--out",
                str(out),
            ]
            env = None
        else:
            argv = [sys.executable, "-m", "app", "worker", "--concurrency", str(concurrency)]
            env = dict(self.service_env)
        calls_before = redis_calls(self.redis_url)
        sink_cpu_before = tree_cpu_s([self.sink.proc.pid]) if self.sink else 0.0
        child = self.children.start(
            f"delivery-{kind}", argv, self.workdir / f"delivery-{kind}.log", env=env, cwd=REPO
        )
        watch = CpuWatch(self.children.pgids())
        try:
            received, first, last, cpu = self._await_sink(child, count, 60 + count / 20)
        finally:
            foreign_s = watch.foreign_s()
            self.children.stop(child)
        calls = redis_calls(self.redis_url)
        calls = {k: n - calls_before.get(k, 0) for k, n in calls.items() if k != "info"}
        sink_cpu = (tree_cpu_s([self.sink.proc.pid]) if self.sink else 0.0) - sink_cpu_before
        span = max(last - first, 1e-9)
        errors: dict[str, int] = {}
        if received < count:
            errors["not delivered"] = count - received
        if kind == "raw" and out.exists():
            failed = msgspec.json.decode(out.read_bytes()).get("failed", 0)
            if failed:
                errors["send failed"] = int(failed)
        if kind == "worker":
            client = self._redis()
            try:
                dead, retry = client.xlen(keys.OUTBOX_DEAD), client.zcard(keys.OUTBOX_RETRY)
            finally:
                client.close()
            if dead:
                errors["dead letters"] = int(dead)
            if retry:
                errors["retries waiting"] = int(retry)
            if received < count:
                errors["worker log"] = 0
                log(f"worker log tail: {child.log_tail(1500)}")
        rate = (received - 1) / span if received > 1 else 0.0
        log(
            f"outbox_delivery {kind}: {received}/{count} messages, {rate:,.0f}/s "
            f"(first to last message), errors {errors or 0}"
        )
        return {
            "rate": rate,
            "received": received,
            "span": span,
            "cpu": cpu,
            "sink_cpu": sink_cpu,
            "foreign": foreign_s / span,
            "calls": calls,
            "errors": errors,
        }

    def run_outbox_delivery(self) -> None:
        sessions = self.seed_otp_users()
        count = self.args.outbox_jobs
        runs: dict[str, list[dict[str, Any]]] = {"raw": [], "worker": []}
        rounds = max(1, self.args.outbox_rounds)
        for index in range(rounds):
            self.wait_quiet("outbox_delivery")
            log(f"outbox_delivery round {index + 1}: queueing {count:,} e-mail jobs (sendCode)")
            self.fill_outbox(sessions, count)
            for kind in ("raw", "worker") if index % 2 == 0 else ("worker", "raw"):
                runs[kind].append(self._delivery_round(kind, count))
        concurrency = self.args.delivery_concurrency
        for kind, name in (("raw", "smtp_raw"), ("worker", "outbox_delivery")):
            done = runs[kind]
            row = self.rows[name]
            received = sum(r["received"] for r in done)
            span = sum(r["span"] for r in done)
            errors: dict[str, int] = {}
            for r in done:
                for key, n in r["errors"].items():
                    errors[key] = errors.get(key, 0) + n
            rate = statistics.median(r["rate"] for r in done)
            row.result = LoadResult(
                generator="python -m app worker" if kind == "worker" else "aiosmtplib",
                requests=received,
                duration_s=round(span, 3),
                rps=rate,
                ok_rps=rate,
                p50_ms=0.0,
                p90_ms=0.0,
                p99_ms=0.0,
                mean_ms=0.0,
                max_ms=0.0,
                statuses={"250": received},
                non2xx=0,
                socket_errors={k: n for k, n in errors.items() if n},
                has_latency=False,
            )
            row.compare_http = False
            row.server_cpu_us = sum(r["cpu"] for r in done) / received * 1e6 if received else None
            calls: dict[str, int] = {}
            for r in done:
                for cmd, n in r["calls"].items():
                    calls[cmd] = calls.get(cmd, 0) + n
            if received and kind == "worker":
                row.redis_cmds = {c: round(n / received, 2) for c, n in calls.items() if n}
                row.redis_cmds_per_req = sum(calls.values()) / received
            row.other_cpu_cores = max(r["foreign"] for r in done)
            self.flag_busy(row)
            rates = ", ".join(f"{r['rate']:,.0f}" for r in done)
            sink_us = sum(r["sink_cpu"] for r in done) / received * 1e6 if received else 0.0
            what = (
                f"`python -m app worker --concurrency {concurrency}` on jobs queued by "
                f"SetSession sendCode ({len(sessions):,} sessions)"
                if kind == "worker"
                else f"aiosmtplib.send loop, {concurrency} at a time, one connection per message"
            )
            row.notes.append(
                f"{what}; {rounds} alternating rounds of {count:,} messages, rate = median of "
                f"the rounds ({rates}/s), timed at the sink from the first to the last "
                f"message; CPU column = this sender's CPU per message; the sink (aiosmtpd, "
                f"one process) used {sink_us:,.0f} us per message"
            )

    # ------------------------------------------------------------------ the run
    def run(self) -> report.Report:
        started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        selected = self.args.selected
        wants_service = any(name not in BASELINES for name in selected)
        for name in selected:
            if name == "create_password":
                self.rows["argon2"] = report.Row(name="argon2", title=TITLES["argon2"])
            if name == "outbox_delivery":
                self.rows["smtp_raw"] = report.Row(name="smtp_raw", title=TITLES["smtp_raw"])
            for row in GROWTH_ROWS if name == "growth" else [name]:
                self.rows[row] = report.Row(name=row, title=TITLES[row], target=TARGETS.get(row))
        self.start_redis()
        self.start_baseline()
        if "outbox_delivery" in selected:
            self.start_sink()
        service_ok = False
        if wants_service:
            try:
                self.start_service()
                self.seed_users()
                if CLUSTER_ROWS.intersection(selected):
                    self.start_cluster_service()
                if "growth" in selected:
                    self.start_growth_service()
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
            ("cluster_create", self.run_cluster_create),
            ("connect_create", self.run_connect_create),
            ("create_password", self.run_create_password),
            ("get", self.run_get),
            ("cluster_get", self.run_cluster_get),
            ("connect_get", self.run_connect_get),
            ("set", self.run_set),
            ("cluster_set", self.run_cluster_set),
            ("search", self.run_search),
            ("cluster_search", self.run_cluster_search),
            ("delete", self.run_delete),
            ("pingone_create", self.run_pingone_create),
            ("pingone_me", self.run_pingone_me),
            ("idp_intent_start", self.run_idp_intent_start),
            ("totp_set", self.run_totp_set),
            ("webauthn_set", self.run_webauthn_set),
            ("otp_email", self.run_otp_email),
            ("outbox_delivery", self.run_outbox_delivery),
            (GROWTH_ROWS[0], self.run_growth),  # fills every growth row
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
        stack = "cluster" if name in CLUSTER_ROWS else "growth" if name in GROWTH_ROWS else ""
        with self.on_stack(stack) if stack else contextlib.nullcontext():
            self._step_on(name, step)

    def _step_on(self, name: str, step: Callable[[], None]) -> None:
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
            if self.service is not None and name not in BASELINES:
                health = http_status(f"{self.service_url}/healthz", timeout_s=2.0)
                if health != 200:  # say what the service did, not only that it is gone
                    self.rows[name].notes.append(
                        f"service: alive={self.service.alive}, /healthz -> {health}; log tail: "
                        f"{self.service.log_tail(800)!r}"
                    )
            log(f"!!! {name} failed: {exc}")
            traceback.print_exc()

    def service_log_findings(self, limit: int = 8) -> list[str]:
        findings = self._log_findings(self.service, limit)
        for stack, fields in self.stacks.items():
            findings += self._log_findings(fields["service"], limit, label=f" ({stack})")
        return findings

    def _log_findings(self, service: Child | None, limit: int, label: str = "") -> list[str]:
        if service is None:
            return []
        text = service.log_tail(max_chars=2_000_000)
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
                    "stopping workers",  # a stop nobody here asked for
                )
            )
        ]
        if not flagged:
            return []
        distinct = list(dict.fromkeys(line[:300] for line in flagged))
        head = [f"{len(flagged)} warning/error lines in the service log{label}"]
        return head + distinct[:limit]


def _combine(results: list[LoadResult]) -> LoadResult:
    """Rounds of one load as one result: the median round's rate and latencies, all counts."""
    if len(results) == 1:
        return results[0]
    statuses: dict[str, int] = {}
    socket_errors: dict[str, int] = {}
    for res in results:
        for key, n in res.statuses.items():
            statuses[key] = statuses.get(key, 0) + n
        for key, n in res.socket_errors.items():
            socket_errors[key] = socket_errors.get(key, 0) + n
    requests = sum(r.requests for r in results)
    duration = sum(r.duration_s for r in results)
    return LoadResult(
        generator=results[0].generator,
        requests=requests,
        duration_s=round(duration, 3),
        rps=requests / max(duration, 1e-9),
        ok_rps=statistics.median(r.ok_rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p90_ms=statistics.median(r.p90_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        mean_ms=sum(r.mean_ms * r.requests for r in results) / max(requests, 1),
        max_ms=max(r.max_ms for r in results),
        statuses=dict(sorted(statuses.items())),
        non2xx=sum(r.non2xx for r in results),
        socket_errors=socket_errors,
        wrapped=sum(r.wrapped for r in results),
        captured=sum(r.captured for r in results),
        error_sample=next((r.error_sample for r in results if r.error_sample), ""),
    )


def _interpreter() -> str:
    """This interpreter, relative to the repository when it is the project's venv."""
    exe = Path(sys.executable)
    return str(exe.relative_to(REPO)) if exe.is_relative_to(REPO) else str(exe)


def _iso_ms(moment: datetime) -> str:
    """PingOne's dates: UTC, three fractional digits (``2026-12-02T15:53:15.887Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
