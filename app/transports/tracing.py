"""Optional OpenTelemetry tracing: a span per request and a child span per Redis call.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the standard OpenTelemetry variable; the
SDK reads it and its companions, such as ``OTEL_SERVICE_NAME``, itself), so the usual path
pays one check of a module flag per request and nothing per Redis call. Spans carry the
route template, method and status, and the Redis command's name, never a path's ids, a
body or a token.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_tracer: Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def configure(exporter: SpanExporter | None = None) -> bool:
    """Start tracing if an OTLP endpoint is configured (or ``exporter`` is given, in tests).

    Returns whether tracing is on. Late imports: without an endpoint the SDK never loads.
    """
    global _tracer
    if exporter is None and not os.environ.get(ENDPOINT_ENV):  # noqa: TID251 - OTel's own
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sessiond"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("sessiond")
    return True


def stop() -> None:
    """Tracing off again (tests); spans already ended were exported."""
    global _tracer
    _tracer = None


@contextlib.contextmanager
def request_span(method: str, route: str) -> Iterator[object]:
    """The server span of one request; the status is set by ``end_request``."""
    from opentelemetry.trace import SpanKind

    assert _tracer is not None  # noqa: S101 - callers check enabled() first
    with _tracer.start_as_current_span(
        f"{method} {route}",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route},
    ) as span:
        yield span


def end_request(span: object, status: int) -> None:
    from opentelemetry.trace import Span, Status, StatusCode

    if isinstance(span, Span):
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))


@contextlib.contextmanager
def redis_span(command: str) -> Iterator[None]:
    """A client span around one Redis command or pipelined batch (the storage's hook)."""
    from opentelemetry.trace import SpanKind

    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(
        f"redis {command}",
        kind=SpanKind.CLIENT,
        attributes={"db.system": "redis", "db.operation.name": command},
    ):
        yield
