"""The HTML page: one static document with the browser's CSRF token in a ``<meta>`` tag.

The CSP forbids inline script, so the token cannot be handed over in code; the ES module
reads it from the meta tag and sends it back in a header. The same token is in an HttpOnly
cookie; a cross-site page can neither read the page (same-origin policy) nor the cookie.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from aiohttp import web

from app.login import cookies
from app.login.views import CONFIG

STATIC_DIR = Path(__file__).resolve().parent / "static"
_PLACEHOLDER = "{{csrf_token}}"


@cache
def _template() -> str:
    return (STATIC_DIR / "login.html").read_text(encoding="utf-8")


async def login_page(request: web.Request) -> web.Response:
    token = cookies.csrf_token(request)
    text = _template().replace(_PLACEHOLDER, html.escape(token, quote=True))
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    secure = cookies.is_secure(request, request.app[CONFIG].origins)
    cookies.write_csrf(response, token, secure=secure)
    return response
