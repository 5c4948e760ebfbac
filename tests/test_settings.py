"""Settings.from_env: every ``SESSIOND_*`` variable is a setting, or the start is refused.

README: "unknown ``SESSIOND_*`` variables are refused at start" (a typo must not silently
leave a default in force); the test harness's ``SESSIOND_TEST_*`` share the prefix and are
not settings.
"""

from __future__ import annotations

import pytest

from app.process.settings import Settings


@pytest.mark.parametrize(
    ("variable", "named"),
    [("SESSIOND_NOPE", "nope"), ("SESSIOND_WORKER", "worker"), ("SESSIOND_CACHE_TTL", "cache_ttl")],
)
def test_an_unknown_variable_is_refused_by_name(variable: str, named: str):
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({variable: "1", "SESSIOND_WORKERS": "2"})
    message = str(refused.value.code)
    assert message.startswith("invalid configuration:"), message
    assert f"`{named}`" in message.lower(), message  # the operator learns which one


def test_the_test_harness_variables_are_ignored():
    environ = {"SESSIOND_TEST_REDIS": "valkey", "SESSIOND_TEST_ANYTHING": "x"}
    assert Settings.from_env(environ) == Settings()


def test_known_variables_are_read_and_other_prefixes_ignored():
    settings = Settings.from_env(
        {
            "SESSIOND_WORKERS": "3",
            "SESSIOND_CACHE_TTL_MS": "250",
            "SESSIOND_EXPIRED_RETENTION": "90m",
            "SESSIOND_TEST_REDIS": "debian",
            "SESSIONDX": "1",
            "HOME": "/root",
        }
    )
    assert (settings.workers, settings.cache_ttl_ms) == (3, 250)
    assert settings.expired_retention_ms == 90 * 60_000


def test_an_invalid_value_is_refused_too():
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"SESSIOND_WORKERS": "0"})
    assert "workers" in str(refused.value.code)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis+cluster://127.0.0.1:7000,127.0.0.1", "names host:port seed nodes"),
        ("rediss+cluster://", "names host:port seed nodes"),
        ("http://127.0.0.1:6379", "must be a redis://, rediss://, unix:// or"),
        ("127.0.0.1:6379", "must be a redis://, rediss://, unix:// or"),
    ],
)
def test_a_redis_url_the_service_cannot_use_is_refused_at_start(url: str, said: str):
    with pytest.raises(SystemExit) as refused:
        Settings.from_env({"SESSIOND_REDIS_URL": url})
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/2",
        "rediss://h:6380",
        "unix:///r.sock",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss+cluster://user:pw@h:7000",
    ],
)
def test_single_node_and_cluster_urls_are_accepted(url: str):
    assert Settings.from_env({"SESSIOND_REDIS_URL": url}).redis_url == url
