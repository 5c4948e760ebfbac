"""A pytest plugin for mutation runs: ``-p mutation.plugin``.

* ``--pure-only`` deselects every test that needs the Redis server (any test whose fixture
  closure reaches ``redis_server``), so scoring the pure core runs only the fast pure tests.
* Hypothesis runs derandomized and without its example database, so a mutant is killed or
  not the same way on every run, whatever mutants ran before it.
"""

from __future__ import annotations

import pytest

REDIS_FIXTURE = "redis_server"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pure-only",
        action="store_true",
        default=False,
        help="deselect tests that need the Redis server (mutation runs of the pure core)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Loaded before the test modules are imported, so their settings(...) inherit it.
    from hypothesis import settings

    settings.register_profile("mutation", derandomize=True, database=None)
    settings.load_profile("mutation")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--pure-only"):
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        needs_redis = REDIS_FIXTURE in getattr(item, "fixturenames", ())
        (dropped if needs_redis else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
