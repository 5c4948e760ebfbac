"""The login client's PAT: minted when a worker starts, held in memory only, renewed in time.

The page's backend calls the API as the machine user "login-client" (instance role
IAM_LOGIN_CLIENT). Each worker mints its own expiring PAT through the user store and never
writes it anywhere: a leaked log or file cannot contain it, and a stopped (or killed) worker's
token lapses on its own. The previous token is removed after a renewal and at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from actors.tokens import IssuedToken
from app.application import CLOCK, IDS, open_stores
from app.process.settings import Settings

log = structlog.get_logger("sessiond.login")

#: A PAT lives a day; it is replaced after half of that, so it never lapses in use.
PAT_LIFETIME_MS = 24 * 3600 * 1000
RENEW_EVERY_S = PAT_LIFETIME_MS / 1000 / 2


class LoginClientPat:
    """The current PAT of this worker's login client (``token``), renewed in the background."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._issued: IssuedToken | None = None
        self._user_id = ""

    def token(self) -> str:
        if self._issued is None:
            raise RuntimeError("the login client has no PAT yet")
        return self._issued.plain

    async def mint(self) -> None:
        """Replace the PAT by a new one (the old one is removed once the new one is stored)."""
        issued = IDS.pat()
        stores = await open_stores(self._settings)
        try:
            expires_ms = CLOCK.now_ms() + PAT_LIFETIME_MS
            self._user_id = await stores.users.ensure_login_client(issued, expires_ms)
            previous, self._issued = self._issued, issued
            if previous is not None:
                await stores.users.remove_pat(previous.token_id, self._user_id)
        finally:
            await stores.close()
        log.info("login client PAT minted", user_id=self._user_id, token_id=issued.token_id)

    async def revoke(self) -> None:
        if self._issued is None:
            return
        stores = await open_stores(self._settings)
        try:
            await stores.users.remove_pat(self._issued.token_id, self._user_id)
        finally:
            await stores.close()
        self._issued = None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await self.mint()
            except Exception:  # the current token stays valid for another half lifetime
                log.exception("login client PAT renewal failed")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Mint now, renew in the background, revoke at shutdown."""
        await self.mint()
        renewal = asyncio.create_task(self._renew_forever(), name="login-client-pat")
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            try:
                await self.revoke()
            except Exception:  # it expires by itself
                log.warning("login client PAT not revoked at shutdown")
