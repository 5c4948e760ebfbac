"""What protects the page and its JSON endpoints: security headers and the CSRF check.

Every ``/login`` response gets a strict Content-Security-Policy (scripts, styles and
connections from this origin only, no inline code, no framing, no foreign form targets),
``nosniff``, no referrer, and ``no-store`` (the page embeds the CSRF token; the API answers
describe a session). A JSON endpoint accepts a request only if all of these hold:

- ``Content-Type: application/json`` (a cross-site form cannot send it without a preflight);
- ``Origin`` is this page's origin and ``Sec-Fetch-Site``, when sent, is ``same-origin``;
- the ``X-CSRF-Token`` header equals the HttpOnly CSRF cookie (compared in constant time).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from app.login.cookies import CSRF_COOKIE, PATH

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
CSRF_HEADER = "X-CSRF-Token"
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "publickey-credentials-get=(self), publickey-credentials-create=(self)",
}


def is_login_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers above on every ``/login`` response, errors too."""
    if not is_login_path(request.path):
        return
    response.headers.update(_HEADERS)
    if not request.path.startswith(PATH + "/static/"):
        response.headers["Cache-Control"] = "no-store"


def own_origins(request: web.Request, configured: tuple[str, ...]) -> frozenset[str]:
    """The configured WebAuthn origins and the origin this request was addressed to."""
    return frozenset({*configured, f"{request.scheme}://{request.host}"})


def csrf_failure(request: web.Request, configured: tuple[str, ...]) -> str | None:
    """Why this JSON request must be refused, or None when it may proceed."""
    if request.content_type != "application/json":
        return "Content-Type must be application/json"
    if request.headers.get("Origin", "") not in own_origins(request, configured):
        return "cross-origin request"
    if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
        return "cross-site request"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        return "missing or wrong CSRF token"
    return None
