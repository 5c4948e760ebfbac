"""The Lua scripts in ``storage/scripts/``: one file per atomic operation.

Each ``.lua`` file's header documents KEYS, ARGV and the reply. ``MultiplexedRedis.eval_script``
runs them with EVALSHA, falling back to EVAL after a server restart.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

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
