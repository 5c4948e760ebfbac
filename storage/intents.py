"""IdP intents in Redis: one hash per intent, its state changed only by compare-and-set.

``intent:{I}`` holds ``state`` (what ``intent_write.lua`` compares) and ``doc`` (the
``actors.idp_intents.Intent`` as MessagePack; its secrets are sealed by the service before
they get here). Key expiry ends an intent that is no longer of use; the rules' own expiry
(``expires_ms``) decides before that. Every step writes ZITADEL's ``idpintent.*`` event.
"""

from __future__ import annotations

import msgspec

from actors.idp_intents import Intent
from storage import keys
from storage.errors import mapped_errors
from storage.user_base import UserStoreBase
from storage.user_codec import to_json

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Intent)


class RedisIntentStore(UserStoreBase):
    async def get_intent(self, intent_id: str) -> Intent | None:
        with mapped_errors():
            raw = await self._redis.execute("HGET", keys.idp_intent(intent_id), "doc")
        if not raw:
            return None
        return _DECODER.decode(raw if isinstance(raw, bytes) else str(raw).encode())

    async def save_intent(
        self,
        expected_state: str,
        intent: Intent,
        *,
        ttl_ms: int,
        event_type: str,
        payload: dict[str, object],
        creator_id: str = "",
    ) -> bool:
        """Store ``intent`` if the stored one is still in ``expected_state`` ("": none yet).

        False when another writer moved it first (the caller lost the race).
        """
        envelope = self._envelope("idpintent", intent.id, creator_id, self._clock.now_ms())
        status, _ = await self._run(
            "intent_write",
            [keys.idp_intent(intent.id), keys.aggregate_relay(keys.idp_intent(intent.id))],
            [
                expected_state,
                intent.state,
                _ENCODER.encode(intent),
                max(ttl_ms, 1),
                event_type,
                to_json(payload),
                self.instance_id,
                *envelope,
            ],
            relayed=keys.idp_intent(intent.id),
        )
        return bool(status == "OK")
