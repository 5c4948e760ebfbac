"""Randomness at the edge: ids and session tokens (the rules receive them ready-made).

One ``SecretsMinter`` serves the whole process (sessions, users, organizations, PATs), so
every id has one shape and one source.
"""

from __future__ import annotations

import secrets
import time

from actors import tokens
from actors.tokens import IssuedToken

#: 2023-01-01T00:00:00Z; ids are (ms since then) << 22 | 22 random bits, like Sonyflake ids:
#: numeric strings that sort roughly by creation time.
_ID_EPOCH_MS = 1_672_531_200_000


class SecretsMinter:
    """``actors.ports.IdSource`` and ``TokenMinter`` backed by the OS CSPRNG."""

    def new_id(self) -> str:
        return str(((time.time_ns() // 1_000_000 - _ID_EPOCH_MS) << 22) | secrets.randbits(22))

    def session_token(self, session_id: str) -> IssuedToken:
        # one read of the CSPRNG for both: 8 bytes of token id (hex) and the secret
        random_bytes = secrets.token_bytes(8 + tokens.SECRET_BYTES)
        return tokens.issue(
            tokens.SESSION_PREFIX, session_id, random_bytes[:8].hex(), random_bytes[8:]
        )

    def pat(self) -> IssuedToken:
        """A new personal access token ``p.<tokenId>.<secret>``."""
        token_id = self.new_id()
        return tokens.issue(
            tokens.PAT_PREFIX, token_id, token_id, secrets.token_bytes(tokens.SECRET_BYTES)
        )
