"""The import rules of the layout, checked by parsing every module's imports.

actors/ is the pure core plus the actor runtime and imports neither app/ nor storage/;
storage/ may import only pure actors modules; Redis is touched only in storage/ (and the
embedded-server launcher); aiohttp only in app/; the pure modules use no asyncio, clock or
randomness.
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
    "actors/user_records.py",
    "actors/user_names.py",
    "actors/user_creation.py",
    "actors/user_credentials.py",
    "storage/keys.py",
    "storage/codec.py",
    "storage/user_codec.py",
    "app/wire.py",
    "app/users_wire.py",
    "app/settings.py",
}
RUNTIME = {"actors/actor.py", "actors/registry.py", "actors/execute.py", "actors/ports.py"}
IMPURE_NAMES = {"asyncio", "time", "random", "secrets", "os", "redis", "aiohttp", "socket"}


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


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _modules("actors"), ids=lambda p: p.name)
def test_actors_import_neither_app_nor_storage_nor_redis(path):
    assert not {_top(n) for n in _imports(path)} & {"app", "storage", "redis", "aiohttp"}


@pytest.mark.parametrize("path", _modules("storage"), ids=lambda p: p.name)
def test_storage_imports_only_pure_actor_modules(path):
    for name in _imports(path):
        assert _top(name) != "app"
        module = name.replace(".", "/") + ".py"
        if _top(name) == "actors" and (ROOT / module).exists():
            assert module in PURE or module == "actors/ports.py", name


@pytest.mark.parametrize("path", sorted(ROOT.glob("app/*.py")), ids=lambda p: p.name)
def test_redis_is_reached_only_through_storage(path):
    allowed = {"embedded.py", "cli.py", "bootstrap.py"}
    if path.name not in allowed:
        assert "redis" not in {_top(n) for n in _imports(path)}


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_do_no_io(module):
    path = ROOT / module
    assert path.exists(), module
    assert not {_top(n) for n in _imports(path)} & IMPURE_NAMES
