"""Credential checks are rate limited per user, per client IP and per caller (GCRA in Redis).

The limits hold under concurrency (one Lua step per subject), answer 429 with Retry-After,
use the end user's address that a trusted login client reports, and live next to the
lockout: the lockout counts failures per user and locks; the rate limit bounds attempts of
any outcome and expires by itself. Genuine concurrent logins of one user beyond the lockout
limit wait for the checks in flight instead of failing at once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from actors.limits import UNLIMITED, Rate, parse_rate
from storage import keys
from storage.cluster import ClusterRedis, slot_of
from storage.multiplex import MultiplexedRedis
from storage.rate_limits import RedisRateLimiter
from tests.redis_cluster import TestRedisCluster
from tests.support import ADMIN_TOKEN, PASSWORD, Api


def test_rates_are_count_per_span_and_zero_is_off():
    assert parse_rate("20/1m") == Rate(20, 60_000)
    assert parse_rate("5/10s") == Rate(5, 10_000)
    assert parse_rate("0") is UNLIMITED
    assert Rate(20, 60_000).interval_ms == 3000
    assert Rate(20, 60_000).tolerance_ms == 57_000
    for bad in ("x", "20/eternity", "-1/1m"):
        with pytest.raises(ValueError, match="not a"):
            parse_rate(bad)


WRONG = "wrong-password"


def _password_check(
    user_id: str, password: str = WRONG, ip: str | None = None
) -> dict[str, object]:
    body: dict[str, object] = {
        "checks": {"user": {"userId": user_id}, "password": {"password": password}}
    }
    if ip is not None:
        body["userAgent"] = {"ip": ip}
    return body


@pytest.mark.settings(rate_limit_user="3/1m", rate_limit_ip="0", rate_limit_caller="0")
async def test_a_user_gets_a_429_with_retry_after_past_its_rate(api: Api):
    alice, bob = await api.human(), await api.human()
    ids = [(await api.create(_password_check(alice))).error_id for _ in range(3)]
    assert ids == ["COMMAND-3M0fs"] * 3
    response = await api.client.post(
        "/v2/sessions",
        json=_password_check(alice, PASSWORD),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    body = await response.json()
    assert response.status == 429, body
    assert body["details"][0]["id"] == "COMMAND-rateLimit"
    assert int(response.headers["Retry-After"]) >= 1
    # another user is not affected
    assert (await api.create(_password_check(bob, PASSWORD))).status == 201


@pytest.mark.settings(rate_limit_user="0", rate_limit_ip="3/1m", rate_limit_caller="0")
async def test_one_client_ip_is_limited_across_users(api: Api):
    users = [await api.human() for _ in range(4)]
    ids = [(await api.create(_password_check(user, PASSWORD))).status for user in users]
    assert ids == [201, 201, 201, 429]


@pytest.mark.settings(rate_limit_user="0", rate_limit_ip="2/1m", rate_limit_caller="0")
async def test_a_login_client_is_limited_by_the_end_users_reported_address(api: Api):
    """The peer is the login UI for every user; its userAgent.ip is who is really guessing."""
    _, login_client = await api.machine_with_pat(["IAM_LOGIN_CLIENT"])
    users = [await api.human() for _ in range(4)]
    first = [
        (await api.create(_password_check(u, PASSWORD, ip="203.0.113.7"), login_client)).status
        for u in users[:3]
    ]
    assert first == [201, 201, 429]
    other = await api.create(_password_check(users[3], PASSWORD, ip="198.51.100.1"), login_client)
    assert other.status == 201, other.body


@pytest.mark.settings(rate_limit_user="0", rate_limit_ip="0", rate_limit_caller="2/1m")
async def test_a_caller_is_limited_across_users_and_addresses(api: Api):
    users = [await api.human() for _ in range(3)]
    statuses = [
        (await api.create(_password_check(u, PASSWORD, ip=f"203.0.113.{n}"))).status
        for n, u in enumerate(users)
    ]
    assert statuses == [201, 201, 429]


@pytest.mark.settings(rate_limit_user="5/1m", rate_limit_ip="0", rate_limit_caller="0")
async def test_the_rate_holds_under_thirty_concurrent_checks(api: Api):
    alice = await api.human()
    replies = await asyncio.gather(*[api.create(_password_check(alice)) for _ in range(30)])
    mix = Counter(reply.error_id for reply in replies)
    assert mix == {"COMMAND-3M0fs": 5, "COMMAND-rateLimit": 25}


@pytest.mark.settings(rate_limit_user="1/1m", rate_limit_ip="0", rate_limit_caller="0")
async def test_a_refused_check_is_refused_before_the_password_is_verified(api: Api, redis):
    """Over the rate, nothing is verified: the failure counter does not move."""
    alice = await api.human()
    assert (await api.create(_password_check(alice))).error_id == "COMMAND-3M0fs"
    assert (await api.create(_password_check(alice))).error_id == "COMMAND-rateLimit"
    raw = await redis.hget(f"user:{{{alice}}}", "failed")
    assert raw == b"1"


@pytest.mark.settings(lockout_max_password_attempts=3)
async def test_concurrent_right_passwords_beyond_the_lockout_limit_wait_and_succeed(api: Api):
    """Ten tabs logging in at once: the reservation admits three; the rest wait, not 429."""
    alice = await api.human()
    replies = await asyncio.gather(
        *[api.create(_password_check(alice, PASSWORD)) for _ in range(10)]
    )
    assert [reply.status for reply in replies] == [201] * 10


# -- the storage step itself: one script on one Redis, one per key for a cluster -----------
@pytest.mark.parametrize("per_key", [False, True])
async def test_each_subject_gets_its_count_then_waits(fast_redis: MultiplexedRedis, per_key: bool):
    limiter = RedisRateLimiter(fast_redis, per_key=per_key)
    rate = parse_rate("3/1m")
    subjects = [("user", "u1", rate), ("ip", "10.0.0.1", rate), ("caller", "c1", UNLIMITED)]
    waits = [await limiter.admit(subjects) for _ in range(4)]
    assert waits[:3] == [0, 0, 0]
    assert 15_000 <= waits[3] <= 20_000  # one interval of 20 s, less the time the test took


async def test_on_a_cluster_each_subject_is_its_own_call(redis_cluster: TestRedisCluster):
    redis_cluster.flush()
    client: Any = ClusterRedis(redis_cluster.url)  # the stores take either client
    try:
        limiter = RedisRateLimiter(client)  # the cluster client makes it one call per key
        rate = parse_rate("2/1m")
        subjects = [("user", "u1", rate), ("ip", "10.0.0.1", rate), ("caller", "c1", rate)]
        assert len({slot_of(keys.rate_limit(k, s)) for k, s, _ in subjects}) == 3
        waits = [await limiter.admit(subjects) for _ in range(3)]
        assert waits[:2] == [0, 0]
        assert waits[2] > 0
    finally:
        await client.close()


@pytest.mark.node_only(
    "one node's single-script check; the cluster's per-subject calls are tested beside it"
)
async def test_on_one_redis_a_refused_check_uses_up_no_other_subjects_budget(
    fast_redis: MultiplexedRedis,
):
    limiter = RedisRateLimiter(fast_redis)
    tight, loose = parse_rate("1/1m"), parse_rate("2/1m")
    assert await limiter.admit([("user", "busy", tight), ("ip", "1.2.3.4", loose)]) == 0
    assert await limiter.admit([("user", "busy", tight), ("ip", "1.2.3.4", loose)]) > 0
    # the refused check did not count for the address: it still has one check left
    assert await limiter.admit([("user", "other", tight), ("ip", "1.2.3.4", loose)]) == 0
    assert await limiter.admit([("user", "third", tight), ("ip", "1.2.3.4", loose)]) > 0
