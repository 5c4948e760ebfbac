"""The pure rules of identity provider configurations (``actors.idp_configs``)."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import idp_configs as rules
from actors.errors import NotFound, ValidationFailed
from actors.idp_configs import IdpConfig, IdpFields, ProviderOptions

OIDC_FIELDS = IdpFields(
    name="Corporate SSO",
    client_id="client",
    sealed_secret="sealed-1",
    scopes=("openid", "email"),
    issuer="https://idp.example.com/",
    options=ProviderOptions(is_linking_allowed=True),
)
OAUTH_FIELDS = IdpFields(
    name="GitHub",
    client_id="client",
    sealed_secret="sealed-1",
    authorization_endpoint="https://github.example.com/login/oauth/authorize",
    token_endpoint="https://github.example.com/login/oauth/access_token",
    user_endpoint="https://api.github.example.com/user",
    id_attribute="id",
)


def oidc(**change: object) -> IdpConfig:
    return rules.new_config("idp-1", rules.OIDC, "", replace(OIDC_FIELDS, **change), 1_000)


def test_a_new_config_keeps_what_was_asked_and_when():
    config = oidc()
    assert (config.id, config.kind, config.org_id) == ("idp-1", "oidc", "")
    assert (config.creation_ms, config.change_ms) == (1_000, 1_000)
    assert config.sealed_secret == "sealed-1"
    assert config.options.is_linking_allowed


def test_the_issuers_trailing_slash_is_not_part_of_it():
    assert oidc().issuer == "https://idp.example.com"


def test_an_update_without_a_secret_keeps_the_old_one():
    config = oidc()
    changed = rules.updated(config, rules.OIDC, replace(OIDC_FIELDS, sealed_secret=None), 2_000)
    assert changed.sealed_secret == "sealed-1"
    assert (changed.creation_ms, changed.change_ms) == (1_000, 2_000)
    rotated = rules.updated(config, rules.OIDC, replace(OIDC_FIELDS, sealed_secret="s2"), 3_000)
    assert rotated.sealed_secret == "s2"


@pytest.mark.parametrize("current", [None, "oauth"])
def test_an_update_of_a_missing_or_other_kind_is_not_found(current: str | None):
    config = (
        None if current is None else rules.new_config("idp-2", rules.OAUTH, "", OAUTH_FIELDS, 1_000)
    )
    with pytest.raises(NotFound) as raised:
        rules.updated(config, rules.OIDC, OIDC_FIELDS, 2_000)
    assert raised.value.error_id == "COMMAND-0x0idp"


def test_an_add_needs_a_secret_and_an_update_does_not():
    with pytest.raises(ValidationFailed, match="ClientSecret"):
        rules.validate(rules.OIDC, replace(OIDC_FIELDS, sealed_secret=None), adding=True)
    rules.validate(rules.OIDC, replace(OIDC_FIELDS, sealed_secret=None), adding=False)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "idp.example.com",
        "/relative",
        "ftp://idp.example.com",
        "javascript:alert(1)",
        "https://",
        "https://user:pw@idp.example.com",
        "https://idp.example.com/#fragment",
        "https://idp.example.com:99999",
        "https://idp.example.com/ path",
        "https://idp.example.com/\x00",
        "https://idp.example.com/" + "a" * 2048,
    ],
)
def test_urls_must_be_absolute_http_urls(url: str):
    with pytest.raises(ValidationFailed, match="Issuer"):
        rules.validate(rules.OIDC, replace(OIDC_FIELDS, issuer=url), adding=True)
    with pytest.raises(ValidationFailed, match="TokenEndpoint"):
        rules.validate(rules.OAUTH, replace(OAUTH_FIELDS, token_endpoint=url), adding=True)


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": "n" * 201},
        {"client_id": ""},
        {"scopes": ("s",) * 21},
        {"scopes": ("",)},
        {"id_attribute": ""},
    ],
)
def test_text_fields_have_zitadels_bounds(change: dict[str, object]):
    with pytest.raises(ValidationFailed):
        rules.validate(rules.OAUTH, replace(OAUTH_FIELDS, **change), adding=True)


def test_event_types_name_the_owner_and_the_kind():
    instance = oidc()
    org = replace(rules.new_config("idp-3", rules.OAUTH, "org-1", OAUTH_FIELDS, 1), org_id="org-1")
    assert rules.event_type(instance, "added") == "instance.idp.oidc.added"
    assert rules.event_type(org, "changed") == "org.idp.oauth.changed"
    assert rules.event_type(org, "removed") == "org.idp.removed"


def test_event_payloads_never_carry_the_secret():
    for config in (oidc(), rules.new_config("idp-4", rules.OAUTH, "", OAUTH_FIELDS, 1)):
        payload = rules.event_payload(config)
        assert "sealed-1" not in str(payload)
        assert payload["id"] == config.id


def test_the_secret_purpose_binds_the_sealed_secret_to_its_provider():
    assert rules.secret_purpose("a") != rules.secret_purpose("b")
