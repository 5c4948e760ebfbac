"""Prometheus metrics (prometheus-client) and ``GET /metrics``.

With several worker processes the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before it spawns them (``app.process.workers``): each worker then writes its
samples to files there and a scrape, whichever worker answers it, sums them all. With one
worker the samples live in memory. Labelled children are looked up once and kept, so a
request pays for two increments, not for prometheus-client's label lookup.

``SESSIOND_METRICS_TOKEN`` set: a scrape needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from actors.errors import ServiceError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = structlog.get_logger("sessiond.metrics")
METRICS_TOKEN: web.AppKey[str] = web.AppKey("METRICS_TOKEN")
#: Asked at each scrape: the delivery outbox's depth (jobs not delivered yet).
OUTBOX_PROBE: web.AppKey[Callable[[], Awaitable[int]]] = web.AppKey("OUTBOX_PROBE")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_REDIS_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)

REQUESTS = Counter(
    "sessiond_http_requests", "HTTP requests answered", ["route", "method", "status"]
)
LATENCY = Histogram(
    "sessiond_http_request_duration_seconds",
    "Time from the request's arrival to its answer",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
REJECTIONS = Counter("sessiond_rejections", "Requests refused, by reason", ["reason"])
LIVE_ACTORS = Gauge(
    "sessiond_live_actors", "Session actors alive in the workers", multiprocess_mode="livesum"
)
LEASE_WAITS = Counter(
    "sessiond_lease_waits",
    "Times a session actor found the session's lease held by another writer and waited",
)
OUTBOX_DEPTH = Gauge(
    "sessiond_outbox_depth",
    "Messages (OTP, verification, reset codes) queued and not delivered yet",
    multiprocess_mode="mostrecent",
)
REDIS_LATENCY = Histogram(
    "sessiond_redis_command_duration_seconds",
    "One Redis command or script call, from send to reply (auto-pipelined)",
    ["command"],
    buckets=_REDIS_BUCKETS,
)
RELAY_LAG = Histogram(
    "sessiond_relay_lag_seconds",
    "From a session commit to its events and index changes applied, by who applied them "
    "(writer: right after the commit; repair: after the writer died or its relay failed)",
    ["path"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
)

#: Error ids whose reason is more specific than their gRPC code.
_REASON_BY_ID = {
    "SESSION-lease": "lease",
    "SESSION-mailbox": "mailbox",
    "COMMAND-rateLimit": "rate_limit",
    "SESSION-closing": "shutting_down",
}
_REASON_BY_CODE = {
    3: "validation",
    4: "timeout",
    5: "not_found",
    6: "conflict",
    7: "permission",
    8: "resource_exhausted",
    9: "precondition",
    10: "conflict",
    12: "unimplemented",
    13: "internal",
    14: "unavailable",
    16: "unauthenticated",
}
_LOCKED_KEYS = ("Locked", "locked")


def rejection_reason(exc: ServiceError) -> str:
    """A small, fixed vocabulary (label values must not grow without bound)."""
    if exc.error_id in _REASON_BY_ID:
        return _REASON_BY_ID[exc.error_id]
    if exc.error_id.startswith("STORAGE-"):
        return "storage"
    if any(word in exc.key for word in _LOCKED_KEYS):
        return "lockout"
    return _REASON_BY_CODE.get(exc.code, "other")


class _Children:
    """Labelled children, created once per label set."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}
        self._rejections: dict[str, Any] = {}
        self._redis: dict[str, Any] = {}
        self._relay: dict[str, Any] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = REQUESTS.labels(route, method, str(status))
        counter.inc()
        latency = self._latency.get(key[:2])
        if latency is None:
            latency = self._latency[key[:2]] = LATENCY.labels(route, method)
        latency.observe(seconds)

    def rejection(self, exc: ServiceError) -> None:
        reason = rejection_reason(exc)
        counter = self._rejections.get(reason)
        if counter is None:
            counter = self._rejections[reason] = REJECTIONS.labels(reason)
        counter.inc()

    def redis(self, command: str, seconds: float) -> None:
        histogram = self._redis.get(command)
        if histogram is None:
            histogram = self._redis[command] = REDIS_LATENCY.labels(command)
        histogram.observe(seconds)

    def relay(self, path: str, seconds: float) -> None:
        histogram = self._relay.get(path)
        if histogram is None:
            histogram = self._relay[path] = RELAY_LAG.labels(path)
        histogram.observe(seconds)


#: The process's one set of children (the metrics themselves are process-wide too).
RECORD = _Children()


def exposition() -> bytes:
    """Every worker's samples when they share a directory, else this process's."""
    # prometheus-client's switch (set by the supervisor), not a sessiond setting
    if os.environ.get(MULTIPROC_ENV):  # noqa: TID251
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics(request: web.Request) -> web.Response:
    token = request.app.get(METRICS_TOKEN, "")
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            return web.Response(status=401, text="a bearer token is required\n")
    probe = request.app.get(OUTBOX_PROBE)
    if probe is not None:
        try:
            OUTBOX_DEPTH.set(await probe())
        except Exception:
            log.warning("outbox depth unavailable for this scrape")
    response = web.Response(body=exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup_metrics_route(app: web.Application, *, token: str = "") -> None:
    app[METRICS_TOKEN] = token
    app.router.add_get("/metrics", metrics)
