"""Personal access tokens of machine users: only the secret's hash is stored.

A PAT is one hash ``pat:{T}`` (user, hash, expiry); ``pat_add.lua`` checks the user is a live
machine user and writes the token with ``user.personal.access.token.added`` atomically
(re-adding the same token is a no-op, so the configured admin token is ensured at start).
"""

from __future__ import annotations

import msgspec

from actors import users as rules
from actors.errors import AlreadyExists, FailedPrecondition, NotFound, ServiceError
from actors.tokens import IssuedToken
from storage import keys
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import counted, text, to_json


class PatRecord(msgspec.Struct, frozen=True, kw_only=True):
    token_id: str
    user_id: str
    secret_hash: str
    expires_ms: int = 0


class PatStore(UserStoreBase):
    async def add_pat(
        self,
        user_id: str,
        issued: IssuedToken,
        expiration_ms: int | None,
        *,
        creator_id: str = "",
        replace: bool = False,
    ) -> int:
        """Store a machine user's PAT (hash only); returns the user's new sequence.

        ``replace``: a token id this user already holds gets the new secret (rotation).
        """
        now = self._clock.now_ms()
        event = rules.pat_added_event(issued.token_id, expiration_ms)
        status, seq = await self._run(
            "pat_add",
            [
                keys.pat(issued.token_id),
                keys.user(user_id),
                keys.aggregate_relay(keys.user(user_id)),
            ],
            [
                user_id,
                issued.token_hash,
                expiration_ms or 0,
                now,
                to_json(event.payload),
                1 if replace else 0,
                *counted(self._envelope("user", user_id, creator_id, now)),
            ],
            relayed=keys.user(user_id),
        )
        return _pat_status(status, int(seq))

    async def remove_pat(self, token_id: str, user_id: str) -> bool:
        """Delete a PAT of ``user_id`` (a rotated-away admin token); False if not theirs."""
        record = await self.get_pat(token_id)
        if record is None or record.user_id != user_id:
            return False
        with mapped_errors():
            await self._redis.execute("DEL", keys.pat(token_id))
        return True

    async def get_pat(self, token_id: str) -> PatRecord | None:
        with mapped_errors():
            user, secret_hash, exp = await self._redis.execute(
                "HMGET", keys.pat(token_id), "user", "hash", "exp"
            )
        if not user or not secret_hash:
            return None
        return PatRecord(
            token_id=token_id,
            user_id=text(user),
            secret_hash=text(secret_hash),
            expires_ms=int(text(exp) or 0),
        )


def _pat_status(status: str, sequence: int) -> int:
    errors: dict[str, ServiceError] = {
        "GONE": NotFound("COMMAND-Dggw2", "Errors.User.NotFound"),
        "NOT_MACHINE": FailedPrecondition("COMMAND-patHuman", "Errors.User.NotMachine"),
        "EXISTS": AlreadyExists("COMMAND-patExists", "Errors.Token.Invalid"),
    }
    if status in errors:
        raise errors[status]
    return sequence
