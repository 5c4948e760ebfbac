"""The master key at start: configured, or (dev mode only) kept in the data dir.

A server on a real Redis without ``SESSIOND_MASTER_KEY`` would seal secrets with nothing it
could recover after a restart, so it refuses to start. In the embedded dev setup a key is
generated once into ``<data dir>/master.key`` (mode 0600) and reused on every start.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from app.process.bootstrap import write_private
from app.process.settings import Settings
from app.services.sealing import new_master_key, parse_master_key

MASTER_KEY_FILE = "master.key"


def with_master_key(settings: Settings, *, dev_mode: bool) -> Settings:
    """``settings`` with a usable master key (and ``dev_mode`` set), or SystemExit."""
    settings = msgspec.structs.replace(settings, dev_mode=dev_mode)
    if settings.master_key:
        return settings
    if not dev_mode:
        raise SystemExit(
            "SESSIOND_MASTER_KEY is required with SESSIOND_REDIS_URL: it encrypts TOTP seeds"
            " and keys code hashes. Generate one with: python -m app master-key"
        )
    path = Path(settings.data_dir) / MASTER_KEY_FILE
    key = path.read_text().strip() if path.exists() else ""
    if not key:
        key = new_master_key()
        write_private(path, key + "\n")
    try:
        parse_master_key(key)
    except ValueError as exc:
        raise SystemExit(f"{path}: {exc}") from None
    return msgspec.structs.replace(settings, master_key=key)
