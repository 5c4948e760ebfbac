"""Identity provider configurations: generic OIDC and generic OAuth 2, per instance or org.

ZITADEL's admin (instance) and management (organization) API configure the providers a
user can sign in with (spec §15). These are the pure rules: the record, what a valid
configuration is (ZITADEL's bounds, ``actors.http_urls`` URLs), how an update changes it, and
the events. The client secret reaches these rules already sealed; no rule ever sees it in
clear. Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.errors import NotFound, ValidationFailed
from actors.http_urls import is_http_url

OIDC = "oidc"
OAUTH = "oauth"
KINDS = (OIDC, OAUTH)
MAX_SCOPES = 20
MAX_TEXT = 200


class ProviderOptions(msgspec.Struct, frozen=True, kw_only=True):
    is_linking_allowed: bool = False
    is_creation_allowed: bool = False
    is_auto_creation: bool = False
    is_auto_update: bool = False


class ProviderEndpoints(msgspec.Struct, frozen=True, kw_only=True):
    """How to talk to the provider: what a configuration, a request and the client share."""

    client_id: str
    scopes: tuple[str, ...] = ()
    use_pkce: bool = False
    #: generic OIDC: the issuer (discovery, ID token ``iss``)
    issuer: str = ""
    is_id_token_mapping: bool = False
    #: generic OAuth 2: the three endpoints and the user id's attribute
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    user_endpoint: str = ""
    id_attribute: str = ""


class IdpConfig(ProviderEndpoints, frozen=True, kw_only=True):
    id: str
    kind: str
    name: str
    #: "" = the instance's; else the organization that owns it.
    org_id: str = ""
    #: ``Keyring.seal(secret_purpose(id), secret)``: never the plain secret.
    sealed_secret: str
    options: ProviderOptions = ProviderOptions()
    sequence: int = 0
    creation_ms: int = 0
    change_ms: int = 0


class IdpFields(ProviderEndpoints, frozen=True, kw_only=True):
    """What an add or update request says, validated here (the secret already sealed)."""

    name: str
    sealed_secret: str | None
    options: ProviderOptions = ProviderOptions()


def secret_purpose(idp_id: str) -> str:
    """The sealing purpose of a provider's client secret: bound to its id."""
    return f"idp-client-secret:{idp_id}"


def idp_not_found() -> NotFound:
    return NotFound("COMMAND-0x0idp", "Errors.IDPConfig.NotExisting")


def new_config(idp_id: str, kind: str, org_id: str, fields: IdpFields, now_ms: int) -> IdpConfig:
    validate(kind, fields, adding=True)
    assert fields.sealed_secret is not None  # noqa: S101 - validate requires it on add
    return IdpConfig(
        id=idp_id,
        kind=kind,
        org_id=org_id,
        sealed_secret=fields.sealed_secret,
        creation_ms=now_ms,
        change_ms=now_ms,
        **_settings(fields),
    )


def updated(current: IdpConfig | None, kind: str, fields: IdpFields, now_ms: int) -> IdpConfig:
    """The configuration after an update of the same kind; no secret keeps the old one."""
    if current is None or current.kind != kind:
        raise idp_not_found()
    validate(kind, fields, adding=False)
    return msgspec.structs.replace(
        current,
        sealed_secret=fields.sealed_secret or current.sealed_secret,
        change_ms=now_ms,
        **_settings(fields),
    )


def event_type(config: IdpConfig, step: str) -> str:
    """``instance.idp.oidc.added``, ``org.idp.oauth.changed``, ``instance.idp.removed``."""
    owner = "org" if config.org_id else "instance"
    return f"{owner}.idp.removed" if step == "removed" else f"{owner}.idp.{config.kind}.{step}"


def event_payload(config: IdpConfig) -> dict[str, Any]:
    """What the streams learn: never the client secret, sealed or not."""
    payload: dict[str, Any] = {"id": config.id, "name": config.name, "clientId": config.client_id}
    if config.kind == OIDC:
        payload["issuer"] = config.issuer
    else:
        payload["authorizationEndpoint"] = config.authorization_endpoint
        payload["tokenEndpoint"] = config.token_endpoint
        payload["userEndpoint"] = config.user_endpoint
    payload["scopes"] = list(config.scopes)
    return payload


def validate(kind: str, fields: IdpFields, *, adding: bool) -> None:
    message = "AddGenericOIDCProviderRequest" if kind == OIDC else "AddGenericOAuthProviderRequest"
    _text(message, "Name", fields.name)
    _text(message, "ClientId", fields.client_id)
    if adding and not fields.sealed_secret:
        raise ValidationFailed(f"invalid {message}.ClientSecret: value length must be 1..200")
    if len(fields.scopes) > MAX_SCOPES:
        raise ValidationFailed(f"invalid {message}.Scopes: at most {MAX_SCOPES} items")
    for scope in fields.scopes:
        _text(message, "Scopes", scope)
    if kind == OIDC:
        _url(message, "Issuer", fields.issuer)
        return
    _url(message, "AuthorizationEndpoint", fields.authorization_endpoint)
    _url(message, "TokenEndpoint", fields.token_endpoint)
    _url(message, "UserEndpoint", fields.user_endpoint)
    _text(message, "IdAttribute", fields.id_attribute)


def _settings(fields: IdpFields) -> dict[str, Any]:
    """Everything an add or update sets but the secret (which has its own rule)."""
    settings = msgspec.structs.asdict(fields)
    del settings["sealed_secret"]
    settings["issuer"] = fields.issuer.rstrip("/")
    return settings


def _text(message: str, field: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_TEXT:
        raise ValidationFailed(
            f"invalid {message}.{field}: value length must be between 1 and 200 runes"
        )


def _url(message: str, field: str, value: str) -> None:
    if not is_http_url(value):
        raise ValidationFailed(f"invalid {message}.{field}: value must be an absolute http(s) URL")
