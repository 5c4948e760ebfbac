"""A real OIDC provider on loopback for the suite: oidc-provider-mock, plus hostile variants.

``oidc_provider`` (session scope) runs oidc-provider-mock (a Flask app on authlib) in a
thread on 127.0.0.1; any client id and secret are accepted, users are created on sign-in
or set with ``set_user``. ``sign_in`` drives its authorization page the way a browser does
(GET the form, POST the subject) and returns where the provider redirects.

The variants sit in front of it as a small aiohttp proxy that rewrites what a hostile or
broken provider would: ``foreign_key_provider`` re-signs every ID token with a key the
provider does not publish; ``hanging_token_provider`` never answers the token request;
``rotating_provider`` rotates its signing key when told.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import werkzeug.serving
from aiohttp import web
from authlib import deprecate  # installs its own "always" filter, so ours must come after
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import extract_compact

with warnings.catch_warnings():
    # it imports authlib modules authlib itself deprecates; nothing of ours uses them
    warnings.simplefilter("ignore", deprecate.AuthlibDeprecationWarning)
    import oidc_provider_mock


class OidcProvider:
    """A provider reachable at ``issuer``; ``jwks_fetches`` counts key-set downloads."""

    def __init__(self, issuer: str, upstream: str | None = None) -> None:
        self.issuer = issuer
        self._upstream = upstream or issuer
        self.jwks_fetches = 0
        #: the rotating variant: True once it signs with a new key and publishes only that
        self.rotated = False

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        """The claims the provider reports for ``sub`` (userinfo and ID token)."""
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL of the suite
            f"{self._upstream}/users/{sub}",
            data=json.dumps(claims).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert response.status == 204


async def sign_in(
    http: aiohttp.ClientSession, auth_url: str, sub: str, *, deny: bool = False
) -> str:
    """The browser at the provider: open the authorization page, sign in as ``sub`` (or deny).

    Returns the ``Location`` the provider redirects to: our callback with ``code`` and
    ``state``, or with ``error``.
    """
    async with http.get(auth_url, allow_redirects=False) as page:
        assert page.status == 200, await page.text()
        assert "<form" in await page.text()
    form = {"action": "deny"} if deny else {"sub": sub}
    async with http.post(auth_url, data=form, allow_redirects=False) as answer:
        assert answer.status == 302, await answer.text()
        return answer.headers["Location"]


@pytest.fixture(scope="session", name="oidc_provider")
def _oidc_provider() -> Iterator[OidcProvider]:
    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield OidcProvider(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


class _Proxy:
    """Forwards to the provider, rewriting discovery (to point here) and the token answer."""

    def __init__(self, upstream: str, mode: str) -> None:
        self.upstream = upstream
        self.mode = mode
        self.issuer = ""
        self.provider: OidcProvider | None = None
        self.foreign_key = RSAKey.generate_key(2048, parameters={"kid": "not-published"})
        self.old_key = RSAKey.generate_key(2048, parameters={"kid": "rotating-0", "use": "sig"})
        self.new_key = RSAKey.generate_key(2048, parameters={"kid": "rotating-1", "use": "sig"})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path_qs
        if request.path.endswith("/token") and self.mode == "hang":
            await asyncio.sleep(3600)
        if request.path == "/jwks" and self.provider is not None:
            self.provider.jwks_fetches += 1
        body = await request.read()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method,
                self.upstream + path,
                data=body or None,
                headers=headers,
                allow_redirects=False,
            ) as answer,
        ):
            payload = await answer.read()
            status = answer.status
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("location", "content-type", "set-cookie")
            }
        rotated = self.provider is not None and self.provider.rotated
        if request.path == "/.well-known/openid-configuration":
            payload = payload.replace(self.upstream.encode(), self.issuer.encode())
        elif request.path == "/jwks" and self.mode == "rotating":
            signing = self.new_key if rotated else self.old_key
            payload = json.dumps({"keys": [signing.as_dict(private=False)]}).encode()
        elif request.path.endswith("/token") and status == 200 and self.mode == "foreign-key":
            payload = self._resigned(payload, self.foreign_key)
        elif request.path.endswith("/token") and status == 200 and self.mode == "rotating":
            payload = self._resigned(payload, self.new_key if rotated else self.old_key)
        return web.Response(status=status, body=payload, headers=kept)

    def _resigned(self, payload: bytes, key: RSAKey) -> bytes:
        tokens = json.loads(payload)
        claims = json.loads(extract_compact(tokens["id_token"].encode()).payload)
        claims["iss"] = self.issuer
        header = {"alg": "RS256", "kid": key.kid}
        tokens["id_token"] = jwt.encode(header, claims, key)
        return json.dumps(tokens).encode()


async def _proxy_provider(upstream: OidcProvider, mode: str) -> AsyncIterator[OidcProvider]:
    proxy = _Proxy(upstream.issuer, mode)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.issuer = f"http://127.0.0.1:{port}"
    provider = OidcProvider(proxy.issuer, upstream=upstream.issuer)
    proxy.provider = provider
    try:
        yield provider
    finally:
        await runner.cleanup()


@pytest.fixture(name="foreign_key_provider")
async def _foreign_key_provider(oidc_provider: OidcProvider) -> AsyncIterator[OidcProvider]:
    async for provider in _proxy_provider(oidc_provider, "foreign-key"):
        yield provider


@pytest.fixture(name="rotating_provider")
async def _rotating_provider(oidc_provider: OidcProvider) -> AsyncIterator[OidcProvider]:
    """Signs with its own key; once ``rotated`` is set, with a new one, and publishes only it."""
    async for provider in _proxy_provider(oidc_provider, "rotating"):
        yield provider


@pytest.fixture(name="hanging_token_provider")
async def _hanging_token_provider(oidc_provider: OidcProvider) -> AsyncIterator[OidcProvider]:
    async for provider in _proxy_provider(oidc_provider, "hang"):
        yield provider
