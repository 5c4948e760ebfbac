"""What one load run sends, and what it measured: shared by the wrk and Python generators.

A ``Load`` is a fixed request shape. ``path``, ``body`` and the header values are templates
in which ``{id}`` stands for the next id of the id file, ``{code}`` for the second column of
that line (ids files may hold ``<id> <code>`` lines: a session and a one-use code for it),
``{n}`` for a number unique within the run and ``{run}`` for a random hex string drawn once
per run (so ``{run}-{n}`` is unique across the warm-up, the measurement and any repeat).
Ids are split into one contiguous slice per load-generator thread, walked in order, so
concurrent requests of one run touch different ids; with ``consume`` every id is used at
most once and each request past the end of a slice is counted in ``wrapped``.

A load with ``followup_body`` is a two-request iteration (Python generator only): the first
request, then the same method and path with ``followup_body``, whose ``{code}`` is what the
regex ``followup_capture`` found in the first response. ``ok_rps`` then counts iterations
whose two answers were both 2xx.
"""

from __future__ import annotations

import re
import secrets

import msgspec

_TOKEN = re.compile(r"\{(id|code|n|run)\}")


class Load(msgspec.Struct, frozen=True, kw_only=True):
    """One load run: the request template and how hard and how long to send it."""

    name: str
    base_url: str
    method: str
    path: str
    body: str | None = None
    #: Values are templates too (``{"Cookie": "ST={id}"}``); names are literal.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    #: File with one id a line; required when ``path``, ``body`` or a header uses ``{id}``.
    ids_file: str | None = None
    #: Each id at most once (DELETE); reuses past the end are counted, never hidden.
    consume: bool = False
    #: Write every ``sessionId`` of a 2xx response body to ``<capture_prefix><thread>``.
    capture_prefix: str | None = None
    #: Second request of a two-request iteration (see the module docstring).
    followup_body: str | None = None
    #: Regex with one group: the ``{code}`` of ``followup_body``, from the first response.
    followup_capture: str = ""
    connections: int = 64
    threads: int = 1
    duration_s: int = 10
    timeout_s: int = 30


class LoadResult(msgspec.Struct, kw_only=True):
    """What a load generator measured. Latencies in milliseconds."""

    generator: str
    requests: int
    duration_s: float
    rps: float
    ok_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    statuses: dict[str, int]
    non2xx: int
    socket_errors: dict[str, int]
    wrapped: int = 0
    captured: int = 0
    error_sample: str = ""
    #: Requests generated per load-generator thread (wrk: ``request()`` calls), so a caller
    #: knows how much of each slice of a consumed id file was used.
    sent: list[int] = msgspec.field(default_factory=list)
    #: Two-request iterations whose answers were both 2xx (``followup_body`` loads).
    iterations: int = 0
    #: False for rows measured without per-request latencies (the outbox delivery rate).
    has_latency: bool = True

    @property
    def errors(self) -> int:
        return self.non2xx + sum(self.socket_errors.values())


def template_parts(template: str) -> list[tuple[str, str]]:
    """``"/v2/sessions/{id}"`` → ``[("lit", "/v2/sessions/"), ("id", "")]``."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        if match.start() > pos:
            parts.append(("lit", template[pos : match.start()]))
        parts.append((match.group(1), ""))
        pos = match.end()
    if pos < len(template):
        parts.append(("lit", template[pos:]))
    return parts


def uses_ids(load: Load) -> bool:
    return any(
        kind in ("id", "code")
        for text in (load.path, load.body or "", *load.headers.values())
        for kind, _ in template_parts(text)
    )


def templated_headers(load: Load) -> bool:
    """Whether any header value has a ``{...}`` token (else the headers are sent as given)."""
    return any(kind != "lit" for v in load.headers.values() for kind, _ in template_parts(v))


def run_token() -> str:
    """The ``{run}`` of one load run: 6 random hex digits."""
    return secrets.token_hex(3)


def render(template: str, ident: str, number: int, code: str = "", run: str = "") -> str:
    values = {"id": ident, "code": code, "n": str(number), "run": run}
    return "".join(
        text if kind == "lit" else values[kind] for kind, text in template_parts(template)
    )


def split_entry(line: str) -> tuple[str, str]:
    """An ids-file line: ``"<id>"`` or ``"<id> <code>"`` → (id, code)."""
    ident, _, code = line.partition(" ")
    return ident, code.strip()


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def read_ids(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]
