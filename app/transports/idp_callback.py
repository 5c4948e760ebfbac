"""``GET /idps/callback``: where identity providers send the browser back after sign-in.

The provider answers with ``state`` (our intent id) and a ``code``, or with ``error``; the
intent service finishes the intent and names the login UI's URL to go on to, which is
answered with a 302. A callback that names no started intent is 400 with ZITADEL's error
body and no redirect (``app.transports.errors`` renders it). No use-case logic lives here.
"""

from __future__ import annotations

import re

from aiohttp import web

from actors.errors import ValidationFailed
from app.transports.appkeys import SERVICES

CALLBACK_PATH = "/idps/callback"
#: RFC 6749 appendix A: ``state``, ``code``, ``error`` and ``error_description`` are printable
#: ASCII. Bounded so that the request line, percent-encoded, fits aiohttp's 8190 bytes.
#: ``(?!\n)$``: Python's ``$`` also matches before a final newline.
PRINTABLE_ASCII = r"^[\x20-\x7e]*(?!\n)$"
CALLBACK_PARAMS: dict[str, int] = {
    "state": 200,
    "code": 2048,
    "error": 128,
    "error_description": 256,
}
_PRINTABLE = re.compile(PRINTABLE_ASCII)


async def _callback(request: web.Request) -> web.StreamResponse:
    query = request.rel_url.query
    values = {name: query.get(name, "") for name in CALLBACK_PARAMS}
    for name, value in values.items():
        if len(value) > CALLBACK_PARAMS[name] or not _PRINTABLE.search(value):
            raise ValidationFailed(
                f"invalid callback: {name} must be at most {CALLBACK_PARAMS[name]} "
                "printable ASCII characters"
            )
    target = await request.app[SERVICES].intents.finish(
        values["state"], values["code"], values["error"], values["error_description"]
    )
    return web.Response(
        status=302,
        headers={"Location": target, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def setup_idp_callback_route(app: web.Application) -> None:
    app.router.add_get(CALLBACK_PATH, _callback)
