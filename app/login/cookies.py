"""The page's two cookies: the session (id + token) and the CSRF secret, both HttpOnly.

Both are scoped to ``/login`` and SameSite=Strict, so no other page of the origin and no
cross-site request carries them; they are Secure whenever the page is served over https.
The session token is the bearer of the user's session: it must never reach JavaScript.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from aiohttp import web

SESSION_COOKIE = "sessiond_login"
CSRF_COOKIE = "sessiond_login_csrf"
PATH = "/login"
_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class SessionCookie:
    session_id: str
    token: str


def is_secure(request: web.Request, origins: tuple[str, ...]) -> bool:
    """Https as the browser sees it: this request, or the configured origin behind a proxy."""
    return request.secure or bool(origins and origins[0].startswith("https://"))


def _set(response: web.StreamResponse, name: str, value: str, *, secure: bool) -> None:
    response.set_cookie(
        name, value, path=PATH, httponly=True, samesite="Strict", secure=secure or None
    )


def read_session(request: web.Request) -> SessionCookie | None:
    session_id, sep, token = request.cookies.get(SESSION_COOKIE, "").partition(_SEPARATOR)
    if not sep or not session_id or not token:
        return None
    return SessionCookie(session_id, token)


def write_session(response: web.StreamResponse, cookie: SessionCookie, *, secure: bool) -> None:
    _set(response, SESSION_COOKIE, f"{cookie.session_id}{_SEPARATOR}{cookie.token}", secure=secure)


def clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=PATH)


def csrf_token(request: web.Request) -> str:
    """The CSRF secret of this browser: the cookie's, or a new one (set it with ``write_csrf``).

    Kept across page loads, so two open tabs do not invalidate each other.
    """
    current = request.cookies.get(CSRF_COOKIE, "")
    if 40 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def write_csrf(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    _set(response, CSRF_COOKIE, token, secure=secure)
