"""Verification codes (email, phone, password reset): only a code's hash is ever stored.

Pure: the plain code arrives already generated (the API layer draws it from ``secrets``).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec

NS_PER_MS = 1_000_000


class Code(msgspec.Struct, frozen=True, kw_only=True):
    """A pending verification code: only its SHA-256 is kept, with its expiry."""

    hash: str
    expires_ms: int


def code_hash(user_id: str, code: str) -> str:
    """Bound to the user, so one hash cannot be replayed for another user's code."""
    return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()


def code_matches(user_id: str, code: Code | None, given: str, now_ms: int) -> bool:
    if code is None or code.expires_ms < now_ms:
        return False
    return hmac.compare_digest(code.hash, code_hash(user_id, given))


def new_code(user_id: str, plain: str, expires_ms: int) -> Code:
    return Code(hash=code_hash(user_id, plain), expires_ms=expires_ms)


def code_added_payload(code: Code, returned: bool, now_ms: int) -> dict[str, Any]:
    """The payload of a ``*.code.added`` event: the code's lifetime in ns, never the code."""
    payload: dict[str, Any] = {"expiry": (code.expires_ms - now_ms) * NS_PER_MS}
    if returned:
        payload["codeReturned"] = True
    return payload
