"""The demo login page (``/login``): plain HTML and an ES module over a backend-for-frontend.

On with ``SESSIOND_DEMO_LOGIN=true`` (and by default in dev mode).
"""

from __future__ import annotations

from aiohttp import web

from app.process.settings import Settings


def setup_login(app: web.Application, settings: Settings) -> None:
    """Mount the login page and its JSON endpoints on ``app`` (none yet: ``/login`` is 404)."""
