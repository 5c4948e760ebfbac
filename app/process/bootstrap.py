"""First-start duties: the instance id, the default organization, and an administrator.

``bootstrap`` runs once in the main process before workers start. With
``SESSIOND_ADMIN_TOKEN`` it makes that token a PAT of the IAM_OWNER machine user "admin". In the
embedded dev setup without one, it generates a PAT into ``<data dir>/admin.pat`` (mode 0600)
and logs the file's path — never the token.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Protocol

import structlog

from actors import tokens
from app.application import IDS, open_stores
from app.process.settings import Settings
from app.services.ports import UserDirectory

log = structlog.get_logger("sessiond.bootstrap")
ADMIN_PAT_FILE = "admin.pat"
MIN_ADMIN_TOKEN_CHARS = 20


async def bootstrap(settings: Settings, *, dev_mode: bool) -> None:
    if settings.admin_token and len(settings.admin_token) < MIN_ADMIN_TOKEN_CHARS:
        raise SystemExit(
            f"SESSIOND_ADMIN_TOKEN must have at least {MIN_ADMIN_TOKEN_CHARS} characters"
        )
    stores = await open_stores(settings)
    try:
        users = stores.users
        if settings.admin_token:
            rotated = await users.ensure_admin(tokens.as_pat(settings.admin_token))
            if rotated:
                log.warning("admin token rotated: the previous one no longer works")
            log.info("admin token ensured", instance_id=stores.instance.id)
        elif dev_mode:
            path = await _ensure_dev_admin_file(users, Path(settings.data_dir))
            log.warning("dev admin PAT written; use it as the Bearer token", path=str(path))
    finally:
        await stores.close()


class _AdminUsers(UserDirectory, Protocol):
    async def ensure_admin(self, token: str) -> bool: ...


async def _ensure_dev_admin_file(users: _AdminUsers, data_dir: Path) -> Path:
    path = data_dir / ADMIN_PAT_FILE
    parts = tokens.split(await asyncio.to_thread(_read, path))
    if parts is not None and await users.get_pat(parts[1]) is not None:
        return path
    issued = IDS.pat()
    await users.ensure_admin(issued.plain)
    await asyncio.to_thread(write_private, path, issued.plain + "\n")
    return path


def _read(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def write_private(path: Path, text: str) -> None:
    """Created with mode 0600 from the start: no moment where others could read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
