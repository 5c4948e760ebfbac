"""The software authenticator is proven against py_webauthn itself, with no server involved.

If these pass, a failure of the API tests that use the authenticator is the server's; if the
authenticator produced something py_webauthn (an independent relying-party library) refuses,
the API tests would prove nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tests.webauthn_authenticator import (
    FLAG_UP,
    FLAG_UV,
    Algorithm,
    InvalidStateError,
    NotAllowedError,
    SoftAuthenticator,
    authenticator_flags,
    b64u,
    b64u_decode,
    client_data,
    public_key_options,
    sign_count_of,
    tamper_authenticator_data,
    tamper_client_data,
    tamper_signature,
    truncate,
)

RP_ID = "login.example.com"
ORIGIN = f"https://{RP_ID}"
UNPADDED = re.compile(r"^[A-Za-z0-9_-]*$")
ALGORITHMS = [Algorithm.ES256, Algorithm.EDDSA]


def registration_options(
    *,
    user_id: bytes = b"user-123",
    uv: UserVerificationRequirement = UserVerificationRequirement.REQUIRED,
    resident: ResidentKeyRequirement = ResidentKeyRequirement.REQUIRED,
    exclude: list[bytes] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """py_webauthn's creation options, wrapped as the service sends them; (challenge, JSON)."""
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="sessiond",
        user_name="alice",
        user_id=user_id,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=resident, user_verification=uv
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in exclude or []],
    )
    return options.challenge, {"publicKey": json.loads(options_to_json(options))}


def request_options(
    allow: list[bytes] | None = None,
    uv: UserVerificationRequirement = UserVerificationRequirement.REQUIRED,
) -> tuple[bytes, dict[str, Any]]:
    options = generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid in allow or []],
        user_verification=uv,
    )
    return options.challenge, {"publicKey": json.loads(options_to_json(options))}


def register(
    auth: SoftAuthenticator, algorithm: Algorithm, **options: Any
) -> tuple[bytes, bytes, int]:
    """Registers one credential; (credential id, COSE public key, sign count) as verified."""
    challenge, opts = registration_options(**options)
    response = auth.create(opts, ORIGIN, algorithm=algorithm)
    verified = verify_registration_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    return verified.credential_id, verified.credential_public_key, verified.sign_count


def authenticate(
    response: dict[str, Any], challenge: bytes, public_key: bytes, count: int, **kw: Any
) -> Any:
    return verify_authentication_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=public_key,
        credential_current_sign_count=count,
        **kw,
    )


# -- registration ---------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_registration_verifies_with_uv_and_none_attestation(algorithm: Algorithm):
    auth = SoftAuthenticator()
    challenge, opts = registration_options()
    response = auth.create(opts, ORIGIN, algorithm=algorithm)
    verified = verify_registration_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    assert verified.fmt == "none"
    assert verified.user_verified is True
    assert verified.sign_count == 0
    assert verified.credential_id == b64u_decode(response["id"])
    assert response["response"]["publicKeyAlgorithm"] == int(algorithm)
    assert auth.credential(response["id"]).user_handle == b"user-123"


def test_the_json_is_what_to_json_of_a_browser_posts():
    auth = SoftAuthenticator()
    _, opts = registration_options()
    created = auth.create(opts, ORIGIN)
    assert set(created) == {
        "id",
        "rawId",
        "type",
        "response",
        "clientExtensionResults",
        "authenticatorAttachment",
    }
    assert created["type"] == "public-key"
    assert created["id"] == created["rawId"]
    assert created["authenticatorAttachment"] == "platform"
    assert created["clientExtensionResults"] == {}
    assert {"clientDataJSON", "attestationObject"} <= set(created["response"])
    binary = ["clientDataJSON", "attestationObject", "authenticatorData", "publicKey"]
    for name in binary:
        assert UNPADDED.match(created["response"][name]), name
    assert client_data(created) == {
        "type": "webauthn.create",
        "challenge": opts["publicKey"]["challenge"],
        "origin": ORIGIN,
        "crossOrigin": False,
    }
    _, request = request_options([b64u_decode(created["id"])])
    asserted = auth.get(request, ORIGIN)
    assert set(asserted["response"]) == {
        "clientDataJSON",
        "authenticatorData",
        "signature",
        "userHandle",
    }
    assert all(UNPADDED.match(value) for value in asserted["response"].values())
    assert client_data(asserted)["type"] == "webauthn.get"


def test_options_are_taken_wrapped_inner_or_as_text():
    _, wrapped = registration_options()
    inner = wrapped["publicKey"]
    assert public_key_options(wrapped) == inner
    assert public_key_options(inner) == inner
    assert public_key_options(json.dumps(wrapped)) == inner
    for given in (wrapped, inner, json.dumps(inner)):
        assert SoftAuthenticator().create(given, ORIGIN)["type"] == "public-key"


def test_the_first_offered_supported_algorithm_is_chosen_and_an_unoffered_one_refused():
    _, opts = registration_options()
    opts["publicKey"]["pubKeyCredParams"] = [
        {"type": "public-key", "alg": -257},
        {"type": "public-key", "alg": -8},
    ]
    auth = SoftAuthenticator()
    assert auth.create(opts, ORIGIN)["response"]["publicKeyAlgorithm"] == -8
    with pytest.raises(NotAllowedError):
        auth.create(opts, ORIGIN, algorithm=Algorithm.ES256)


def test_a_registration_without_uv_is_refused_when_uv_is_required():
    auth = SoftAuthenticator()
    challenge, opts = registration_options()
    response = auth.create(opts, ORIGIN, uv=False)
    assert authenticator_flags(response) & FLAG_UV == 0
    assert authenticator_flags(response) & FLAG_UP
    with pytest.raises(InvalidRegistrationResponse, match="verif"):
        verify_registration_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
            require_user_verification=True,
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID"),
        ({"client_data_type": "webauthn.get"}, "type"),
    ],
)
def test_registration_for_the_wrong_origin_rp_or_ceremony_is_refused(
    changes: dict[str, Any], message: str
):
    challenge, opts = registration_options()
    origin = changes.pop("origin", ORIGIN)
    response = SoftAuthenticator().create(opts, origin, **changes)
    with pytest.raises(InvalidRegistrationResponse, match=message):
        verify_registration_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_registration_for_another_challenge_is_refused():
    _, opts = registration_options()
    other, _ = registration_options()
    response = SoftAuthenticator().create(opts, ORIGIN)
    with pytest.raises(InvalidRegistrationResponse, match="challenge"):
        verify_registration_response(
            credential=response,
            expected_challenge=other,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_exclude_credentials_is_honoured():
    auth = SoftAuthenticator()
    first, _, _ = register(auth, Algorithm.ES256)
    _, opts = registration_options(exclude=[first])
    with pytest.raises(InvalidStateError):
        auth.create(opts, ORIGIN)
    assert len(auth.credentials) == 1
    _, other = registration_options(exclude=[b"somebody else's key"])
    auth.create(other, ORIGIN)
    assert len(auth.credentials) == 2


# -- assertions -------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_assertions_verify_and_the_counter_increments(algorithm: Algorithm):
    auth = SoftAuthenticator()
    cid, public_key, count = register(auth, algorithm)
    for expected in (1, 2, 3):
        challenge, opts = request_options([cid])
        response = auth.get(opts, ORIGIN)
        verified = authenticate(
            response, challenge, public_key, count, require_user_verification=True
        )
        assert verified.new_sign_count == expected
        assert verified.user_verified is True
        assert verified.credential_id == cid
        count = verified.new_sign_count
    assert auth.credential(cid).sign_count == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_uv_is_configurable_per_call_and_missing_uv_fails_a_required_check(algorithm: Algorithm):
    auth = SoftAuthenticator()
    cid, public_key, count = register(auth, algorithm)
    challenge, opts = request_options([cid])
    response = auth.get(opts, ORIGIN, uv=False)
    assert authenticator_flags(response) == FLAG_UP
    verified = authenticate(response, challenge, public_key, count)
    assert verified.user_verified is False
    challenge, opts = request_options([cid])
    with pytest.raises(InvalidAuthenticationResponse, match="User verification"):
        authenticate(
            auth.get(opts, ORIGIN, uv=False),
            challenge,
            public_key,
            1,
            require_user_verification=True,
        )


def test_discouraged_means_no_uv_by_default_and_required_means_uv():
    auth = SoftAuthenticator()
    cid, _, _ = register(auth, Algorithm.ES256)
    discouraged = request_options([cid], UserVerificationRequirement.DISCOURAGED)[1]
    preferred = request_options([cid], UserVerificationRequirement.PREFERRED)[1]
    required = request_options([cid], UserVerificationRequirement.REQUIRED)[1]
    assert authenticator_flags(auth.get(discouraged, ORIGIN)) & FLAG_UV == 0
    assert authenticator_flags(auth.get(preferred, ORIGIN)) & FLAG_UV
    assert authenticator_flags(auth.get(required, ORIGIN)) & FLAG_UV
    assert (
        authenticator_flags(
            SoftAuthenticator(user_verifying=False).create(registration_options()[1], ORIGIN)
        )
        & FLAG_UV
        == 0
    )


def test_a_counter_that_stays_zero_is_accepted_as_never_counting():
    auth = SoftAuthenticator(counter_step=0)
    cid, public_key, count = register(auth, Algorithm.EDDSA)
    for _ in range(2):
        challenge, opts = request_options([cid])
        response = auth.get(opts, ORIGIN)
        assert sign_count_of(response) == 0
        assert authenticate(response, challenge, public_key, count).new_sign_count == 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_clone_with_a_counter_set_back_is_refused(algorithm: Algorithm):
    auth = SoftAuthenticator()
    cid, public_key, _ = register(auth, algorithm)
    for _ in range(3):
        auth.get(request_options([cid])[1], ORIGIN)
    stored = auth.credential(cid).sign_count  # what the server would have seen last: 3
    auth.set_sign_count(cid, 1)  # the clone lags two assertions behind
    challenge, opts = request_options([cid])
    response = auth.get(opts, ORIGIN)
    assert sign_count_of(response) == 2
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        authenticate(response, challenge, public_key, stored)


def test_allow_credentials_picks_the_credential_and_refuses_foreign_ones():
    auth = SoftAuthenticator()
    first, first_key, _ = register(auth, Algorithm.ES256)
    second, second_key, _ = register(auth, Algorithm.EDDSA, user_id=b"user-456")
    challenge, opts = request_options([second])
    response = auth.get(opts, ORIGIN)
    assert b64u_decode(response["id"]) == second
    assert b64u_decode(response["response"]["userHandle"]) == b"user-456"
    assert authenticate(response, challenge, second_key, 0).credential_id == second
    challenge, opts = request_options([first, second])
    response = auth.get(opts, ORIGIN, credential_id=second)
    assert b64u_decode(response["id"]) == second
    with pytest.raises(NotAllowedError):
        auth.get(request_options([b"not held here"])[1], ORIGIN)
    with pytest.raises(NotAllowedError):
        auth.get(request_options([first])[1], ORIGIN, credential_id=second)
    forced = auth.get(
        request_options([first])[1], ORIGIN, credential_id=second, ignore_allow_list=True
    )
    assert b64u_decode(forced["id"]) == second
    assert first_key != second_key


def test_an_empty_allow_list_offers_only_discoverable_credentials_of_the_rp():
    auth = SoftAuthenticator()
    register(auth, Algorithm.ES256, resident=ResidentKeyRequirement.DISCOURAGED)
    with pytest.raises(NotAllowedError):
        auth.get(request_options()[1], ORIGIN)
    passkey, _, _ = register(auth, Algorithm.ES256)
    assert b64u_decode(auth.get(request_options()[1], ORIGIN)["id"]) == passkey
    other_rp = request_options()[1]
    other_rp["publicKey"]["rpId"] = "other.example"
    with pytest.raises(NotAllowedError):
        auth.get(other_rp, ORIGIN)


def test_a_non_discoverable_key_returns_no_user_handle():
    auth = SoftAuthenticator(attachment="cross-platform")
    challenge, opts = registration_options(
        resident=ResidentKeyRequirement.DISCOURAGED, uv=UserVerificationRequirement.DISCOURAGED
    )
    created = auth.create(opts, ORIGIN)
    assert authenticator_flags(created) & FLAG_UV == 0
    verified = verify_registration_response(
        credential=created,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    challenge, request = request_options(
        [verified.credential_id], UserVerificationRequirement.DISCOURAGED
    )
    asserted = auth.get(request, ORIGIN)
    assert "userHandle" not in asserted["response"]
    assert asserted["authenticatorAttachment"] == "cross-platform"
    result = authenticate(asserted, challenge, verified.credential_public_key, 0)
    assert result.user_verified is False


# -- tampering helpers: each one is refused by the relying party ----------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "tamper",
    [
        tamper_signature,
        lambda r: tamper_client_data(r, challenge=b64u(b"another challenge")),
        lambda r: tamper_client_data(r, origin="https://evil.example"),
        lambda r: tamper_client_data(r, extra="x"),
        lambda r: tamper_authenticator_data(r, sign_count=99),
        lambda r: tamper_authenticator_data(r, clear_flags=FLAG_UV),
        lambda r: truncate(r, ["signature"]),
        lambda r: truncate(r, ["authenticatorData"]),
    ],
    ids=[
        "signature",
        "challenge",
        "origin",
        "client-data-extra",
        "counter",
        "flags",
        "truncated-signature",
        "truncated-authenticator-data",
    ],
)
def test_tampered_assertions_are_refused(algorithm: Algorithm, tamper: Any):
    auth = SoftAuthenticator()
    cid, public_key, _ = register(auth, algorithm)
    challenge, opts = request_options([cid])
    good = auth.get(opts, ORIGIN)
    with pytest.raises(InvalidAuthenticationResponse):
        authenticate(tamper(good), challenge, public_key, 0)
    assert authenticate(good, challenge, public_key, 0).new_sign_count == 1  # the original holds


def test_claiming_uv_after_signing_breaks_the_signature():
    auth = SoftAuthenticator()
    cid, public_key, _ = register(auth, Algorithm.ES256)
    challenge, opts = request_options([cid])
    forged = tamper_authenticator_data(auth.get(opts, ORIGIN, uv=False), set_flags=FLAG_UV)
    assert authenticator_flags(forged) & FLAG_UV
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        authenticate(forged, challenge, public_key, 0, require_user_verification=True)


def test_an_assertion_for_another_rp_id_is_refused():
    auth = SoftAuthenticator()
    cid, public_key, _ = register(auth, Algorithm.EDDSA)
    challenge, opts = request_options([cid])
    response = auth.get(opts, ORIGIN, rp_id="example.com")
    with pytest.raises(InvalidAuthenticationResponse, match="RP ID"):
        authenticate(response, challenge, public_key, 0)
