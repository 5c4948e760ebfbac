"""The outbound OIDC / OAuth 2 client of IdP sign-in: authorization URL, code exchange, identity.

For an OIDC provider: discovery (cached per issuer, its ``issuer`` must be the configured
one), the authorization code flow with PKCE S256 and a nonce, and ID token validation by
joserfc — signature against the provider's JWKS (cached; an unknown ``kid`` refetches the
set at most once per ``JWKS_REFETCH_S``, so key rotation works and a flood of forged tokens
cannot hammer the provider), asymmetric algorithms only, ``iss``, ``aud``/``azp``, ``exp``,
``iat`` and ``nonce`` — then userinfo (whose ``sub`` must match). For a plain OAuth 2
provider: the code exchange and the configured user endpoint.

Every request is bounded by one total timeout, follows no redirects and reads at most
``MAX_RESPONSE_BYTES``; every failure is an ``IdpError`` whose description never holds a
code, token or secret.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from actors.http_urls import is_http_url
from actors.idp_configs import ProviderEndpoints

#: Signature algorithms an ID token may use: asymmetric ones only (never ``none`` or HMAC).
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
DISCOVERY_TTL_S = 3600.0
JWKS_TTL_S = 3600.0
JWKS_REFETCH_S = 30.0
MAX_RESPONSE_BYTES = 1_048_576
LEEWAY_S = 60


class ProviderSettings(ProviderEndpoints, frozen=True, kw_only=True):
    """What an IdP configuration holds, with the client secret already opened."""

    kind: str  # "oidc" | "oauth"
    client_secret: str


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who signed in at the provider, and the tokens it issued."""

    user_id: str
    user_name: str
    raw_information: dict[str, Any]
    access_token: str
    id_token: str | None
    expires_at_ms: int | None


class IdpError(Exception):
    """The provider could not be used or its answer not trusted: an OAuth-style ``error``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


class _Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    authorization: str
    token: str
    userinfo: str
    jwks_uri: str = ""
    basic_auth: bool = False


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query; its own parameters of those names go."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))


def new_pkce() -> tuple[str, str]:
    """A fresh PKCE pair: (code_verifier, its S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class IdpClient:
    def __init__(self, *, timeout_s: float = 10.0, now_s: Callable[[], float] = time.time) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._now = now_s
        self._session: aiohttp.ClientSession | None = None
        self._discovered: dict[str, tuple[float, _Endpoints]] = {}
        self._keys: dict[str, tuple[float, KeySet]] = {}
        self._refetched: dict[str, float] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the two steps of the flow ---------------------------------------------------------
    async def authorization_url(
        self,
        provider: ProviderSettings,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str | None,
    ) -> str:
        endpoints = await self._endpoints(provider)
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(_scopes(provider)),
            "state": state,
        }
        if provider.kind == "oidc":
            params["nonce"] = nonce
        if code_challenge is not None:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        return with_query(endpoints.authorization, params)

    async def complete(
        self,
        provider: ProviderSettings,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        nonce: str,
    ) -> Identity:
        endpoints = await self._endpoints(provider)
        tokens = await self._exchange(provider, endpoints, code, redirect_uri, code_verifier)
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise IdpError("token_exchange_failed", "the token response has no access token")
        expires_in = tokens.get("expires_in")
        expires_at_ms = (
            int((self._now() + float(expires_in)) * 1000)
            if isinstance(expires_in, int | float) and expires_in > 0
            else None
        )
        if provider.kind != "oidc":
            info = await self._get_json(
                provider.user_endpoint, "userinfo_failed", bearer=access_token
            )
            user_id = info.get(provider.id_attribute)
            if user_id is None or isinstance(user_id, dict | list) or str(user_id) == "":
                raise IdpError("userinfo_failed", "the user has no value for the id attribute")
            return _identity(str(user_id), info, access_token, None, expires_at_ms)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise IdpError("invalid_id_token", "the token response has no ID token")
        claims = await self._validate(provider, endpoints, id_token, nonce)
        info = claims
        if not provider.is_id_token_mapping:
            info = await self._get_json(endpoints.userinfo, "userinfo_failed", bearer=access_token)
            if info.get("sub") != claims["sub"]:
                raise IdpError("userinfo_failed", "userinfo names another subject")
        return _identity(str(claims["sub"]), info, access_token, id_token, expires_at_ms)

    # -- discovery, keys, tokens -----------------------------------------------------------
    async def _endpoints(self, provider: ProviderSettings) -> _Endpoints:
        if provider.kind != "oidc":
            return _Endpoints(
                authorization=provider.authorization_endpoint,
                token=provider.token_endpoint,
                userinfo=provider.user_endpoint,
            )
        issuer = provider.issuer.rstrip("/")
        cached = self._discovered.get(issuer)
        if cached is not None and cached[0] > self._now():
            return cached[1]
        document = await self._get_json(
            f"{issuer}/.well-known/openid-configuration", "provider_unreachable"
        )
        if str(document.get("issuer", "")).rstrip("/") != issuer:
            raise IdpError("invalid_response", "the discovery document names another issuer")
        try:
            methods = document.get("token_endpoint_auth_methods_supported") or [
                "client_secret_basic"
            ]
            endpoints = _Endpoints(
                authorization=_url(document["authorization_endpoint"]),
                token=_url(document["token_endpoint"]),
                userinfo=_url(document.get("userinfo_endpoint", "")),
                jwks_uri=_url(document["jwks_uri"]),
                basic_auth="client_secret_basic" in methods,
            )
        except (KeyError, TypeError, ValueError):
            raise IdpError("invalid_response", "the discovery document lacks an endpoint") from None
        self._discovered[issuer] = (self._now() + DISCOVERY_TTL_S, endpoints)
        return endpoints

    async def _exchange(
        self,
        provider: ProviderSettings,
        endpoints: _Endpoints,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
    ) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        headers = None
        if endpoints.basic_auth:  # RFC 6749 §2.3.1: both parts form-encoded first
            pair = f"{quote_plus(provider.client_id)}:{quote_plus(provider.client_secret)}"
            headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        else:
            form["client_id"] = provider.client_id
            form["client_secret"] = provider.client_secret
        return await self._request(
            "POST", endpoints.token, "token_exchange_failed", data=form, headers=headers
        )

    async def _validate(
        self, provider: ProviderSettings, endpoints: _Endpoints, id_token: str, nonce: str
    ) -> dict[str, Any]:
        keys = await self._key_set(endpoints.jwks_uri, refresh=False)
        try:
            token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except JoseError:
            if not self._may_refetch(endpoints.jwks_uri):
                raise IdpError("invalid_id_token", "the ID token does not verify") from None
            keys = await self._key_set(endpoints.jwks_uri, refresh=True)
            try:
                token = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            except (JoseError, ValueError):
                raise IdpError("invalid_id_token", "the ID token does not verify") from None
        except ValueError:
            raise IdpError("invalid_id_token", "the ID token is malformed") from None
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._now()),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": provider.issuer.rstrip("/")},
            sub={"essential": True},
            aud={"essential": True, "value": provider.client_id},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        if str(claims.get("iss", "")).rstrip("/") == provider.issuer.rstrip("/"):
            claims["iss"] = provider.issuer.rstrip("/")  # a trailing slash is the same issuer
        try:
            registry.validate(claims)
        except JoseError as error:
            raise IdpError(
                "invalid_id_token", f"the ID token's claims do not validate ({error.error})"
            ) from None
        audience = claims.get("aud")
        azp = claims.get("azp")
        if isinstance(audience, list) and len(audience) > 1 and azp != provider.client_id:
            raise IdpError("invalid_id_token", "the ID token's azp is not this client")
        return claims

    def _may_refetch(self, jwks_uri: str) -> bool:
        """An unknown key may be a rotation: refetch, but at most once per JWKS_REFETCH_S."""
        now = self._now()
        if self._refetched.get(jwks_uri, 0.0) > now - JWKS_REFETCH_S:
            return False
        self._refetched[jwks_uri] = now
        return True

    async def _key_set(self, jwks_uri: str, *, refresh: bool) -> KeySet:
        cached = self._keys.get(jwks_uri)
        if cached is not None and cached[0] > self._now() and not refresh:
            return cached[1]
        document = await self._get_json(jwks_uri, "provider_unreachable")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise IdpError("invalid_response", "the provider's key set does not parse") from None
        self._keys[jwks_uri] = (self._now() + JWKS_TTL_S, keys)
        return keys

    # -- HTTP ----------------------------------------------------------------------------------
    async def _get_json(self, url: str, error: str, *, bearer: str = "") -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
        return await self._request("GET", url, error, headers=headers)

    async def _request(
        self,
        method: str,
        url: str,
        error: str,
        *,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        if not url:
            raise IdpError(error, "the provider has no such endpoint")
        session = self._http()
        sent = {"Accept": "application/json", **(headers or {})}
        try:
            async with session.request(
                method, url, headers=sent, data=data, allow_redirects=False
            ) as response:
                body = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
        except TimeoutError:
            raise IdpError(error, f"the provider did not answer {_where(url)} in time") from None
        except aiohttp.ClientError:
            raise IdpError(error, f"the provider is not reachable at {_where(url)}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise IdpError(error, f"the provider's answer at {_where(url)} is too large")
        if not 200 <= status < 300:
            raise IdpError(error, f"the provider answered {status} at {_where(url)}")
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise IdpError(error, f"the provider's answer at {_where(url)} is not JSON") from None
        if not isinstance(decoded, dict):
            raise IdpError(error, f"the provider's answer at {_where(url)} is not an object")
        return decoded

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _scopes(provider: ProviderSettings) -> list[str]:
    scopes = list(provider.scopes)
    if provider.kind == "oidc" and "openid" not in scopes:
        scopes.insert(0, "openid")
    return scopes


def _url(value: object) -> str:
    """An endpoint of a discovery document: "" (absent) or an ``actors.http_urls`` URL."""
    text = str(value)
    if text and not is_http_url(text):
        raise ValueError(text)
    return text


def _where(url: str) -> str:
    """The endpoint without its query: enough to debug, never a code or token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _identity(
    user_id: str,
    info: dict[str, Any],
    access_token: str,
    id_token: str | None,
    expires_at_ms: int | None,
) -> Identity:
    name = next(
        (
            str(info[key])
            for key in ("preferred_username", "email", "name", "login")
            if isinstance(info.get(key), str) and info[key]
        ),
        "",
    )
    return Identity(
        user_id=user_id,
        user_name=name,
        raw_information=info,
        access_token=access_token,
        id_token=id_token,
        expires_at_ms=expires_at_ms,
    )
