"""Redis server settings sessiond's memory figures assume (kept in ``deploy/redis.conf`` too).

A session's hash holds two values of a few hundred bytes (the state and the read row). With
Redis's default ``hash-max-listpack-value 64`` such a hash is a hashtable, ~40% bigger than
the same fields in one listpack; 1024 keeps an ordinary session compact, and a session with
large metadata still converts to a hashtable, as before. Reads and writes of a listpack this
small cost the same as of a hashtable.
"""

from __future__ import annotations

#: directive → value, as in redis.conf and as ``--directive value`` on a command line.
MEMORY_SETTINGS: dict[str, str] = {"hash-max-listpack-value": "1024"}


def command_line() -> list[str]:
    """The settings as ``redis-server`` / ``valkey-server`` arguments."""
    return [part for name, value in MEMORY_SETTINGS.items() for part in (f"--{name}", value)]
