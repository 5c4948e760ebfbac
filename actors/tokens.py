"""Session tokens: ``s.<sessionId>.<secret>``; only SHA-256 of the secret is ever stored.

The secret is 32 random bytes (256 bits), base64url without padding. Because it is
high-entropy, an unsalted SHA-256 is enough to make the stored value useless to a thief, and
comparison happens in constant time. Randomness is injected: ``issue`` takes the bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

SESSION_PREFIX = "s"
PAT_PREFIX = "p"
SECRET_BYTES = 32


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A freshly minted token: ``plain`` goes to the client once, the rest is stored."""

    token_id: str
    token_hash: str
    plain: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(prefix: str, owner_id: str, token_id: str, random_bytes: bytes) -> IssuedToken:
    secret = base64.urlsafe_b64encode(random_bytes).rstrip(b"=").decode()
    return IssuedToken(
        token_id=token_id, token_hash=hash_secret(secret), plain=f"{prefix}.{owner_id}.{secret}"
    )


def as_pat(token: str) -> str:
    """A configured token of any shape, as a PAT: ``p.static.<sha256(token)>``.

    Lets ``SESSIOND_ADMIN_TOKEN`` be any high-entropy string; the stored hash is then the hash
    of its SHA-256, so nothing reversible is kept either way.
    """
    parts = split(token)
    if parts is not None and parts[0] == PAT_PREFIX:
        return token
    return f"{PAT_PREFIX}.static.{hashlib.sha256(token.encode()).hexdigest()}"


def split(token: str) -> tuple[str, str, str] | None:
    """``(prefix, owner_id, secret)`` or None when the token is not of our shape."""
    prefix, _, rest = token.partition(".")
    owner_id, _, secret = rest.rpartition(".")
    if not prefix or not owner_id or not secret:
        return None
    return prefix, owner_id, secret


def verify(token: str, *, prefix: str, owner_id: str, stored_hash: str) -> bool:
    """Constant-time check that ``token`` is the current token of ``owner_id``."""
    parts = split(token)
    if parts is None or not stored_hash:
        return False
    given_prefix, given_owner, secret = parts
    same_hash = hmac.compare_digest(hash_secret(secret), stored_hash)
    return same_hash and given_prefix == prefix and given_owner == owner_id
