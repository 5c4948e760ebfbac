"""Loads the Lua scripts in ``storage/scripts/`` once per client.

Each ``.lua`` file is one atomic operation; its header documents KEYS, ARGV and the reply.
``register_script`` gives EVALSHA with a transparent fallback to EVAL after a server restart.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

_INCLUDE = "--#include "


def _read(name: str) -> str:
    return resources.files("storage").joinpath("scripts", f"{name}.lua").read_text()


@cache
def source(name: str) -> str:
    """The script's text with ``--#include <file>`` lines replaced by that file (shared code)."""
    lines = []
    for line in _read(name).splitlines():
        if line.startswith(_INCLUDE):
            lines.append(_read(line[len(_INCLUDE) :].strip()))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


class Scripts:
    """Registered scripts of one client, by file name: ``scripts["commit"](keys, args)``."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._scripts: dict[str, AsyncScript] = {}

    def __getitem__(self, name: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self._client.register_script(source(name))
            self._scripts[name] = script
        return script

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self[name](keys=keys, args=args)
