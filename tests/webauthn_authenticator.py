"""A software WebAuthn authenticator and client for tests, with no browser.

Why it exists: the passkey and U2F endpoints can only be proven with real signatures over real
authenticator data, and a browser with a virtual authenticator is slow and heavy for a unit
suite. This module plays both halves of ``navigator.credentials``: the *client* (it builds
``clientDataJSON`` from the server's options and the page's origin, and serialises the result
exactly like ``PublicKeyCredential.toJSON()``) and the *authenticator* (key pairs, authenticator
data, flags, the signature counter, "none" attestation).

It depends only on ``cryptography`` and ``cbor2``, so what it produces is independent of the
WebAuthn library the service uses. The client half is deliberately lax where a browser would
be strict (any origin, any RP id): a test must be able to send what a phishing page or a broken
client would send, so the *server* is the one that has to refuse it. Everything a browser
does decide on its own (which credential may answer, ``excludeCredentials``, the UV flag the
authenticator reports) it decides like a browser does, unless a test overrides it explicitly.

All binary values on the wire are base64url without padding, as ``toJSON()`` produces them.
"""

from __future__ import annotations

import base64
import copy
import enum
import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

JSONObject = dict[str, Any]

# authenticator data flag bits (WebAuthn §6.1)
FLAG_UP = 0x01  #: user present
FLAG_UV = 0x04  #: user verified
FLAG_BE = 0x08  #: backup eligible
FLAG_BS = 0x10  #: backed up
FLAG_AT = 0x40  #: attested credential data included
FLAG_ED = 0x80  #: extension data included


class Algorithm(enum.IntEnum):
    """The COSE algorithms this authenticator can create keys for."""

    ES256 = -7
    EDDSA = -8


PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class NotAllowedError(Exception):
    """What a browser rejects ``credentials.get()``/``create()`` with: no usable credential."""


class InvalidStateError(Exception):
    """What a browser rejects ``credentials.create()`` with when ``excludeCredentials`` matches."""


def b64u(data: bytes) -> str:
    """Base64url without padding: the encoding of every binary value in WebAuthn JSON."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """The inverse of :func:`b64u`; accepts padded input too, as servers may send it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact_json(value: Mapping[str, Any]) -> bytes:
    """``clientDataJSON`` the way browsers serialise it: no whitespace, keys in spec order."""
    return json.dumps(value, separators=(",", ":")).encode()


def public_key_options(options: str | Mapping[str, Any]) -> JSONObject:
    """The inner ``publicKey`` object of the server's options, given as JSON text or a dict.

    The server wraps them as ``{"publicKey": {...}}`` (the shape ``navigator.credentials``
    takes); tests may also hand over the inner object itself.
    """
    parsed: Any = json.loads(options) if isinstance(options, str) else options
    if not isinstance(parsed, Mapping):
        raise TypeError("options must be a JSON object")
    inner = parsed.get("publicKey", parsed)
    if not isinstance(inner, Mapping):
        raise TypeError("publicKey must be a JSON object")
    return dict(inner)


@dataclass
class Credential:
    """One key pair held by the authenticator, scoped to one RP and one user handle."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    algorithm: Algorithm
    private_key: PrivateKey
    discoverable: bool
    #: the signature counter as stored in the authenticator
    sign_count: int = 0
    #: how much each assertion adds to the counter; 0 models authenticators that never count
    counter_step: int = 1

    @property
    def id(self) -> str:
        """The credential id as it appears on the wire (``id`` / ``rawId``)."""
        return b64u(self.credential_id)

    def cose_public_key(self) -> bytes:
        """The public key in COSE_Key form, as embedded in the attested credential data."""
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            numbers = key.public_key().public_numbers()
            return cbor2.dumps(
                {
                    1: 2,  # kty: EC2
                    3: int(Algorithm.ES256),
                    -1: 1,  # crv: P-256
                    -2: numbers.x.to_bytes(32, "big"),
                    -3: numbers.y.to_bytes(32, "big"),
                }
            )
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cbor2.dumps({1: 1, 3: int(Algorithm.EDDSA), -1: 6, -2: raw})  # OKP, Ed25519

    def spki_public_key(self) -> bytes:
        """SubjectPublicKeyInfo DER: what ``getPublicKey()`` (and so ``toJSON()``) exposes."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, data: bytes) -> bytes:
        """ES256: DER-encoded ECDSA over SHA-256; EdDSA: the raw 64-byte Ed25519 signature."""
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        return key.sign(data)


def _new_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm is Algorithm.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _flags(*, up: bool, uv: bool, at: bool, be: bool, bs: bool) -> int:
    return (
        (FLAG_UP if up else 0)
        | (FLAG_UV if uv else 0)
        | (FLAG_BE if be else 0)
        | (FLAG_BS if bs else 0)
        | (FLAG_AT if at else 0)
    )


def _rp_id_hash(rp_id: str) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest()


def _descriptor_ids(descriptors: Any) -> list[bytes]:
    """The ids of a list of ``PublicKeyCredentialDescriptor`` JSON objects."""
    if not descriptors:
        return []
    return [b64u_decode(str(item["id"])) for item in descriptors]


@dataclass
class SoftAuthenticator:
    """A software authenticator holding any number of credentials.

    Attributes:
        user_verifying: whether it can verify the user (PIN/biometrics); when it can, it does
            so unless the RP says ``discouraged``, as platform authenticators do.
        attachment: reported as ``authenticatorAttachment`` ("platform" for a passkey
            provider, "cross-platform" for a security key).
        transports: reported in the registration response.
        counter_step: the default counter step of new credentials (0 = never counts).
        backup_eligible: sets BE and BS, as a synced passkey provider does.
        aaguid: the authenticator model id; zero, as "none" attestation usually reports it.
    """

    user_verifying: bool = True
    attachment: str = "platform"
    transports: tuple[str, ...] = ("internal", "hybrid")
    counter_step: int = 1
    backup_eligible: bool = False
    aaguid: bytes = bytes(16)
    credentials: dict[bytes, Credential] = field(default_factory=dict)

    # -- bookkeeping ------------------------------------------------------------------------
    def credential(self, credential_id: str | bytes) -> Credential:
        """A held credential by its wire id or raw bytes."""
        raw = b64u_decode(credential_id) if isinstance(credential_id, str) else credential_id
        return self.credentials[raw]

    def set_sign_count(self, credential_id: str | bytes, count: int) -> None:
        """Put a credential's counter back (or forward): a clone that lagged behind."""
        self.credential(credential_id).sign_count = count

    def set_counter_step(self, credential_id: str | bytes, step: int) -> None:
        """Change how a credential counts from now on (0 = keeps its counter still)."""
        self.credential(credential_id).counter_step = step

    def _default_uv(self, requirement: Any) -> bool:
        return self.user_verifying and requirement != "discouraged"

    # -- navigator.credentials.create() -----------------------------------------------------
    def create(
        self,
        options: str | Mapping[str, Any],
        origin: str,
        *,
        algorithm: Algorithm | int | None = None,
        uv: bool | None = None,
        up: bool = True,
        counter_step: int | None = None,
        sign_count: int = 0,
        rp_id: str | None = None,
        client_data_type: str = "webauthn.create",
    ) -> JSONObject:
        """Register a new credential; returns ``PublicKeyCredential.toJSON()`` of the result.

        Args:
            options: the server's ``publicKeyCredentialCreationOptions`` (wrapped or inner).
            origin: the page's origin written into ``clientDataJSON``.
            algorithm: the key type; default the first of ``pubKeyCredParams`` it supports.
            uv: force the UV flag; default as a user-verifying authenticator would answer.
            up: the UP flag (a real authenticator always sets it).
            counter_step: this credential's counter step (default: the authenticator's).
            sign_count: the counter the attestation reports.
            rp_id: sign for another RP id than the options name (a misbehaving client).
            client_data_type: ``clientDataJSON.type`` (a test may send the wrong ceremony).

        Raises:
            InvalidStateError: a credential of ``excludeCredentials`` is held here.
            NotAllowedError: no offered algorithm is supported, or the one asked for is not
                offered.
        """
        opts = public_key_options(options)
        offered = [int(param["alg"]) for param in opts.get("pubKeyCredParams", [])]
        if algorithm is None:
            supported = [alg for alg in offered if alg in set(Algorithm)]
            if not supported:
                raise NotAllowedError("no offered algorithm is supported")
            chosen = Algorithm(supported[0])
        else:
            chosen = Algorithm(algorithm)
            if chosen not in offered:
                raise NotAllowedError(f"algorithm {chosen.name} not offered by the RP")
        if set(_descriptor_ids(opts.get("excludeCredentials"))) & set(self.credentials):
            raise InvalidStateError("an excluded credential is held by this authenticator")
        selection: Mapping[str, Any] = opts.get("authenticatorSelection") or {}
        discoverable = bool(selection.get("requireResidentKey")) or selection.get(
            "residentKey"
        ) in ("required", "preferred")
        options_rp = str(opts["rp"]["id"])
        credential = Credential(
            credential_id=os.urandom(32),
            rp_id=options_rp,
            user_handle=b64u_decode(str(opts["user"]["id"])),
            algorithm=chosen,
            private_key=_new_key(chosen),
            discoverable=discoverable,
            sign_count=sign_count,
            counter_step=self.counter_step if counter_step is None else counter_step,
        )
        verified = self._default_uv(selection.get("userVerification", "preferred"))
        flags = _flags(
            up=up,
            uv=verified if uv is None else uv,
            at=True,
            be=self.backup_eligible,
            bs=self.backup_eligible,
        )
        auth_data = (
            _rp_id_hash(rp_id or options_rp)
            + bytes([flags])
            + struct.pack(">I", sign_count)
            + self.aaguid
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        client_data = self._client_data(client_data_type, str(opts["challenge"]), origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials[credential.credential_id] = credential
        extensions: JSONObject = {}
        if (opts.get("extensions") or {}).get("credProps"):
            extensions["credProps"] = {"rk": discoverable}
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(attestation),
                "authenticatorData": b64u(auth_data),
                "transports": list(self.transports),
                "publicKey": b64u(credential.spki_public_key()),
                "publicKeyAlgorithm": int(chosen),
            },
            "clientExtensionResults": extensions,
            "authenticatorAttachment": self.attachment,
        }

    # -- navigator.credentials.get() --------------------------------------------------------
    def candidates(self, options: str | Mapping[str, Any]) -> list[Credential]:
        """The credentials a browser would let answer these request options.

        Those of the options' ``rpId``; restricted to ``allowCredentials`` when it is not
        empty, else (a discoverable-credential request) only the discoverable ones.
        """
        opts = public_key_options(options)
        allowed = _descriptor_ids(opts.get("allowCredentials"))
        rp_id = str(opts.get("rpId", ""))
        return [
            cred
            for cred in self.credentials.values()
            if cred.rp_id == rp_id
            and (cred.credential_id in allowed if allowed else cred.discoverable)
        ]

    def get(
        self,
        options: str | Mapping[str, Any],
        origin: str,
        *,
        uv: bool | None = None,
        up: bool = True,
        credential_id: str | bytes | None = None,
        ignore_allow_list: bool = False,
        rp_id: str | None = None,
        client_data_type: str = "webauthn.get",
        user_handle: bool | None = None,
    ) -> JSONObject:
        """Make an assertion; returns ``PublicKeyCredential.toJSON()`` of the result.

        Args:
            options: the server's ``publicKeyCredentialRequestOptions`` (wrapped or inner).
            origin: the page's origin written into ``clientDataJSON``.
            uv: force the UV flag; default as a user-verifying authenticator would answer.
            up: the UP flag.
            credential_id: which of the candidates answers (default: the first).
            ignore_allow_list: let ``credential_id`` answer even if the browser would not offer
                it (another RP, not in ``allowCredentials``): a hostile client.
            rp_id: hash another RP id into the authenticator data than the credential's.
            client_data_type: ``clientDataJSON.type``.
            user_handle: include ``userHandle``; default only for discoverable credentials,
                as browsers return it.

        Raises:
            NotAllowedError: no credential may answer these options.
        """
        opts = public_key_options(options)
        if ignore_allow_list:
            if credential_id is None:
                raise ValueError("ignore_allow_list needs a credential_id")
            credential = self.credential(credential_id)
        else:
            allowed = self.candidates(opts)
            if credential_id is not None:
                wanted = self.credential(credential_id)
                allowed = [cred for cred in allowed if cred is wanted]
            if not allowed:
                raise NotAllowedError("no credential of this authenticator may answer")
            credential = allowed[0]
        credential.sign_count += credential.counter_step
        verified = self._default_uv(opts.get("userVerification", "preferred"))
        flags = _flags(
            up=up,
            uv=verified if uv is None else uv,
            at=False,
            be=self.backup_eligible,
            bs=self.backup_eligible,
        )
        auth_data = (
            _rp_id_hash(rp_id or credential.rp_id)
            + bytes([flags])
            + struct.pack(">I", credential.sign_count)
        )
        client_data = self._client_data(client_data_type, str(opts["challenge"]), origin)
        signature = credential.sign(auth_data + hashlib.sha256(client_data).digest())
        response: JSONObject = {
            "clientDataJSON": b64u(client_data),
            "authenticatorData": b64u(auth_data),
            "signature": b64u(signature),
        }
        if credential.discoverable if user_handle is None else user_handle:
            response["userHandle"] = b64u(credential.user_handle)
        return {
            "id": credential.id,
            "rawId": credential.id,
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": self.attachment,
        }

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        # the browser decodes the challenge and encodes it again: padding never survives
        return _compact_json(
            {
                "type": kind,
                "challenge": b64u(b64u_decode(challenge)),
                "origin": origin,
                "crossOrigin": False,
            }
        )


# -- tampering, for negative tests ------------------------------------------------------------
def _flip_last_byte(encoded: str) -> str:
    raw = bytearray(b64u_decode(encoded))
    raw[-1] ^= 0x01
    return b64u(bytes(raw))


def tamper_signature(credential: Mapping[str, Any]) -> JSONObject:
    """A copy whose signature is still well-formed but wrong.

    The last byte is flipped: for ES256 that is inside the DER ``s`` integer, for Ed25519 inside
    ``S``, so parsers accept it and only the verification can fail.
    """
    out = copy.deepcopy(dict(credential))
    out["response"]["signature"] = _flip_last_byte(out["response"]["signature"])
    return out


def client_data(credential: Mapping[str, Any]) -> JSONObject:
    """The decoded ``clientDataJSON`` of a credential response."""
    parsed: JSONObject = json.loads(b64u_decode(credential["response"]["clientDataJSON"]))
    return parsed


def tamper_client_data(credential: Mapping[str, Any], **changes: Any) -> JSONObject:
    """A copy whose ``clientDataJSON`` has ``changes`` applied after signing.

    The signature covers the hash of the client data, so any change must be refused.
    """
    out = copy.deepcopy(dict(credential))
    data = client_data(out)
    data.update(changes)
    out["response"]["clientDataJSON"] = b64u(_compact_json(data))
    return out


def tamper_authenticator_data(
    credential: Mapping[str, Any],
    *,
    set_flags: int = 0,
    clear_flags: int = 0,
    sign_count: int | None = None,
    rp_id: str | None = None,
) -> JSONObject:
    """A copy of an assertion whose authenticator data was changed after signing.

    Typical use: claim UV (``set_flags=FLAG_UV``) on an assertion made without it, raise the
    counter, or swap the RP id hash; the signature no longer matches any of these.
    """
    out = copy.deepcopy(dict(credential))
    raw = bytearray(b64u_decode(out["response"]["authenticatorData"]))
    if rp_id is not None:
        raw[:32] = _rp_id_hash(rp_id)
    raw[32] = (raw[32] | set_flags) & ~clear_flags & 0xFF
    if sign_count is not None:
        raw[33:37] = struct.pack(">I", sign_count)
    out["response"]["authenticatorData"] = b64u(bytes(raw))
    return out


def truncate(credential: Mapping[str, Any], fields: Iterable[str] = ("signature",)) -> JSONObject:
    """A copy with each named response field cut to half its encoded length."""
    out = copy.deepcopy(dict(credential))
    for name in fields:
        value = str(out["response"][name])
        out["response"][name] = value[: len(value) // 2]
    return out


def authenticator_flags(credential: Mapping[str, Any]) -> int:
    """The flags byte of a response's authenticator data (assertion or registration)."""
    response = credential["response"]
    if "authenticatorData" in response:
        return b64u_decode(response["authenticatorData"])[32]
    att: Any = cbor2.loads(b64u_decode(response["attestationObject"]))
    return int(att["authData"][32])


def sign_count_of(credential: Mapping[str, Any]) -> int:
    """The counter a response's authenticator data reports."""
    raw = b64u_decode(credential["response"]["authenticatorData"])
    return int(struct.unpack(">I", raw[33:37])[0])
