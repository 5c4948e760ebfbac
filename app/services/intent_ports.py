"""What IdP sign-in needs from the outside world, as Protocols (the stores, the provider).

The implementations: ``storage.intents.RedisIntentStore``, ``storage.idps`` (configured
providers), ``storage.users.RedisUserStore`` (links) and ``app.idp.client.IdpClient`` (the
outbound OIDC / OAuth 2 client). Tests use the real ones.
"""

from __future__ import annotations

from typing import Protocol

from actors.idp_configs import IdpConfig
from actors.idp_intents import Intent
from app.idp.client import Identity, ProviderSettings


class IntentStore(Protocol):
    async def get_intent(self, intent_id: str) -> Intent | None: ...

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
        """Compare-and-set on the stored state ("": none yet); False if another won."""


class IdpLookup(Protocol):
    async def get(self, idp_id: str) -> IdpConfig | None: ...


class IdpLinkOwners(Protocol):
    async def idp_link_owner(self, idp_id: str, idp_user_id: str) -> str | None:
        """The user linked to the provider's account, if any."""


class IdentityProviderClient(Protocol):
    async def authorization_url(
        self,
        provider: ProviderSettings,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str | None,
    ) -> str: ...

    async def complete(
        self,
        provider: ProviderSettings,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
        nonce: str,
    ) -> Identity:
        """Exchange the code and validate what the provider answered; IdpFailure if not."""
