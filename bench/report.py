"""Results of one run: rows, verdicts, the printed table, and the JSON/Markdown files."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import msgspec
from procs import tool_version
from scenarios import LoadResult


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """``ratio`` of this row's 2xx rate to the ``base`` row's rate (same run) must be met.

    ``host_relative``: both rows were measured minutes apart, each interleaved with a baseline
    of its own; their shares of those baselines are compared, so the host's drift cancels.
    """

    base: str
    ratio: float
    host_relative: bool = False

    def describe(self) -> str:
        relative = " (each as a share of its own baseline)" if self.host_relative else ""
        return f">= {self.ratio:.0%} of {self.base}{relative}"


class Row(msgspec.Struct, kw_only=True):
    name: str
    title: str
    result: LoadResult | None = None
    #: For rows measured without HTTP (the raw argon2id rate): requests per second.
    plain_rps: float | None = None
    target: Target | None = None
    ratio_redis: float | None = None
    ratio_bare: float | None = None
    ratio_target: float | None = None
    #: A twin measured in alternating rounds with its target's base: the median of the
    #: per-round ratios, which is what it is judged by (both saw the same moments).
    paired_ratio: float | None = None
    target_text: str = ""
    verdict: str = ""
    #: Service (or baseline server) CPU time per 2xx response, microseconds.
    server_cpu_us: float | None = None
    #: Redis commands per 2xx response (all clients of the run's Redis), and by command.
    redis_cmds_per_req: float | None = None
    redis_cmds: dict[str, float] = msgspec.field(default_factory=dict)
    #: Redis memory (``used_memory_dataset``) added per session the measurement stored.
    bytes_per_session: float | None = None
    #: CPU used by processes outside the benchmark during the measurement, in cores.
    other_cpu_cores: float | None = None
    #: False for rows that are not HTTP requests (messages sent): no ratio to the HTTP
    #: baselines is printed for them.
    compare_http: bool = True
    notes: list[str] = msgspec.field(default_factory=list)

    @property
    def rps(self) -> float | None:
        if self.result is not None:
            return self.result.ok_rps
        return self.plain_rps


class Report(msgspec.Struct, kw_only=True):
    started_at: str
    command: str
    machine: dict[str, str]
    settings: dict[str, str]
    rows: list[Row]
    notes: list[str] = msgspec.field(default_factory=list)
    service_log_findings: list[str] = msgspec.field(default_factory=list)


def judge(rows: list[Row]) -> None:
    """Fill ratios and verdicts. A row with any non-2xx or socket error never passes."""
    by_name = {row.name: row for row in rows}
    redis_rps = _rps(by_name.get("redis"))
    bare_rps = _rps(by_name.get("bare"))
    pipelined_rps = _rps(by_name.get("redis_pipelined"))
    for row in rows:
        rps = row.rps
        if rps is None:
            row.verdict = row.verdict or "NOT RUN"
            continue
        if row.target is not None and row.target.base == "redis" and pipelined_rps:
            # the service's own client is auto-pipelined: say how it fares against that too
            row.notes.append(f"{rps / pipelined_rps:.0%} of the pipelined one-round-trip baseline")
        http = row.result is not None and row.compare_http
        if http and redis_rps:
            row.ratio_redis = rps / redis_rps
        if http and bare_rps:
            row.ratio_bare = rps / bare_rps
        if row.target is None:
            row.verdict = row.verdict or ("ERRORS" if _errors(row) else "-")
            continue
        base = by_name.get(row.target.base)
        base_rps = _rps(base)
        row.target_text = row.target.describe()
        if not base_rps:
            row.verdict = "NO BASE"
            continue
        if row.target.host_relative:
            if row.paired_ratio is None or base is None or not base.paired_ratio:
                row.verdict = "NO BASE"
                continue
            row.ratio_target = row.paired_ratio / base.paired_ratio
        else:
            row.ratio_target = row.paired_ratio if row.paired_ratio is not None else rps / base_rps
        reasons = []
        if row.ratio_target < row.target.ratio:
            reasons.append("rate")
        if _errors(row):
            reasons.append(f"{_errors(row)} errors")
        row.verdict = "PASS" if not reasons else "FAIL (" + ", ".join(reasons) + ")"


def _rps(row: Row | None) -> float | None:
    return row.rps if row is not None else None


def _errors(row: Row) -> int:
    return row.result.errors if row.result is not None else 0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cells(row: Row) -> list[str]:
    res = row.result
    errors = "-" if res is None else str(res.errors)
    ratio = "-" if row.ratio_target is None else f"{row.ratio_target:.0%}"
    timed = res if res is not None and res.has_latency else None
    return [
        row.title,
        _fmt(row.rps, ",.0f"),
        _fmt(timed.p50_ms if timed else None, ".2f"),
        _fmt(timed.p99_ms if timed else None, ".2f"),
        _fmt(row.ratio_redis, ".0%"),
        _fmt(row.ratio_bare, ".0%"),
        errors,
        _fmt(row.server_cpu_us, ",.0f"),
        _fmt(row.redis_cmds_per_req, ".1f"),
        _fmt(row.bytes_per_session, ",.0f"),
        row.target_text or "-",
        ratio,
        row.verdict,
    ]


HEADERS = [
    "scenario",
    "req/s (2xx)",
    "p50 ms",
    "p99 ms",
    "vs redis",
    "vs bare",
    "errors",
    "srv CPU us/req",
    "redis cmds/req",
    "B/session",
    "target",
    "achieved",
    "verdict",
]


def text_table(rows: list[Row]) -> str:
    cells = [HEADERS] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADERS))]
    lines = []
    for index, line in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 10, 12) else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if i in (0, 10, 12) else "---:" for i in range(len(HEADERS))) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def warnings_text(report: Report) -> str:
    """Loud lines for every row with errors, pool reuse or other notes."""
    out = []
    for row in report.rows:
        res = row.result
        if res is not None and res.errors:
            out.append(
                f"!!! {row.title}: {res.non2xx} non-2xx responses "
                f"{res.statuses}, socket errors {res.socket_errors}; "
                f"sample body: {res.error_sample[:300]!r}"
            )
        out.extend(f"note: {row.title}: {note}" for note in dict.fromkeys(row.notes))
    out.extend(f"note: {note}" for note in report.notes)
    out.extend(f"service log: {line}" for line in report.service_log_findings)
    return "\n".join(out)


def markdown(report: Report) -> str:
    machine = "\n".join(f"- {k}: {v}" for k, v in report.machine.items())
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items())
    warn = warnings_text(report)
    return (
        f"Run {report.started_at}: `{report.command}`\n\n{machine}\n\nSettings: {settings}\n\n"
        f"{markdown_table(report.rows)}\n" + (f"\n```\n{warn}\n```\n" if warn else "")
    )


def write_files(report: Report, results_dir: Path) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = report.started_at.replace(":", "").replace("-", "")
    json_path = results_dir / f"bench-{stamp}.json"
    md_path = results_dir / f"bench-{stamp}.md"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    md_path.write_text(markdown(report), encoding="utf-8")
    (results_dir / "latest.json").write_bytes(json_path.read_bytes())
    (results_dir / "latest.md").write_text(md_path.read_text(encoding="utf-8"), encoding="utf-8")
    return json_path, md_path


def machine_facts(repo: Path) -> dict[str, str]:
    facts = {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "redis-server": tool_version(["redis-server", "--version"]),
        "wrk": tool_version(["wrk", "--version"]),
        "loadavg at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    for package in ("aiohttp", "msgspec", "redis", "hiredis", "uvloop", "argon2-cffi"):
        try:
            facts[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            facts[package] = "not installed"
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        facts["git HEAD"] = head.stdout.decode().strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        facts["git HEAD"] = "unknown"
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
