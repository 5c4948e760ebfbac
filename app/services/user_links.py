"""User API IdP links: AddIDPLink, ListIDPLinks, RemoveIDPLink (and ``idpLinks`` on create).

A link ties the user to an account at a configured identity provider, so an IdP intent for
that account signs the user in. The caller is the user itself or holds ``user.write``
(``user.read`` to list) on the user's organization; the provider must be configured.
"""

from __future__ import annotations

from collections.abc import Iterable

from actors import user_links as rules
from actors.idp_configs import idp_not_found
from actors.permissions import Caller
from actors.timefmt import rfc3339_ms
from actors.user_records import Change, IdpLink, User
from app.services.intent_ports import IdpLookup
from app.services.intent_wire import (
    AddIDPLinkRequest,
    ListIDPLinksRequest,
    ListIDPLinksResponse,
    RemoveIDPLinkRequest,
)
from app.services.session_wire import ListDetails
from app.services.user_passkeys import UserPasskeys
from app.services.user_wire import DetailsResponse, IDPLink

#: ZITADEL's default and largest page of a list.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class UserLinks(UserPasskeys):
    _idps: IdpLookup

    async def add_idp_link(self, caller: Caller, request: AddIDPLinkRequest) -> DetailsResponse:
        await self._permitted(caller, request.user_id)
        (link,) = await configured_links(self._idps, [request.idp_link])

        def transition(user: User | None, now_ms: int) -> Change:
            return rules.add_link(user, link, now_ms)

        return await self._write(caller, request.user_id, transition)

    async def list_idp_links(
        self, caller: Caller, request: ListIDPLinksRequest
    ) -> ListIDPLinksResponse:
        user = await self._permitted(caller, request.user_id, "user.read")
        links = rules.links_of(user)
        query = request.query
        offset = query.offset if query else 0
        limit = min((query.limit if query else 0) or DEFAULT_LIMIT, MAX_LIMIT)
        shown = links[offset : offset + limit]
        return ListIDPLinksResponse(
            details=ListDetails(
                total_result=str(len(links)),
                processed_sequence=str(user.sequence),
                timestamp=rfc3339_ms(self._clock.now_ms()),
            ),
            result=tuple(
                IDPLink(idp_id=link.idp_id, user_id=link.user_id, user_name=link.user_name)
                for link in shown
            ),
        )

    async def remove_idp_link(
        self, caller: Caller, request: RemoveIDPLinkRequest
    ) -> DetailsResponse:
        await self._permitted(caller, request.user_id)

        def transition(user: User | None, now_ms: int) -> Change:
            return rules.remove_link(user, request.idp_id, request.linked_user_id, now_ms)

        return await self._write(caller, request.user_id, transition)


async def configured_links(idps: IdpLookup, wanted: Iterable[IDPLink]) -> list[IdpLink]:
    """The requested links, each of a configured provider (else 404, nothing written)."""
    links = []
    for link in wanted:
        if await idps.get(link.idp_id) is None:
            raise idp_not_found()
        links.append(IdpLink(idp_id=link.idp_id, user_id=link.user_id, user_name=link.user_name))
    return links


def with_links(change: Change, links: Iterable[IdpLink], now_ms: int) -> Change:
    """A new user's change with its ``idpLinks`` added (a link listed twice is refused)."""
    for link in links:
        step = rules.add_link(change.user, link, now_ms)
        change = Change(step.user, change.events + step.events)
    return change
