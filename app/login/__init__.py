"""The demo login page (``/login``): plain HTML and an ES module over a backend-for-frontend.

On with ``SESSIOND_DEMO_LOGIN=true`` (and by default in dev mode). The page never holds a
PAT or a session token: its backend (``app.login.views``) calls this server's own API over
HTTP as the machine user "login-client" and keeps the user's session in an HttpOnly cookie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from app.login.api import Api
from app.login.client import LoginClientPat
from app.login.guard import add_security_headers
from app.login.page import STATIC_DIR, login_page
from app.login.views import API, CONFIG, ROUTES, LoginConfig
from app.process.settings import Settings

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def api_base_url(settings: Settings) -> str:
    """This server as its own client reaches it: the configured host, wildcards as loopback."""
    host = _WILDCARDS.get(settings.http_host, settings.http_host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.http_port}"


def rp_id(settings: Settings) -> str:
    """The WebAuthn relying party: the host of the first accepted origin."""
    origins = settings.webauthn_origin_list
    return (urlsplit(origins[0]).hostname or "localhost") if origins else "localhost"


def setup_login(app: web.Application, settings: Settings) -> None:
    """Mount the login page and its JSON endpoints on ``app``."""
    app[CONFIG] = LoginConfig(origins=settings.webauthn_origin_list, rp_id=rp_id(settings))
    app.cleanup_ctx.append(_client(settings))
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/login", login_page)
    app.router.add_static("/login/static", STATIC_DIR)
    for name, handler in ROUTES.items():
        app.router.add_post(f"/login/api/{name}", handler)


def _client(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def client(app: web.Application) -> AsyncIterator[None]:
        pat = LoginClientPat(settings)
        async with pat.running(), aiohttp.ClientSession() as http:
            app[API] = Api(http, api_base_url(settings), pat.token)
            yield

    return client
