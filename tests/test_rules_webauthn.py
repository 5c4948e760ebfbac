"""Passkeys and U2F keys, pure: registration, codes, use (sign counts), and what is offered.

Everything ``actors.webauthn_tokens`` decides, compared whole (record, events, error kind,
ZITADEL id and i18n key), with the boundaries: a registration or code valid at its expiry
millisecond and not one after, the caps reached exactly, each sign-count case of W3C
WebAuthn §7.2 step 21. The session side of WebAuthn is in tests/test_rules_webauthn_session.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from msgspec.structs import replace

from actors import user_factors, users
from actors import webauthn_tokens as wa
from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from actors.user_records import (
    DELETED,
    PASSKEY,
    U2F,
    Change,
    RegistrationCode,
    User,
    UserEvent,
    WebAuthnToken,
)
from tests.test_rules_factors import ALICE, ROBOT, with_factors
from tests.test_rules_users import expect

NOW = 1_700_000_000_000
PW = "user.human.passwordless.token."
MFA = "user.human.mfa.u2f.token."
CODE = "user.human.passwordless.initialization.code."
KEY = wa.RegisteredKey(credential_id="cred-new", public_key="pk-new", sign_count=7, aaguid="ag")


def token(token_id: str, kind: str = PASSKEY, **fields: object) -> WebAuthnToken:
    """A ready key unless ``ready=False`` (then a pending registration expiring at NOW)."""
    base = WebAuthnToken(
        id=token_id,
        kind=kind,
        rp_id="example.com",
        creation_ms=NOW - 100,
        ready=True,
        name=f"key {token_id}",
        credential_id=f"cred-{token_id}",
        public_key=f"pk-{token_id}",
        sign_count=5,
    )
    if fields.get("ready") is False:
        base = replace(base, name="", credential_id="", public_key="", sign_count=0)
        base = replace(base, challenge=f"ch-{token_id}", expires_ms=NOW)
    return replace(base, **fields)


def pending(token_id: str, kind: str = PASSKEY, **fields: object) -> WebAuthnToken:
    return token(token_id, kind, ready=False, **fields)


def holding(*tokens: WebAuthnToken, codes: tuple[RegistrationCode, ...] = ()) -> User:
    return with_factors(ALICE, webauthn=tokens, passkey_codes=codes)


def tokens_of(change: Change) -> tuple[WebAuthnToken, ...]:
    assert change.user.human is not None
    return change.user.human.factors.webauthn


def codes_of(change: Change) -> tuple[RegistrationCode, ...]:
    assert change.user.human is not None
    return change.user.human.factors.passkey_codes


def begin(user: User | None, key_id: str = "new", kind: str = PASSKEY, **kw: object) -> Change:
    args: dict[str, object] = {
        "token_id": key_id,
        "kind": kind,
        "rp_id": "login.example.com",
        "challenge": "fresh-challenge",
        "attachment": "platform",
        "by_code": False,
        "now_ms": NOW,
    }
    args.update(kw)
    return wa.begin_registration(user, **args)  # type: ignore[arg-type]


def finish(
    user: User | None,
    result: wa.RegisteredKey | ServiceError = KEY,
    key_id: str = "p",
    kind: str = PASSKEY,
    now_ms: int = NOW,
) -> Change:
    return wa.finish_registration(
        user, kind=kind, token_id=key_id, name="My key", result=result, now_ms=now_ms
    )


# -- the user a transition applies to ----------------------------------------------------------
MISSING: list[tuple[str, Callable[[User | None], object]]] = [
    ("begin", begin),
    ("pending", lambda u: wa.pending_registration(u, PASSKEY, "p", NOW)),
    ("finish", finish),
    ("remove", lambda u: wa.remove_token(u, PASSKEY, "a", NOW)),
    ("record_use", lambda u: wa.record_use(u, "a", 6, NOW)),
    ("add_code", lambda u: wa.add_registration_code(u, "c", "h", NOW, returned=False)),
    ("use_code", lambda u: wa.use_registration_code(u, "c", lambda _: True, NOW)),
]


@pytest.mark.parametrize(("name", "transition"), MISSING)
def test_a_missing_or_deleted_user_is_not_found(name: str, transition) -> None:
    for user in (None, replace(holding(token("a"), pending("p")), state=DELETED)):
        with expect(NotFound, "QUERY-Dfbg2", "Errors.User.NotFound"):
            transition(user)


@pytest.mark.parametrize(("name", "transition"), MISSING)
def test_a_machine_user_has_no_keys(name: str, transition) -> None:
    with expect(FailedPrecondition, "COMMAND-h5u3s", "Errors.User.NotHuman"):
        transition(ROBOT)


# -- beginning a registration --------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "prefix"), [(PASSKEY, PW), (U2F, MFA)])
def test_a_registration_begins_pending_with_its_challenge_for_five_minutes(kind, prefix) -> None:
    user = holding(token("a"))
    change = begin(user, kind=kind, by_code=True)
    new = WebAuthnToken(
        id="new",
        kind=kind,
        rp_id="login.example.com",
        creation_ms=NOW,
        challenge="fresh-challenge",
        expires_ms=NOW + 300_000,
        by_code=True,
        attachment="platform",
    )
    assert change.error is None
    assert change.events == (
        UserEvent(f"{prefix}added", {"webAuthNTokenId": "new", "rpID": "login.example.com"}),
    )
    assert change.user == replace(
        with_factors(ALICE, webauthn=(token("a"), new), passkey_codes=()), change_ms=NOW
    )
    assert change.user.view_version == ALICE.view_version
    assert wa.REGISTRATION_TTL_MS == 300_000


def test_expired_registrations_are_dropped_one_at_its_expiry_is_kept() -> None:
    at_now = pending("now", expires_ms=NOW)
    gone = pending("gone", expires_ms=NOW - 1)
    old_ready = token("r", expires_ms=0)
    change = begin(holding(gone, at_now, old_ready))
    assert [t.id for t in tokens_of(change)] == ["now", "r", "new"]


def test_the_twentieth_key_may_still_begin_a_registration_not_the_twenty_first() -> None:
    nineteen = [token(str(i)) for i in range(19)]
    many_pending = [pending(f"p{i}", expires_ms=NOW + i) for i in range(5)]
    change = begin(holding(*nineteen, *many_pending))
    assert len(tokens_of(change)) == 19 + 5
    with expect(ResourceExhausted, "COMMAND-wa3Max", "Errors.User.WebAuthN.TooMany"):
        begin(holding(*nineteen, token("19")))
    assert wa.MAX_TOKENS == 20


def test_four_open_registrations_get_a_fifth_then_the_oldest_makes_room() -> None:
    four = [pending(f"p{i}", expires_ms=NOW + 10 - i) for i in range(4)]
    change = begin(holding(token("a"), *four))
    assert [t.id for t in tokens_of(change)] == ["a", "p0", "p1", "p2", "p3", "new"]
    five = [*four, pending("p4", expires_ms=NOW + 20)]
    # the oldest (the earliest expiry) is p3, neither the first nor the last one listed
    change = begin(holding(token("a", expires_ms=0), *five))
    assert [t.id for t in tokens_of(change)] == ["a", "p0", "p1", "p2", "p4", "new"]
    assert wa.MAX_PENDING == 5


def test_expired_registrations_are_dropped_before_the_cap_is_counted() -> None:
    four = [pending(f"p{i}", expires_ms=NOW + 1 + i) for i in range(4)]
    expired = [pending("old", expires_ms=NOW - 2), pending("older", expires_ms=NOW - 3)]
    change = begin(holding(*four, *expired))
    assert [t.id for t in tokens_of(change)] == ["p0", "p1", "p2", "p3", "new"]


# -- the pending registration a verification answers ---------------------------------------------
def test_the_pending_registration_is_found_by_id_and_kind() -> None:
    user = holding(token("a"), pending("p", expires_ms=NOW), pending("q", U2F))
    assert wa.pending_registration(user, PASSKEY, "p", NOW) == pending("p")
    assert wa.pending_registration(user, U2F, "q", NOW) == pending("q", U2F)
    for kind, token_id in ((U2F, "p"), (PASSKEY, "q"), (PASSKEY, "zz")):
        with expect(NotFound, "COMMAND-wa3Nf", "Errors.User.WebAuthN.NotFound"):
            wa.pending_registration(user, kind, token_id, NOW)


def test_a_registration_is_verifiable_up_to_its_expiry_millisecond() -> None:
    user = holding(pending("p", expires_ms=NOW))
    assert wa.pending_registration(user, PASSKEY, "p", NOW).id == "p"
    with expect(FailedPrecondition, "COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired"):
        wa.pending_registration(user, PASSKEY, "p", NOW + 1)


def test_a_spent_challenge_is_expired_even_before_its_time() -> None:
    user = holding(pending("p", challenge="", expires_ms=NOW + 1_000))
    with expect(FailedPrecondition, "COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired"):
        wa.pending_registration(user, PASSKEY, "p", NOW)


def test_a_ready_key_is_already_ready_before_anything_else() -> None:
    user = holding(token("a", challenge="", expires_ms=0))
    with expect(FailedPrecondition, "COMMAND-wa3Rdy", "Errors.User.WebAuthN.AlreadyReady"):
        wa.pending_registration(user, PASSKEY, "a", NOW)


# -- finishing it --------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "prefix"), [(PASSKEY, PW), (U2F, MFA)])
def test_a_verified_registration_is_a_ready_key_with_its_credential(kind, prefix) -> None:
    open_ = pending("p", kind, expires_ms=NOW, by_code=True, attachment="cross-platform")
    user = holding(open_, token("a"), token("b", U2F))
    change = finish(user, kind=kind)
    ready = replace(
        open_,
        ready=True,
        name="My key",
        credential_id="cred-new",
        public_key="pk-new",
        sign_count=7,
        aaguid="ag",
        challenge="",
        expires_ms=0,
    )
    assert change.error is None
    assert change.events == (
        UserEvent(f"{prefix}verified", {"webAuthNTokenId": "p", "webAuthNTokenName": "My key"}),
    )
    assert change.user == replace(holding(token("a"), token("b", U2F), ready), change_ms=NOW)


def test_a_failed_verification_spends_the_challenge_and_keeps_the_registration() -> None:
    failure = InvalidArgument("WEBAU-bad", "Errors.User.WebAuthN.ValidateLoginFailed")
    user = holding(pending("p", expires_ms=NOW + 9), token("a"))
    change = finish(user, failure)
    assert change.error is failure
    assert change.events == ()
    assert change.user == replace(
        holding(token("a"), pending("p", challenge="", expires_ms=NOW + 9)), change_ms=NOW
    )
    with expect(FailedPrecondition, "COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired"):
        finish(change.user)


def test_a_credential_registered_already_is_refused_and_spends_the_challenge() -> None:
    user = holding(token("a", credential_id="cred-new"), pending("p"))
    change = finish(user)
    assert isinstance(change.error, AlreadyExists)
    assert (change.error.error_id, change.error.key) == (
        "COMMAND-wa3Dup",
        "Errors.User.WebAuthN.AlreadyRegistered",
    )
    assert change.events == ()
    assert tokens_of(change) == (token("a", credential_id="cred-new"), pending("p", challenge=""))
    assert change.user.change_ms == NOW


def test_only_a_ready_key_makes_a_credential_a_duplicate() -> None:
    # a pending registration's credential_id is never set; even if it were, it is no key yet
    user = holding(pending("q", credential_id="cred-new", expires_ms=NOW + 5), pending("p"))
    change = finish(user)
    assert change.error is None
    assert [(t.id, t.ready) for t in tokens_of(change)] == [("q", False), ("p", True)]


def test_a_registration_is_finished_with_its_own_kind_and_before_it_expires() -> None:
    user = holding(pending("p", expires_ms=NOW))
    with expect(NotFound, "COMMAND-wa3Nf", "Errors.User.WebAuthN.NotFound"):
        finish(user, kind=U2F)
    with expect(FailedPrecondition, "COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired"):
        finish(user, now_ms=NOW + 1)
    assert finish(user, now_ms=NOW).error is None


# -- removing --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "prefix"), [(PASSKEY, PW), (U2F, MFA)])
def test_a_key_is_removed_by_id_and_kind(kind: str, prefix: str) -> None:
    user = holding(token("a"), token("x", kind), pending("p"))
    change = wa.remove_token(user, kind, "x", NOW)
    assert change.events == (UserEvent(f"{prefix}removed", {"webAuthNTokenId": "x"}),)
    assert change.user == replace(holding(token("a"), pending("p")), change_ms=NOW)
    assert change.error is None
    other = U2F if kind == PASSKEY else PASSKEY
    with expect(NotFound, "COMMAND-wa3Nf", "Errors.User.WebAuthN.NotFound"):
        wa.remove_token(user, other, "x", NOW)


def test_a_pending_registration_can_be_removed_too() -> None:
    change = wa.remove_token(holding(token("a"), pending("p")), PASSKEY, "p", NOW)
    assert tokens_of(change) == (token("a"),)
    assert change.events == (UserEvent(f"{PW}removed", {"webAuthNTokenId": "p"}),)


# -- what is registered, offered, found ----------------------------------------------------------
def test_registered_lists_one_kind_ready_or_not() -> None:
    user = holding(token("a"), token("u", U2F), pending("p"), pending("q", U2F))
    assert wa.registered(user, PASSKEY) == [token("a"), pending("p")]
    assert wa.registered(user, U2F) == [token("u", U2F), pending("q", U2F)]
    assert wa.registered(ROBOT, PASSKEY) == []


@pytest.mark.parametrize(
    ("user_verification", "ids"), [(1, ["a", "b"]), (2, ["a", "u", "b"]), (3, ["a", "u", "b"])]
)
def test_required_user_verification_offers_passkeys_only(user_verification, ids) -> None:
    user = holding(token("a"), token("u", U2F), pending("p"), pending("q", U2F), token("b"))
    assert [t.id for t in wa.offered(user, user_verification)] == ids
    assert wa.offered(ROBOT, user_verification) == []
    assert wa.REQUIRED == 1


def test_a_credential_finds_its_ready_key_only() -> None:
    user = holding(pending("p", credential_id="cred-u"), token("a"), token("u", U2F))
    assert wa.token_of_credential(user, "cred-u") == token("u", U2F)
    assert wa.token_of_credential(user, "cred-a") == token("a")
    assert wa.token_of_credential(holding(pending("p", credential_id="c")), "c") is None
    assert wa.token_of_credential(user, "cred-zz") is None
    assert wa.token_of_credential(ROBOT, "cred-a") is None


# -- sign counts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stored", "new", "clone"),
    [(0, 0, False), (0, 5, False), (5, 5, True), (5, 4, True), (5, 6, False), (5, 0, True)],
)
def test_a_counter_in_use_must_grow(stored: int, new: int, clone: bool) -> None:
    assert wa.is_clone(stored, new) is clone


def test_the_clone_warning() -> None:
    with expect(InvalidArgument, "WEBAU-4M90s", "Errors.User.WebAuthN.CloneWarning"):
        raise wa.clone_warning()


@pytest.mark.parametrize(("kind", "prefix"), [(PASSKEY, PW), (U2F, MFA)])
@pytest.mark.parametrize(("stored", "new"), [(0, 0), (0, 5), (5, 6)])
def test_a_use_stores_the_new_sign_count(kind: str, prefix: str, stored: int, new: int) -> None:
    user = holding(token("a"), token("k", kind, sign_count=stored), token("b", sign_count=1))
    change = wa.record_use(user, "k", new, NOW)
    assert change.error is None
    assert change.events == (
        UserEvent(f"{prefix}signcount.changed", {"webAuthNTokenId": "k", "signCount": new}),
    )
    expected = holding(token("a"), token("k", kind, sign_count=new), token("b", sign_count=1))
    assert change.user == replace(expected, change_ms=NOW)


@pytest.mark.parametrize(("kind", "prefix"), [(PASSKEY, PW), (U2F, MFA)])
@pytest.mark.parametrize(("stored", "new"), [(5, 5), (5, 4), (5, 0)])
def test_a_count_that_went_back_is_a_clone_recorded_and_refused(kind, prefix, stored, new) -> None:
    user = holding(token("a"), token("k", kind, sign_count=stored))
    change = wa.record_use(user, "k", new, NOW)
    assert change.events == (
        UserEvent(f"{prefix}clone.detected", {"webAuthNTokenId": "k", "signCount": new}),
    )
    assert change.user == replace(user, change_ms=NOW)
    assert isinstance(change.error, InvalidArgument)
    assert (change.error.error_id, change.error.key) == (
        "WEBAU-4M90s",
        "Errors.User.WebAuthN.CloneWarning",
    )


def test_only_a_ready_key_is_used() -> None:
    user = holding(token("a"), pending("p"))
    for token_id in ("p", "zz"):
        with expect(FailedPrecondition, "COMMAND-Aej7i", "Errors.User.WebAuthN.NotFound"):
            wa.record_use(user, token_id, 9, NOW)


# -- registration codes --------------------------------------------------------------------------
def rc(code_id: str, expires_ms: int = NOW) -> RegistrationCode:
    return RegistrationCode(id=code_id, code_hash=f"hash-{code_id}", expires_ms=expires_ms)


@pytest.mark.parametrize(
    ("returned", "payload"),
    [
        (False, {"id": "c", "expiry": 3_600_000 * 1_000_000}),
        (True, {"id": "c", "expiry": 3_600_000 * 1_000_000, "codeReturned": True}),
    ],
)
def test_a_code_is_its_hash_valid_for_an_hour(returned: bool, payload: dict[str, object]) -> None:
    user = holding(token("a"), codes=(rc("old", NOW + 1),))
    change = wa.add_registration_code(user, "c", "hash-c", NOW, returned=returned)
    assert change.error is None
    assert change.events == (UserEvent(f"{CODE}added", payload),)
    assert change.user == replace(
        holding(token("a"), codes=(rc("old", NOW + 1), rc("c", NOW + 3_600_000))), change_ms=NOW
    )
    assert wa.CODE_TTL_MS == 3_600_000


def test_expired_codes_are_dropped_one_at_its_expiry_is_kept() -> None:
    user = holding(codes=(rc("gone", NOW - 1), rc("now", NOW)))
    change = wa.add_registration_code(user, "c", "hash-c", NOW, returned=False)
    assert [c.id for c in codes_of(change)] == ["now", "c"]


def test_four_codes_get_a_fifth_then_the_oldest_makes_room() -> None:
    four = tuple(rc(f"c{i}", NOW + 10 - i) for i in range(4))
    change = wa.add_registration_code(holding(codes=four), "n", "h", NOW, returned=False)
    assert [c.id for c in codes_of(change)] == ["c0", "c1", "c2", "c3", "n"]
    five = (*four, rc("c4", NOW + 20))
    change = wa.add_registration_code(holding(codes=five), "n", "h", NOW, returned=False)
    assert [c.id for c in codes_of(change)] == ["c0", "c1", "c2", "c4", "n"]
    assert wa.MAX_CODES == 5


def test_a_right_code_is_used_up_at_its_expiry_millisecond() -> None:
    user = holding(token("a"), codes=(rc("x", NOW + 5), rc("c", NOW), rc("y", NOW + 5)))
    seen: list[str] = []

    def matches(code_hash: str) -> bool:
        seen.append(code_hash)
        return code_hash == "hash-c"

    change = wa.use_registration_code(user, "c", matches, NOW)
    assert seen == ["hash-c"]
    assert change.error is None
    assert change.events == (UserEvent(f"{CODE}check.succeeded", {"id": "c"}),)
    assert change.user == replace(
        holding(token("a"), codes=(rc("x", NOW + 5), rc("y", NOW + 5))), change_ms=NOW
    )


@pytest.mark.parametrize(
    ("code_id", "now_ms", "right"),
    [("c", NOW + 1, True), ("c", NOW, False), ("zz", NOW, True)],
    ids=["expired", "wrong", "unknown"],
)
def test_a_failed_code_is_recorded_and_refused(code_id: str, now_ms: int, right: bool) -> None:
    user = holding(codes=(rc("c", NOW),))
    change = wa.use_registration_code(user, code_id, lambda _: right, now_ms)
    assert change.events == (UserEvent(f"{CODE}check.failed", {"id": code_id}),)
    assert change.user == replace(user, change_ms=now_ms)
    assert isinstance(change.error, InvalidArgument)
    assert (change.error.error_id, change.error.key) == (
        "COMMAND-Dhz8i",
        "Errors.User.Code.Invalid",
    )


# -- what a ready key makes of the user ----------------------------------------------------------
P = "AUTHENTICATION_METHOD_TYPE_"


@pytest.mark.parametrize(
    ("keys", "second_factor", "methods"),
    [
        ((), False, []),
        ((pending("p"), pending("q", U2F)), False, []),
        ((token("a"),), True, ["PASSKEY"]),
        ((token("u", U2F),), True, ["U2F"]),
        ((pending("p"), token("u", U2F)), True, ["U2F"]),
        ((token("a"), pending("q", U2F)), True, ["PASSKEY"]),
        ((token("u", U2F), token("a")), True, ["PASSKEY", "U2F"]),
    ],
)
def test_only_a_ready_key_is_a_factor_and_a_method(keys, second_factor, methods) -> None:
    user = holding(*keys)
    assert users.has_second_factor(user) is second_factor
    assert users.to_view(user).second_factor is second_factor
    assert user_factors.auth_method_types(user) == [P + "PASSWORD"] + [P + m for m in methods]
