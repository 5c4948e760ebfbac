"""Optional tracing: off by default; on, a server span per request with Redis spans inside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from app.transports import tracing
from tests.support import Api


@pytest.fixture(name="spans")
def _spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(exporter)
    yield exporter
    tracing.stop()


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    assert tracing.configure() is False
    assert tracing.enabled() is False


async def test_a_request_span_holds_its_redis_spans(
    spans: InMemorySpanExporter, client: TestClient[web.Request, web.Application], api: Api
):
    spans.clear()  # the start-up's own Redis calls
    created = await api.create({"metadata": {"k": "dg=="}})
    assert created.status == 201
    assert (await api.get("no-such-session")).status == 404
    finished = spans.get_finished_spans()
    servers = [s for s in finished if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["POST /v2/sessions", "GET /v2/sessions/{sessionId}"]
    create = servers[0]
    assert create.attributes is not None
    assert create.attributes["http.response.status_code"] == 201
    assert create.attributes["http.route"] == "/v2/sessions"
    inside = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT
        and s.parent is not None
        and s.parent.span_id == create.context.span_id
    ]
    assert {s.name for s in inside} & {"redis EVALSHA", "redis EVAL"}  # the create script
    for span in finished:  # no ids of sessions, no bodies, no tokens in any span
        assert created.body["sessionId"] not in span.name
        assert created.body["sessionToken"] not in str(dict(span.attributes or {}))
