"""The delivery pipeline: outbox stream → worker → SMTP / signed webhook / dev files.

Everything is real: the suite's Redis, an aiosmtpd server in this process, an aiohttp
webhook receiver, and ``python -m app worker`` / ``outbox`` processes where a crash, the
command line or the dev setup is what is tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web

import storage.outbox
from actors.delivery import OUTBOX_PURPOSE, DeliveryJob, Message
from app.delivery.channels import DeliveryFailedError, configured_channels
from app.delivery.files import FileSink
from app.delivery.sms import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel, sign, verify
from app.delivery.smtp import SmtpChannel
from app.delivery.wiring import run_delivery
from app.delivery.worker import DeliveryWorker, WorkerConfig, backoff_ms
from app.process.delivery_cli import worker_command
from app.process.settings import Settings
from app.services.sealing import Keyring, new_master_key
from storage import keys
from storage.outbox import (
    GROUP,
    JOB_FIELDS,
    RedisOutbox,
    job_args,
    job_fields,
    job_from_fields,
    open_outbox,
)
from tests.processes import free_port
from tests.smtp_sink import SmtpSink, code_in, smtp_sink
from tests.support import MASTER_KEY, Api

KEYRING = Keyring.from_text(MASTER_KEY)
RECIPIENT = "alice@example.com"
PARTITIONS = 16


def make_job(
    code: str,
    *,
    channel: str = "email",
    template: str = "otp_email",
    user_id: str = "user-1",
    session_id: str = "",
    sent_event: str = "session.otp.email.sent",
    url: str = "",
    recipient: str = RECIPIENT,
    job_id: str = "",
) -> DeliveryJob:
    message = Message(recipient=recipient, code=code, url=url)
    return DeliveryJob(
        id=job_id or f"job-{secrets.token_hex(6)}",
        channel=channel,  # type: ignore[arg-type]
        template=template,
        user_id=user_id,
        created_ms=int(time.time() * 1000),
        sealed=KEYRING.seal(OUTBOX_PURPOSE, msgspec.json.encode(message)),
        session_id=session_id,
        sent_event=sent_event,
    )


@pytest.fixture
async def outbox(redis: aioredis.Redis, redis_url: str):
    box = open_outbox(redis_url, partitions=PARTITIONS, event_maxlen=1000)
    await box.ensure_group()
    yield box
    await box.close()


def smtp_channel(sink: SmtpSink) -> SmtpChannel:
    return SmtpChannel(
        host="127.0.0.1", port=sink.port, sender="login@example.com", tls="none", timeout_s=5
    )


def worker(outbox: RedisOutbox, channels: dict[str, Any], **config: Any) -> DeliveryWorker:
    options: dict[str, Any] = {"consumer": "test", "block_ms": 10, "backoff_ms": 20, **config}
    return DeliveryWorker(outbox, KEYRING, channels, WorkerConfig(**options))


async def run_until(delivery: DeliveryWorker, done: Any, timeout_s: float = 10) -> None:
    """Rounds of ``delivery`` until ``await done()`` is true."""
    deadline = time.monotonic() + timeout_s
    while not await done():
        assert time.monotonic() < deadline, "the worker did not get there in time"
        await delivery.round()


async def entries(redis: aioredis.Redis, stream: str) -> list[dict[str, str]]:
    raw: Any = await redis.xrange(stream)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]


async def outbox_empty(redis: aioredis.Redis) -> bool:
    pending = await redis.xpending(keys.OUTBOX, GROUP)
    return await redis.xlen(keys.OUTBOX) == 0 and pending["pending"] == 0


# -- the job format -----------------------------------------------------------------------------


def test_job_fields_are_every_job_field_in_declaration_order_as_text():
    job = make_job("111111", session_id="s-1")
    flat = job_fields(job)
    assert flat[::2] == list(JOB_FIELDS) == list(DeliveryJob.__struct_fields__)
    assert all(isinstance(value, str) for value in flat)
    assert job_from_fields(dict(zip(flat[::2], flat[1::2], strict=True))) == job
    encoded = {k.encode(): v.encode() for k, v in zip(flat[::2], flat[1::2], strict=True)}
    assert job_from_fields(encoded) == job


def test_job_args_count_the_jobs_and_the_pairs_of_each_for_the_scripts():
    first, second = make_job("1"), make_job("2", session_id="s")
    assert job_args([]) == [0]
    assert job_args([first, second]) == [2, 8, *job_fields(first), 8, *job_fields(second)]


def test_channels_are_configured_by_settings_or_by_dev_mode():
    assert configured_channels(Settings(), dev_mode=False) == set()
    assert configured_channels(Settings(), dev_mode=True) == {"email", "sms"}
    assert configured_channels(Settings(smtp_host="mx"), dev_mode=False) == {"email"}
    webhook = Settings(sms_webhook_url="https://sms.example", sms_webhook_secret="s")
    assert configured_channels(webhook, dev_mode=False) == {"sms"}


def test_backoff_doubles_per_attempt_with_jitter_and_a_cap():
    for attempts, full in [(1, 100), (2, 200), (3, 400), (10, 1000)]:
        waits = {backoff_ms(attempts, 100, 1000) for _ in range(50)}
        assert all(full // 2 <= wait <= full for wait in waits)
        assert len(waits) > 1


# -- delivery in this process -------------------------------------------------------------------


async def test_email_reaches_the_smtp_server_with_the_code_and_the_job_is_acknowledged(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    job = make_job("482913", url="https://login.example/otp?code=482913")
    with smtp_sink() as sink:
        await outbox.enqueue(job)
        await run_until(worker(outbox, {"email": smtp_channel(sink)}), lambda: outbox_empty(redis))
    (mail,) = sink.messages
    assert code_in(mail) == "482913"
    body = mail.get_body(("plain",))
    assert body is not None
    assert "https://login.example/otp?code=482913" in body.get_content()
    assert mail["From"] == "login@example.com"
    assert mail["To"] == RECIPIENT
    assert mail["Subject"] == "Your one-time login code"
    assert mail["X-Idempotency-Key"] == job.id
    assert mail["Message-ID"] == f"<{job.id}@sessiond>"
    assert await redis.exists(keys.outbox_sent(job.id))
    assert not await redis.exists(keys.OUTBOX_ATTEMPTS, keys.OUTBOX_RETRY)


async def test_the_sent_event_is_published_and_the_session_sequence_is_untouched(
    api: Api, outbox: RedisOutbox, redis: aioredis.Redis
):
    user_id = await api.human()
    created = (await api.session_for(user_id)).body
    session_id = created["sessionId"]
    seq_before = await redis.hget(keys.session(session_id), "seq")
    stream = keys.event_stream(keys.event_partition(session_id, PARTITIONS))
    session_job = make_job("700001", session_id=session_id, user_id=user_id)
    user_job = make_job(
        "700002", template="email_code", user_id=user_id, sent_event="user.human.email.code.sent"
    )
    with smtp_sink() as sink:
        await outbox.enqueue(session_job)
        await outbox.enqueue(user_job)
        await run_until(worker(outbox, {"email": smtp_channel(sink)}), lambda: outbox_empty(redis))
    sent = await entries(redis, stream)
    (event,) = [e for e in sent if e["type"] == "session.otp.email.sent"]
    assert event["aggregateType"] == "session"
    assert event["aggregateId"] == session_id
    assert event["payload"] == "{}"
    assert "sequence" not in event
    user_stream = keys.event_stream(keys.event_partition(user_id, PARTITIONS))
    user_events = [
        e for e in await entries(redis, user_stream) if e["type"] == "user.human.email.code.sent"
    ]
    assert len(user_events) == 1
    assert user_events[0]["aggregateType"] == "user"
    assert user_events[0]["aggregateId"] == user_id
    assert await redis.hget(keys.session(session_id), "seq") == seq_before
    # the session's actor is not fenced out by the event: it still commits
    changed = await api.set(session_id, {"metadata": {"k": "dg=="}})
    assert changed.status == 200, changed.body


async def test_the_sms_webhook_gets_a_signed_request_a_wrong_secret_does_not_verify(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    received: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/sms", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    channel = WebhookChannel(f"http://127.0.0.1:{port}/sms", "the-webhook-secret", timeout_s=5)
    job = make_job("555123", channel="sms", template="otp_sms", recipient="+41790000000")
    try:
        await outbox.enqueue(job)
        await run_until(worker(outbox, {"sms": channel}), lambda: outbox_empty(redis))
    finally:
        await channel.close()
        await runner.cleanup()
    ((headers, body),) = received
    assert json.loads(body) == {
        "to": "+41790000000",
        "text": "Your login code is 555123",
        "idempotencyKey": job.id,
        "template": "otp_sms",
    }
    assert headers["Idempotency-Key"] == job.id
    timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert signature == sign("the-webhook-secret", timestamp, body)
    assert verify("the-webhook-secret", timestamp, body, signature, time.time())
    assert not verify("another-secret", timestamp, body, signature, time.time())
    assert not verify("the-webhook-secret", timestamp, body + b" ", signature, time.time())
    # the timestamp is signed: the same request an hour later is refused
    assert not verify("the-webhook-secret", timestamp, body, signature, time.time() + 3600)


async def test_a_job_sent_before_its_worker_died_is_acknowledged_and_not_sent_again(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    """A worker died holding an entry of a job that was recorded as sent (it was queued twice,
    by a replayed script, and the other entry went out): the take-over only acknowledges it,
    and neither it nor a later requeue publishes the sent event again."""
    job = make_job("310310")
    await outbox.enqueue(job)
    await outbox.enqueue(job)
    first, second = await outbox.read("crashed-worker", 2, 10)
    assert await outbox.delivered(second, int(time.time() * 1000), job)  # sent, then died
    (held,) = (await outbox.pending_summary()).pending
    assert (held.job_id, held.consumer, held.retry_at_ms) == (job.id, "crashed-worker", None)
    assert held.entry_id == first.entry_id
    with smtp_sink() as sink:
        delivery = worker(outbox, {"email": smtp_channel(sink)}, claim_idle_ms=50)
        await asyncio.sleep(0.1)
        await run_until(delivery, lambda: outbox_empty(redis))
        assert sink.messages == []
        # the same job queued again (a replayed script, a requeue) is not sent either
        await outbox.enqueue(job)
        await run_until(delivery, lambda: outbox_empty(redis))
        assert sink.messages == []
    assert len(await sent_events(redis)) == 1  # published by the one send only


async def test_two_entries_of_one_job_both_sent_record_it_and_publish_its_event_once(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    """Two workers sent the same job (both read it before either recorded it): the second
    acknowledgement finds the marker set and publishes nothing."""
    job = make_job("515151")
    await outbox.enqueue(job)
    await outbox.enqueue(job)
    first, second = await outbox.read("a", 2, 10)
    now = int(time.time() * 1000)
    assert await outbox.delivered(first, now, job) is True
    assert await outbox.delivered(second, now, job) is False
    assert await outbox_empty(redis)
    assert await redis.exists(keys.outbox_sent(job.id))
    assert len(await sent_events(redis)) == 1
    # an entry acknowledged as sent before (``sent=False``) publishes nothing either
    await outbox.enqueue(job)
    (third,) = await outbox.read("a", 1, 10)
    assert await outbox.delivered(third, now, job, sent=False) is False
    assert await outbox_empty(redis)
    assert len(await sent_events(redis)) == 1


async def test_a_failing_server_is_retried_with_backoff_then_the_job_is_dead_lettered(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    job = make_job("909090")
    with smtp_sink() as sink:
        sink.refuse = 550
        await outbox.enqueue(job)
        delivery = worker(outbox, {"email": smtp_channel(sink)}, max_attempts=3, backoff_ms=100)
        await run_until(delivery, lambda: outbox_empty(redis))
    assert len(sink.attempts) == 3
    first_wait, second_wait = (
        b - a for a, b in zip(sink.attempts, sink.attempts[1:], strict=False)
    )
    assert first_wait >= 0.05  # 100 ms, jittered down to 50 at most
    assert second_wait >= 0.1  # doubled
    (dead,) = await outbox.dead_jobs()
    assert (dead.job_id, dead.template, dead.attempts) == (job.id, "otp_email", 3)
    assert dead.reason == "smtp 550"  # not the server's text: it echoes the recipient
    (raw,) = await entries(redis, keys.OUTBOX_DEAD)
    assert raw["sealed"] == job.sealed
    assert not await redis.exists(keys.outbox_sent(job.id), keys.OUTBOX_ATTEMPTS)


async def test_jobs_that_cannot_be_opened_or_parsed_are_dead_lettered_at_once(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    foreign = Keyring.from_text(new_master_key())
    alien = msgspec.structs.replace(
        make_job("1"), id="alien", sealed=foreign.seal(OUTBOX_PURPOSE, b"{}")
    )
    await outbox.enqueue(alien)
    await redis.xadd(keys.OUTBOX, {"id": "broken"})
    sink = FileSink("/nonexistent")  # never reached
    await run_until(worker(outbox, {"email": sink}), lambda: outbox_empty(redis))
    reasons = sorted(d.reason for d in await outbox.dead_jobs())
    assert reasons == ["not a delivery job", "sealed message does not open"]


async def test_the_dev_sink_shows_only_complete_files_and_a_redelivery_keeps_the_first(
    tmp_path: Path,
):
    sink = FileSink(str(tmp_path))
    job = make_job("1")
    seen: list[str] = []
    done = False

    def watch() -> None:
        while not done:
            for path in list(sink.directory.glob("*")):
                seen.append(path.read_text())

    watcher = asyncio.create_task(asyncio.to_thread(watch))
    messages = [Message(recipient=RECIPIENT, code=f"{n:06d}" * 200) for n in range(8)]
    await asyncio.gather(*(sink.send(job, m) for m in messages))
    done = True
    await watcher
    (written,) = sink.directory.iterdir()
    content = written.read_text()
    assert any(m.code in content for m in messages)
    assert all(text == content for text in seen)
    assert not list(sink.staging.iterdir())
    await sink.send(job, Message(recipient=RECIPIENT, code="999999"))
    assert written.read_text() == content


class FakeChannel:
    """Records sends (by job id), at most how many ran at once; fails the recipients in
    ``failing`` (each once, or always), takes ``delay_s`` per send."""

    def __init__(self, *, delay_s: float = 0.0, failing: set[str] | None = None) -> None:
        self.sent: list[str] = []
        self.tried: list[str] = []
        self.delay_s = delay_s
        self.failing = failing or set()
        self.fail_always = False
        self.in_flight = 0
        self.most_in_flight = 0
        self.during: list[Any] = []
        self.probe: Any = None

    async def send(self, job: DeliveryJob, message: Message) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.tried.append(job.id)
            await asyncio.sleep(self.delay_s)
            if self.probe is not None:
                self.during.append(await self.probe())
            if message.recipient in self.failing:
                if not self.fail_always:
                    self.failing.discard(message.recipient)
                raise DeliveryFailedError("refused")
            self.sent.append(job.id)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


class CountingOutbox:
    """A ``RedisOutbox`` that counts the calls the worker makes of it."""

    def __init__(self, outbox: RedisOutbox) -> None:
        self._outbox = outbox
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._outbox, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted


async def run_worker_until(delivery: DeliveryWorker, done: Any, timeout_s: float = 10) -> None:
    """``delivery.run`` until ``await done()`` is true, then stopped."""
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    try:
        await wait_for(done, timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def sent_events(redis: aioredis.Redis, user_id: str = "user-1") -> list[dict[str, str]]:
    stream = keys.event_stream(keys.event_partition(user_id, PARTITIONS))
    return [e for e in await entries(redis, stream) if e["type"] == "session.otp.email.sent"]


async def test_a_batch_with_a_failing_job_delivers_the_rest_once_and_retries_that_one(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    jobs = [make_job(str(n), recipient=f"r{n}@example.com") for n in range(4)]
    channel = FakeChannel(failing={"r2@example.com"})
    for job in jobs:
        await outbox.enqueue(job)
    delivery = worker(outbox, {"email": channel}, concurrency=4, backoff_ms=50, poll_ms=10)
    assert await delivery.round() == 4  # one read, the four handled together
    assert sorted(channel.sent) == sorted(j.id for j in jobs if j is not jobs[2])
    assert await redis.zcard(keys.OUTBOX_RETRY) == 1
    await run_until(delivery, lambda: outbox_empty(redis))
    assert Counter(channel.sent) == {job.id: 1 for job in jobs}
    assert Counter(channel.tried)[jobs[2].id] == 2
    assert len(await sent_events(redis)) == 4
    assert await outbox.sent_among([j.id for j in jobs]) == {j.id for j in jobs}
    assert not await redis.exists(keys.OUTBOX_ATTEMPTS, keys.OUTBOX_RETRY)
    assert await outbox.dead_jobs() == []


async def test_a_batch_with_a_job_that_keeps_failing_dead_letters_only_that_one(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    jobs = [make_job(str(n), recipient=f"r{n}@example.com") for n in range(3)]
    channel = FakeChannel(failing={"r0@example.com"})
    channel.fail_always = True
    for job in jobs:
        await outbox.enqueue(job)
    delivery = worker(
        outbox, {"email": channel}, concurrency=4, backoff_ms=20, poll_ms=10, max_attempts=3
    )
    await run_until(delivery, lambda: outbox_empty(redis))
    assert Counter(channel.tried) == {jobs[0].id: 3, jobs[1].id: 1, jobs[2].id: 1}
    (dead,) = await outbox.dead_jobs()
    assert (dead.job_id, dead.attempts, dead.reason) == (jobs[0].id, 3, "refused")


async def test_the_worker_keeps_concurrency_sends_in_flight_reads_batches_and_polls_on_a_timer(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    jobs = [make_job(str(n)) for n in range(16)]
    for job in jobs:
        await outbox.enqueue(job)
    channel = FakeChannel(delay_s=0.03)
    counting = CountingOutbox(outbox)
    delivery = DeliveryWorker(
        counting,
        KEYRING,
        {"email": channel},
        WorkerConfig(consumer="test", concurrency=4, block_ms=10, poll_ms=60_000),
    )
    await run_worker_until(delivery, lambda: outbox_empty(redis))
    assert Counter(channel.sent) == {job.id: 1 for job in jobs}
    assert channel.most_in_flight == 4
    # 16 jobs in 4 reads of 4, then empty ones; retries and take-overs were looked for at
    # the start and after each empty read only, never per job
    reads = counting.calls["read"]
    assert 4 <= reads <= 8
    assert counting.calls["sent_among"] == reads
    assert 1 <= counting.calls["due_retries"] == counting.calls["reclaim"] <= 1 + reads - 4
    assert counting.calls["delivered"] == 16
    assert len(await sent_events(redis)) == 16
    groups: Any = await redis.xinfo_groups(keys.OUTBOX)
    assert groups[0]["consumers"] == 0  # it left the group when stopped


async def test_one_job_in_two_entries_of_a_batch_is_sent_once_and_both_are_acknowledged(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    job = make_job("424242")
    await outbox.enqueue(job)
    await outbox.enqueue(job)  # a replayed script, queued again before the first went out
    channel = FakeChannel(delay_s=0.02)
    delivery = worker(outbox, {"email": channel}, concurrency=4)
    assert await delivery.round() == 2
    assert channel.sent == [job.id]
    assert await outbox_empty(redis)
    assert len(await sent_events(redis)) == 1


async def test_a_worker_does_not_take_over_its_own_job_while_the_send_is_slow(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    job = make_job("777777")
    await outbox.enqueue(job)
    channel = FakeChannel(delay_s=0.4)
    channel.probe = lambda: redis.hlen(keys.OUTBOX_ATTEMPTS)
    delivery = worker(outbox, {"email": channel}, concurrency=4, claim_idle_ms=50, poll_ms=10)
    await run_worker_until(delivery, lambda: outbox_empty(redis))
    assert channel.tried == [job.id]
    assert channel.during == [0]  # its take-overs of itself were not counted as attempts


class HangingChannel:
    """Each recipient's first ``hangs[recipient]`` sends hang (until the worker's send timeout);
    later ones go out. Records every try, and whether two tries of a job overlapped."""

    def __init__(self, hangs: dict[str, int]) -> None:
        self.hangs = dict(hangs)
        self.tried: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.overlapped: set[str] = set()

    async def send(self, job: DeliveryJob, message: Message) -> None:
        self.tried[message.recipient] += 1
        self.in_flight[message.recipient] += 1
        if self.in_flight[message.recipient] > 1:
            self.overlapped.add(message.recipient)
        try:
            if self.hangs.get(message.recipient, 0) > 0:
                self.hangs[message.recipient] -= 1
                await asyncio.sleep(3600)
            self.sent[message.recipient] += 1
        finally:
            self.in_flight[message.recipient] -= 1

    async def close(self) -> None:
        pass


async def test_a_worker_takes_only_as_many_jobs_as_it_has_free_send_slots(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    """A job read while every slot is busy would wait for one with its idle time running,
    and another worker would take it over while it is still to be sent here."""
    recipients = [f"r{n}@example.com" for n in range(5)]
    for recipient in recipients:
        await outbox.enqueue(make_job("1", recipient=recipient))
    channel = HangingChannel(dict.fromkeys(recipients, 1))
    delivery = worker(outbox, {"email": channel}, concurrency=2, send_timeout_s=0.5, poll_ms=10)
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    try:
        await wait_for(lambda: _true(sum(channel.in_flight.values()) == 2), 5)
        await asyncio.sleep(0.2)  # rounds go on meanwhile: nothing more may be taken
        assert (await redis.xpending(keys.OUTBOX, GROUP))["pending"] == 2
        assert sum(channel.tried.values()) == 2
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_job_another_worker_took_over_before_its_send_is_left_to_it(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    job = make_job("818181")
    await outbox.enqueue(job)
    channel = FakeChannel()
    delivery = worker(outbox, {"email": channel}, consumer="slow")
    (taken,) = await delivery.take(1, 10)
    # meanwhile another worker's XAUTOCLAIM took it (and counted an attempt)
    await redis.xclaim(keys.OUTBOX, GROUP, "other", 0, [taken.entry.entry_id])
    await delivery.handle(taken)
    assert channel.tried == []
    (pending,) = (await outbox.pending_summary()).pending
    assert (pending.entry_id, pending.consumer) == (taken.entry.entry_id, "other")
    assert len(await sent_events(redis)) == 0


async def test_two_workers_against_a_hanging_server_send_each_job_once_and_count_real_attempts(
    outbox: RedisOutbox, redis: aioredis.Redis
):
    """Take-overs after 1.5 send timeouts (the old defaults allowed 2: 60 s and 30 s): a job
    taken while every slot was busy waited up to a timeout for one and then hung for another,
    so the other worker took it over, counted an attempt and sent it at the same time. Now a
    job is taken only for a free slot and held right before its send. (``run_delivery`` and
    the command refuse this ratio: they want two timeouts and a margin.)"""
    hang_once = [f"r{n}@example.com" for n in range(4)]
    hangs = dict.fromkeys(hang_once, 1) | {"dead@example.com": 99}
    jobs = [make_job(str(n), recipient=recipient) for n, recipient in enumerate(hangs)]
    for job in jobs:
        await outbox.enqueue(job)
    channel = HangingChannel(hangs)
    options: dict[str, Any] = {
        "send_timeout_s": 0.3,
        "claim_idle_ms": 450,
        "poll_ms": 10,
        "backoff_ms": 20,
        "max_backoff_ms": 40,
        "max_attempts": 3,
    }
    workers = [worker(outbox, {"email": channel}, consumer=name, **options) for name in "ab"]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        await wait_for(lambda: outbox_empty(redis), 20)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert channel.sent == dict.fromkeys(hang_once, 1)
    assert channel.tried == {**dict.fromkeys(hang_once, 2), "dead@example.com": 3}
    assert channel.overlapped == set()
    (dead,) = await outbox.dead_jobs()
    assert (dead.job_id, dead.attempts, dead.reason) == (jobs[-1].id, 3, "timed out")
    assert len(await sent_events(redis)) == 4


def test_a_take_over_time_not_above_two_send_timeouts_and_a_margin_is_refused_at_start(
    capsys: pytest.CaptureFixture[str],
):
    assert WorkerConfig(consumer="w").claim_idle_problem() is None  # the defaults
    short = WorkerConfig(consumer="w", send_timeout_s=0.5)
    assert replace(short, claim_idle_ms=2000).claim_idle_problem()
    assert replace(short, claim_idle_ms=2001).claim_idle_problem() is None
    problem = WorkerConfig(consumer="w", claim_idle_ms=60_000).claim_idle_problem()
    assert problem is not None
    assert "claim_idle_ms 60000 must be above 61000" in problem
    with pytest.raises(ValueError, match="must be above"):
        asyncio.run(
            run_delivery(
                None,  # type: ignore[arg-type]
                Settings(master_key=MASTER_KEY),
                dev_mode=False,
                stop=asyncio.Event(),
                claim_idle_ms=60_000,
            )
        )
    with pytest.raises(SystemExit) as exited:
        worker_command(Settings(), ["--claim-idle-ms", "60000"])
    assert exited.value.code == 2
    assert "claim_idle_ms 60000 must be above 61000" in capsys.readouterr().err


async def _true(value: bool) -> bool:
    return value


async def test_a_read_blocks_at_most_max_block_ms_within_its_connection_s_bound(
    outbox: RedisOutbox, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(storage.outbox, "MAX_BLOCK_MS", 50)
    started = time.monotonic()
    assert await outbox.read("test", 4, 60_000) == []
    assert time.monotonic() - started < 2


async def test_the_smtp_channel_names_itself_in_ehlo_as_configured_or_by_its_fqdn():
    job = make_job("1")
    message = Message(recipient=RECIPIENT, code="1")
    with smtp_sink() as sink:
        named = SmtpChannel(
            host="127.0.0.1",
            port=sink.port,
            sender="login@example.com",
            tls="none",
            local_hostname="sender.example",
        )
        await named.send(job, message)
        default = smtp_channel(sink)
        await default.send(job, message)
        await default.send(job, message)
    assert sink.helo[0] == "sender.example"
    assert sink.helo[1] == sink.helo[2] == socket.getfqdn()


# -- worker processes ---------------------------------------------------------------------------


def _env(redis_url: str, **settings: str | int) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    return {
        **base,
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_MASTER_KEY": MASTER_KEY,
        "SESSIOND_LOG_FORMAT": "json",
        "SESSIOND_LOG_LEVEL": "info",
        **{f"SESSIOND_{name.upper()}": str(value) for name, value in settings.items()},
    }


#: Take-overs soon after a worker is killed: 3.1 s is above two send timeouts plus the margin.
WORKER_ARGS = ("--claim-idle-ms", "3100", "--send-timeout-s", "1", "--block-ms", "50")


@contextmanager
def worker_process(redis_url: str, log: Path, **settings: str | int) -> Iterator[Any]:
    """``python -m app worker`` sending to the sink's port; SIGTERMed afterwards."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", *WORKER_ARGS],
            env=_env(redis_url, smtp_tls="none", **settings),
            stderr=out,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def outbox_cli(redis_url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "app", "outbox", "--json", *args],
        env=_env(redis_url),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


async def wait_for(condition: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_worker_killed_mid_delivery_is_replaced_and_the_message_goes_out_under_one_key(
    outbox: RedisOutbox, redis: aioredis.Redis, redis_url: str, tmp_path: Path
):
    job = make_job("246810")
    log = tmp_path / "worker.log"
    with smtp_sink() as sink:
        sink.hold.set()  # the first delivery never gets its answer
        await outbox.enqueue(job)
        with worker_process(redis_url, log, smtp_host="127.0.0.1", smtp_port=sink.port) as proc:
            await asyncio.to_thread(sink.arrived.wait, 15)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        sink.hold.clear()
        assert (await redis.xpending(keys.OUTBOX, GROUP))["pending"] == 1
        with worker_process(redis_url, log, smtp_host="127.0.0.1", smtp_port=sink.port):
            await wait_for(lambda: outbox_empty(redis))
            await asyncio.sleep(0.3)  # nothing more is sent
    # sent twice (the first answer never came), under one idempotency key to dedupe on
    assert sink.per_key() == {job.id: 2}
    assert {code_in(m) for m in sink.messages} == {"246810"}
    text = log.read_text()
    assert "246810" not in text
    assert RECIPIENT not in text


@pytest.mark.slow
async def test_refused_mail_is_dead_lettered_listed_and_requeued_by_the_outbox_command(
    outbox: RedisOutbox, redis: aioredis.Redis, redis_url: str, tmp_path: Path
):
    job = make_job("135791")
    log = tmp_path / "worker.log"
    with smtp_sink() as sink:
        sink.refuse = 550
        smtp: dict[str, str | int] = {"smtp_host": "127.0.0.1", "smtp_port": sink.port}
        retry: dict[str, str | int] = {"delivery_max_attempts": 3, "delivery_backoff_ms": 50}
        await outbox.enqueue(job)
        with worker_process(redis_url, log, **smtp, **retry):
            await wait_for(lambda: outbox_empty(redis))
        assert len(sink.attempts) == 3
        groups: Any = await redis.xinfo_groups(keys.OUTBOX)
        assert groups[0]["consumers"] == 0  # a stopped worker leaves the group
        report = outbox_cli(redis_url)
        ((dead),) = report["dead"]
        assert dead["job_id"] == job.id
        assert (dead["template"], dead["attempts"], dead["reason"]) == ("otp_email", 3, "smtp 550")
        assert report["pending"] == []
        listed = json.dumps(report)
        assert "135791" not in listed
        assert RECIPIENT not in listed
        assert job.sealed not in listed
        assert outbox_cli(redis_url, "requeue", "--all")["requeued"] != []
        assert await redis.xlen(keys.OUTBOX_DEAD) == 0
        assert outbox_cli(redis_url)["unread"] == 1
        sink.refuse = None
        with worker_process(redis_url, log, **smtp, **retry):
            await wait_for(lambda: outbox_empty(redis))
    assert [code_in(m) for m in sink.messages] == ["135791"]
    text = log.read_text()
    assert '"message dead-lettered"' in text
    assert "135791" not in text
    assert RECIPIENT not in text


@pytest.mark.slow
async def test_dev_mode_writes_each_message_to_a_private_file_and_logs_only_its_path(
    tmp_path: Path,
):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env |= {
        "SESSIOND_DATA_DIR": str(data_dir),
        "SESSIOND_HTTP_PORT": str(port),
        "SESSIOND_LOG_FORMAT": "json",
        "SESSIOND_LOG_LEVEL": "info",
    }
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, stderr=out, start_new_session=True
        )
    try:
        await wait_for(lambda: _exists(data_dir / "master.key"), timeout_s=30)
        await wait_for(lambda: _exists(data_dir / "admin.pat"), timeout_s=30)
        keyring = Keyring.from_text((data_dir / "master.key").read_text().strip())
        message = Message(recipient=RECIPIENT, code="864200")
        job = msgspec.structs.replace(
            make_job("864200"), sealed=keyring.seal(OUTBOX_PURPOSE, msgspec.json.encode(message))
        )
        client = aioredis.Redis.from_url(f"unix://{data_dir / 'valkey.sock'}")
        try:
            await client.xadd(keys.OUTBOX, dict(zip(*[iter(job_fields(job))] * 2, strict=True)))
            await wait_for(lambda: _listed(data_dir / "outbox"))
        finally:
            await client.aclose()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    (written,) = (data_dir / "outbox").iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "outbox").stat().st_mode) == 0o700
    content = written.read_text()
    assert "Your login code is 864200" in content
    assert RECIPIENT in content
    text = log.read_text()
    assert str(written) in text
    assert "864200" not in text
    assert RECIPIENT not in text


async def _exists(path: Path) -> bool:
    return path.exists()


async def _listed(directory: Path) -> bool:
    return directory.exists() and any(directory.iterdir())
