"""The auto-pipelining connection: order under concurrency, errors, cancellation, reconnects."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.multiplex import MultiplexedRedis

pytestmark = pytest.mark.node_only(
    "one node's client (the cluster's has tests/test_cluster_client.py)"
)


async def test_concurrent_callers_each_get_their_own_reply(fast_redis: MultiplexedRedis):
    await fast_redis.execute("SET", "k", "v")
    replies = await asyncio.gather(*[fast_redis.execute("ECHO", str(i)) for i in range(500)])
    assert replies == [str(i).encode() for i in range(500)]


async def test_an_error_reply_fails_only_its_own_caller(fast_redis: MultiplexedRedis):
    results: list[object] = await asyncio.gather(
        fast_redis.execute("ECHO", "a"),
        fast_redis.execute("NOSUCHCOMMAND"),
        fast_redis.execute("ECHO", "b"),
        return_exceptions=True,
    )
    assert (results[0], results[2]) == (b"a", b"b")
    assert isinstance(results[1], ResponseError)


async def _wait_until_blocked(redis: aioredis.Redis, command: str) -> None:
    """Until the server shows a client blocked in ``command``: it was sent, and is pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while loop.time() < deadline:
        clients = await redis.client_list()
        if any(c["cmd"] == command and "b" in c["flags"] for c in clients):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no client blocked in {command}")


async def test_a_cancelled_caller_does_not_shift_the_replies(
    fast_redis: MultiplexedRedis, redis: aioredis.Redis
):
    slow = asyncio.ensure_future(fast_redis.execute("BLPOP", "nothing", "1.5"))
    await _wait_until_blocked(redis, "blpop")
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    after = asyncio.ensure_future(fast_redis.execute("ECHO", "next"))
    await asyncio.sleep(0.01)  # sent behind the BLPOP on the same connection
    await redis.rpush("nothing", "popped")  # now the BLPOP answers, with a value
    assert await after == b"next"  # not [b"nothing", b"popped"]: that reply was absorbed
    assert await redis.llen("nothing") == 0  # the BLPOP really ran and popped it


async def test_a_command_sent_later_times_out_at_its_own_deadline(
    redis_url: str, redis: aioredis.Redis
):
    """The watchdog armed by an answered command looks again, from the next command's send."""
    timeout_s = 0.4
    connection = MultiplexedRedis(redis_url, timeout_s=timeout_s, circuit_failures=1000)
    try:
        loop = asyncio.get_running_loop()
        assert await connection.execute("PING") == b"PONG"  # arms the watchdog, then answered
        await asyncio.sleep(timeout_s / 2)
        sent = loop.time()
        blocked = asyncio.ensure_future(connection.execute("BLPOP", "never", 5))
        await _wait_until_blocked(redis, "blpop")
        with pytest.raises(RedisTimeoutError):
            await blocked
        waited = loop.time() - sent
        assert timeout_s * 0.95 <= waited < timeout_s + 0.25, waited  # its own, not the PING's
        assert await connection.execute("PING") == b"PONG"  # a fresh connection
    finally:
        await connection.close()


async def test_a_cancelled_batch_does_not_shift_the_replies(
    fast_redis: MultiplexedRedis, redis: aioredis.Redis
):
    """A batch's caller that gives up leaves every one of its replies to be absorbed."""
    batch = asyncio.ensure_future(
        fast_redis.execute_many(("BLPOP", "nothing", "1.5"), ("ECHO", "in-batch"))
    )
    await _wait_until_blocked(redis, "blpop")
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    after = asyncio.ensure_future(fast_redis.execute("ECHO", "next"))
    await asyncio.sleep(0.01)
    await redis.rpush("nothing", "popped")
    assert await after == b"next"  # neither of the batch's two replies slipped into it


async def test_a_batch_hands_back_an_error_reply_in_its_place(fast_redis: MultiplexedRedis):
    """eval_chain's callers read each reply, errors as values, in order (the last too)."""
    replies = await fast_redis.eval_chain(
        [
            ("return 'first'", [], []),
            ("return redis.error_reply('ERR second')", [], []),
            ("return 'third'", [], []),
            ("return redis.error_reply('ERR last')", [], []),
        ]
    )
    assert (replies[0], replies[2]) == (b"first", b"third")
    assert [str(replies[1]), str(replies[3])] == ["ERR second", "ERR last"]
    assert await fast_redis.execute("ECHO", "after") == b"after"


async def test_scripts_load_themselves_after_a_script_flush(fast_redis: MultiplexedRedis):
    source = "return ARGV[1]"
    assert await fast_redis.eval_script(source, [], ["x"]) == b"x"
    await fast_redis.execute("SCRIPT", "FLUSH")
    assert await fast_redis.eval_script(source, [], ["y"]) == b"y"


async def test_it_reconnects_after_the_server_dropped_it(fast_redis: MultiplexedRedis, redis):
    before = await fast_redis.execute("CLIENT", "ID")
    await redis.client_kill_filter(_id=before)
    for _ in range(100):  # commands in flight when the loss is noticed fail; later ones reconnect
        with contextlib.suppress(RedisConnectionError):
            if await fast_redis.execute("CLIENT", "ID") != before:
                break
        await asyncio.sleep(0.01)
    after = await fast_redis.execute("CLIENT", "ID")
    assert after != before
    assert await fast_redis.execute("PING") == b"PONG"


def test_it_works_on_uvloop(redis_url: str):
    async def roundtrip() -> list[bytes]:
        connection = MultiplexedRedis(redis_url)
        try:
            return list(await asyncio.gather(*[connection.execute("ECHO", "u")] * 3))
        finally:
            await connection.close()

    assert uvloop.run(roundtrip()) == [b"u"] * 3


async def test_a_busy_connection_never_times_out_answered_commands(redis_url: str):
    """Commands answered in time pass, however long the connection stays busy past any
    single command's timeout."""
    connection = MultiplexedRedis(redis_url, timeout_s=0.1)
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.6
        answered = 0
        while loop.time() < until:
            replies = await asyncio.gather(*[connection.execute("PING") for _ in range(20)])
            answered += len(replies)
        assert answered > 100
        assert not connection.circuit_open
    finally:
        await connection.close()


async def test_every_command_waiting_on_a_blocked_server_fails_within_the_timeout(
    redis_url: str, redis: aioredis.Redis
):
    connection = MultiplexedRedis(redis_url, timeout_s=0.3, circuit_failures=1000)
    try:
        # BLPOP holds the connection's reply stream: everything behind it waits
        blocker = asyncio.create_task(connection.execute("BLPOP", "never", 5))
        await _wait_until_blocked(redis, "blpop")
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(
            *[connection.execute("PING") for _ in range(50)], return_exceptions=True
        )
        elapsed = loop.time() - started
        # the first timeout drops the connection, so the others fail with it
        assert all(isinstance(r, RedisTimeoutError | RedisConnectionError) for r in results)
        assert elapsed < 0.6  # within the timeout: not 50 timeouts one after another
        with contextlib.suppress(RedisTimeoutError):
            await blocker
        assert await connection.execute("PING") == b"PONG"  # a fresh connection
    finally:
        await connection.close()
