"""Personal access tokens of machine users: only the secret's hash is stored.

A PAT is one hash ``pat:{T}`` (user, hash, expiry, creation). ``pat_add.lua`` checks in the
user's slot that the user is a live machine user and records
``user.personal.access.token.added``; the relay creates ``pat:{T}`` with the event, so a
token exists exactly when its event does. Re-adding the same token is a no-op, so the
configured admin token is ensured at start; token ids are random, so the read of whether
one is taken before the write is not raced but by the same token's own ensure.
"""

from __future__ import annotations

import msgspec

from actors import users as rules
from actors.errors import AlreadyExists, FailedPrecondition, NotFound, ServiceError
from actors.tokens import IssuedToken
from storage import keys
from storage.codec import IndexOp
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import counted, text, to_json

_OPS = msgspec.msgpack.Encoder()


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
        stored = await self.get_pat(issued.token_id)
        same = stored is not None and (stored.user_id, stored.secret_hash) == (
            user_id,
            issued.token_hash,
        )
        if same:  # the same token again: nothing to do, if its user is still a machine user
            with mapped_errors():
                state, kind, seq = await self._redis.execute(
                    "HMGET", keys.user(user_id), "state", "kind", "seq"
                )
            if not state or text(state) == "USER_STATE_DELETED":
                return _pat_status("GONE", 0)
            return _pat_status(
                "OK" if text(kind) == "machine" else "NOT_MACHINE", int(text(seq) or 0)
            )
        if stored is not None and (stored.user_id != user_id or not replace):
            raise AlreadyExists("COMMAND-patExists", "Errors.Token.Invalid")
        event = rules.pat_added_event(issued.token_id, expiration_ms)
        fields = ["user", user_id, "hash", issued.token_hash, "exp", str(expiration_ms or 0)]
        token = IndexOp(
            "hset", keys.pat(issued.token_id), expiration_ms or 0, to_json([*fields, "ctime", now])
        )
        status, seq = await self._run(
            "pat_add",
            [keys.user(user_id), keys.aggregate_relay(keys.user(user_id))],
            [
                now,
                to_json(event.payload),
                _OPS.encode([token]),
                *counted(self._envelope("user", user_id, creator_id, now)),
            ],
            relayed=keys.user(user_id),
            touches=[token.key],
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
    }
    if status in errors:
        raise errors[status]
    return sequence
