"""The IdP intent rules, pure: the session check's order and ids, expiry, links, redirect URLs.

What tests/test_idp_intents_api.py shows end to end against a real OIDC provider, stated
here against ``actors.idp_intents``, ``actors.user_links`` and ``actors.machine`` alone.
"""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import idp_intents as rules
from actors import machine, user_links
from actors.commands import Checks, CreateSession, Evidence, IntentCheck, SetSession
from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    NotFound,
    ValidationFailed,
)
from actors.events import IntentChecked, TokenSet, event_type, stream_payload
from actors.idp_intents import Intent
from actors.model import CheckedFactor, Factors
from actors.user_records import IdpLink
from actors.views import render
from tests.test_rules_session import ALICE, NOW, USER_CHECK, ctx, session
from tests.test_rules_users import ALICE as ALICE_USER
from tests.test_rules_users import expect

CHECK = IntentCheck(intent_id="i1", token="t")
SUCCEEDED = Intent(
    id="i1",
    idp_id="idp1",
    state=rules.SUCCEEDED,
    success_url="https://login.example.com/ok",
    failure_url="https://login.example.com/failed",
    redirect_uri="https://sso.example.com/idps/callback",
    nonce="n",
    creation_ms=NOW - 60_000,
    idp_user_id="ext-1",
    succeeded_ms=NOW - 1_000,
    expires_ms=NOW + 3_600_000,
)


# -- the session check (spec §4.4 steps 3-5) -----------------------------------------------------
@pytest.mark.parametrize("state", [rules.STARTED, rules.FAILED, rules.CONSUMED])
def test_only_a_succeeded_intent_may_be_used(state: str):
    error = rules.check_for_session(replace(SUCCEEDED, state=state), "alice", "alice", NOW)
    assert isinstance(error, FailedPrecondition)
    assert (error.error_id, error.key) == ("COMMAND-Df4bw", "Errors.Intent.NotSucceeded")


def test_a_missing_intent_has_not_succeeded():
    error = rules.check_for_session(None, "alice", None, NOW)
    assert error is not None
    assert error.error_id == "COMMAND-Df4bw"


def test_an_intent_past_its_expiry_is_expired_before_the_user_is_compared():
    late = replace(SUCCEEDED, expires_ms=NOW)
    error = rules.check_for_session(late, "bob", None, NOW)
    assert error is not None
    assert (error.error_id, error.key) == ("COMMAND-SAf42", "Errors.Intent.Expired")


def test_the_linked_user_at_success_must_be_the_sessions_user():
    linked = replace(SUCCEEDED, user_id="alice")
    assert rules.check_for_session(linked, "alice", None, NOW) is None
    error = rules.check_for_session(linked, "bob", "bob", NOW)  # a later link does not override
    assert error is not None
    assert (error.error_id, error.key) == ("COMMAND-O8xk3w", "Errors.Intent.OtherUser")


def test_without_a_user_at_success_a_link_added_later_counts():
    assert rules.check_for_session(SUCCEEDED, "alice", "alice", NOW) is None
    error = rules.check_for_session(SUCCEEDED, "alice", None, NOW)
    assert error is not None
    assert error.error_id == "COMMAND-O8xk3w"
    other = rules.check_for_session(SUCCEEDED, "alice", "bob", NOW)
    assert other is not None
    assert other.error_id == "COMMAND-O8xk3w"


def test_retrieving_needs_a_succeeded_intent_within_its_lifetime():
    assert rules.check_retrievable(SUCCEEDED, NOW) is None
    started = rules.check_retrievable(replace(SUCCEEDED, state=rules.STARTED), NOW)
    assert started is not None
    assert started.error_id == "IDP-Hk38e"
    late = rules.check_retrievable(replace(SUCCEEDED, expires_ms=NOW - 1), NOW)
    assert late is not None
    assert late.error_id == "COMMAND-SAf42"


@pytest.mark.parametrize(
    ("provider", "expected"),
    [(None, NOW + 3_600_000), (NOW + 1_000, NOW + 1_000), (NOW + 7_200_000, NOW + 3_600_000)],
)
def test_the_lifetime_runs_from_success_or_ends_earlier_if_the_provider_says_so(
    provider: int | None, expected: int
):
    assert rules.expiry_ms(NOW, 3_600_000, provider) == expected


# -- redirect URLs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "https://login.example.com/idp/success",
        "http://localhost:3000/cb?x=1",
        "https://login.example.com/" + "a" * 2000,
    ],
)
def test_absolute_http_urls_are_accepted(url: str):
    rules.validate_redirect_url("SuccessUrl", url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "/relative/path",
        "javascript:alert(1)",
        "ftp://files.example.com/",
        "https://",
        "https://user:pw@login.example.com/",
        "https://login.example.com/#fragment",
        "https://login.example.com:99999/",
        "https://login.example.com/\nheader",
        "https://login.example.com/" + "a" * 2048,
    ],
)
def test_other_redirect_urls_are_invalid_argument(url: str):
    with pytest.raises(ValidationFailed) as caught:
        rules.validate_redirect_url("SuccessUrl", url)
    assert "StartIdentityProviderIntentRequest.Urls.SuccessUrl" in caught.value.message


# -- the check in the session rules --------------------------------------------------------------
def test_an_intent_check_without_a_user_is_zitadels_user_missing():
    command = CreateSession(checks=Checks(idp_intent=CHECK))
    with expect(FailedPrecondition, "COMMAND-Sfw3r", "Errors.User.UserIDMissing"):
        machine.preflight(None, command, Evidence(), ctx())


def test_the_intent_is_checked_for_the_user_checked_in_the_same_request():
    command = CreateSession(checks=replace(USER_CHECK, idp_intent=CHECK))
    assert machine.preflight(None, command, Evidence(user=ALICE), ctx()) == "alice"


def test_a_verified_intent_is_its_event_between_password_and_webauthn():
    command = SetSession(checks=Checks(password="pw", idp_intent=CHECK, totp="123456"))
    evidence = Evidence(password_verified=True, verified=frozenset({"idp_intent", "totp"}))
    events = machine.decide(session(), command, evidence, ctx())
    assert [event_type(e) for e in events] == [
        "session.password.checked",
        "session.intent.checked",
        "session.totp.checked",
        "session.token.set",
    ]
    assert isinstance(events[-1], TokenSet)


def test_an_intent_the_actor_did_not_verify_is_an_internal_error():
    with expect(Internal, "SESSION-notVerified", "Errors.Internal"):
        machine.decide(session(), SetSession(checks=Checks(idp_intent=CHECK)), Evidence(), ctx())


def test_the_intent_factor_is_shown_and_is_a_login_on_its_own():
    after = machine.evolve(session(), IntentChecked(checked_at_ms=NOW), session_id="s1", at_ms=NOW)
    assert after.factors.intent == CheckedFactor(verified_at_ms=NOW)
    assert after.factors.intent_ms == NOW
    assert Factors().intent_ms is None
    factors = render(after).factors
    assert factors is not None
    assert factors.intent is not None
    assert factors.intent.verified_at == "2023-11-14T22:13:20Z"


def test_the_intent_event_payload_is_zitadels():
    event = IntentChecked(checked_at_ms=NOW)
    assert event_type(event) == "session.intent.checked"
    assert stream_payload(event) == {"checkedAt": "2023-11-14T22:13:20Z"}


# -- links ---------------------------------------------------------------------------------------
LINK = IdpLink(idp_id="idp1", user_id="ext-1", user_name="ada@idp")


def test_a_link_is_added_with_zitadels_event_and_refused_twice():
    change = user_links.add_link(ALICE_USER, LINK, NOW)
    assert user_links.links_of(change.user) == (LINK,)
    assert [e.type for e in change.events] == ["user.human.externalidp.added"]
    assert change.events[0].payload == {
        "idpConfigId": "idp1",
        "userId": "ext-1",
        "displayName": "ada@idp",
    }
    with expect(AlreadyExists, "COMMAND-39nf2", "Errors.User.ExternalIDP.AlreadyExists"):
        user_links.add_link(change.user, replace(LINK, user_name="other"), NOW)


def test_a_link_is_removed_by_idp_and_provider_user():
    linked = user_links.add_link(ALICE_USER, LINK, NOW).user
    change = user_links.remove_link(linked, "idp1", "ext-1", NOW)
    assert user_links.links_of(change.user) == ()
    assert [e.type for e in change.events] == ["user.human.externalidp.removed"]
    with expect(NotFound, "COMMAND-1M9xR", "Errors.User.ExternalIDP.NotFound"):
        user_links.remove_link(change.user, "idp1", "ext-1", NOW)


def test_a_machine_user_has_no_links():
    machine_user = replace(ALICE_USER, human=None)
    with pytest.raises(FailedPrecondition):
        user_links.add_link(machine_user, LINK, NOW)


def test_links_per_user_are_bounded():
    user = ALICE_USER
    for n in range(user_links.MAX_LINKS):
        user = user_links.add_link(user, replace(LINK, user_id=f"ext-{n}"), NOW).user
    with pytest.raises(FailedPrecondition):
        user_links.add_link(user, replace(LINK, user_id="one-more"), NOW)


def test_a_deleted_providers_links_are_all_removed_and_the_others_kept():
    user = ALICE_USER
    for idp_id, sub in (("gone", "1"), ("gone", "2"), ("kept", "3")):
        user = user_links.add_link(user, IdpLink(idp_id=idp_id, user_id=sub), NOW).user
    change = user_links.remove_provider_links(user, "gone", NOW)
    assert [(link.idp_id, link.user_id) for link in user_links.links_of(change.user)] == [
        ("kept", "3")
    ]
    assert [event.type for event in change.events] == ["user.human.externalidp.cascade.removed"] * 2
    with pytest.raises(NotFound):
        user_links.remove_provider_links(change.user, "gone", NOW)
