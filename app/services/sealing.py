"""Secrets at rest: AES-256-GCM sealing and keyed hashes under the master key.

Why: a TOTP seed must be readable again (to compute codes), so it is encrypted; OTP and
recovery codes need only be compared, so only a keyed hash (HMAC-SHA256) is kept. A dump of
Redis alone then reveals neither.

Every sealed value and every keyed hash names the key it was made with (a short key id), so
the master key can be rotated: ``SESSIOND_MASTER_KEY`` seals and hashes, and the previous key
(``SESSIOND_MASTER_KEY_OLD``) still opens and matches what it made. Each use has its own
``purpose`` string, bound into the ciphertext (AES-GCM associated data) and into the hash key
(HKDF), so a value sealed for one purpose never opens for another.

Formats: sealed ``<kid>.<base64url(nonce ‖ ciphertext+tag)>``; digest ``<kid>.<hex>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
_NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that does not open: unknown key, wrong purpose, or tampered."""


def parse_master_key(text: str) -> bytes:
    """Base64 (standard or url-safe, padding optional) of exactly 32 bytes."""
    cleaned = text.strip()
    try:
        raw = base64.urlsafe_b64decode(
            cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4)
        )
    except (binascii.Error, ValueError):
        raise ValueError("the master key must be base64") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"the master key must be {KEY_BYTES} bytes base64-encoded, not {len(raw)}")
    return raw


def new_master_key() -> str:
    """A fresh master key as the base64 text ``SESSIOND_MASTER_KEY`` takes."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _derive(key: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(key)


class _Key:
    __slots__ = ("aead", "hmac_key", "kid")

    def __init__(self, raw: bytes) -> None:
        self.kid = _derive(raw, "sessiond key id").hex()[:8]
        self.aead = AESGCM(_derive(raw, "sessiond aead"))
        self.hmac_key = _derive(raw, "sessiond hmac")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """The current master key (seals, hashes) and optionally the previous one (opens)."""

    def __init__(self, current: bytes, old: bytes | None = None) -> None:
        self._current = _Key(current)
        self._keys = {self._current.kid: self._current}
        if old is not None:
            previous = _Key(old)
            self._keys.setdefault(previous.kid, previous)

    @classmethod
    def from_text(cls, current: str, old: str = "") -> Keyring:
        return cls(parse_master_key(current), parse_master_key(old) if old else None)

    def seal(self, purpose: str, plaintext: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.aead.encrypt(nonce, plaintext, purpose.encode())
        return f"{self._current.kid}.{_b64(nonce + sealed)}"

    def open(self, purpose: str, sealed: str) -> bytes:
        kid, _, body = sealed.partition(".")
        key = self._keys.get(kid)
        if key is None:
            raise SealError("sealed with an unknown key")
        try:
            raw = _unb64(body)
            return key.aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError("sealed value does not open") from None

    def digest(self, purpose: str, value: str) -> str:
        """A keyed hash of ``value`` under the current key."""
        return f"{self._current.kid}.{self._mac(self._current, purpose, value)}"

    def digests(self, purpose: str, value: str) -> list[str]:
        """``value``'s keyed hash under every known key (to find it among stored ones)."""
        return [f"{key.kid}.{self._mac(key, purpose, value)}" for key in self._keys.values()]

    def matches(self, purpose: str, value: str, stored: str) -> bool:
        """Constant-time comparison of ``value`` against a digest made by any known key."""
        kid, _, expected = stored.partition(".")
        key = self._keys.get(kid)
        if key is None:
            return False
        return hmac.compare_digest(self._mac(key, purpose, value), expected)

    def needs_reseal(self, sealed_or_digest: str) -> bool:
        """Made with the previous key: worth re-sealing (or re-hashing) when next touched."""
        return not sealed_or_digest.startswith(f"{self._current.kid}.")

    @staticmethod
    def _mac(key: _Key, purpose: str, value: str) -> str:
        return hmac.new(key.hmac_key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()
