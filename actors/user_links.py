"""A user's links to accounts at identity providers (AddIDPLink, ``idpLinks``, removal).

A link says "this provider's user X is our user U": an IdP intent for (idp, X) then signs in
U (spec §4.4 step 5). A link is unique per (idp, provider user id) across all users; the
store claims it atomically with the user write. Pure: no I/O.
"""

from __future__ import annotations

from msgspec.structs import replace

from actors.errors import AlreadyExists, FailedPrecondition, NotFound
from actors.user_records import Change, IdpLink, User, UserEvent, changed, existing

#: At most this many links per user (a list that is read on every sign-in must stay small).
MAX_LINKS = 20


def link_event(kind: str, link: IdpLink) -> UserEvent:
    return UserEvent(
        f"user.human.externalidp.{kind}",
        {"idpConfigId": link.idp_id, "userId": link.user_id, "displayName": link.user_name},
    )


def link_taken() -> AlreadyExists:
    """The link is held already: by this user (AddIDPLink twice) or by another one."""
    return AlreadyExists("COMMAND-39nf2", "Errors.User.ExternalIDP.AlreadyExists")


def add_link(user: User | None, link: IdpLink, now_ms: int) -> Change:
    """Link ``user`` (a human) to the provider's account; the same link twice is refused."""
    user = existing(user, "COMMAND-2M0fs")
    human = user.human
    if human is None:
        raise FailedPrecondition("COMMAND-4M9ds", "Errors.User.NotHuman")
    if any(_same(held, link) for held in human.idp_links):
        raise link_taken()
    if len(human.idp_links) >= MAX_LINKS:
        raise FailedPrecondition("COMMAND-linkMax", "Errors.User.ExternalIDP.TooMany")
    return changed(
        user,
        now_ms,
        (link_event("added", link),),
        human=replace(human, idp_links=(*human.idp_links, link)),
    )


def remove_link(user: User | None, idp_id: str, idp_user_id: str, now_ms: int) -> Change:
    user = existing(user, "COMMAND-1M9xR")
    human = user.human
    held = [
        link
        for link in (human.idp_links if human else ())
        if link.idp_id == idp_id and link.user_id == idp_user_id
    ]
    if human is None or not held:
        raise NotFound("COMMAND-1M9xR", "Errors.User.ExternalIDP.NotFound")
    kept = tuple(link for link in human.idp_links if link not in held)
    return changed(
        user, now_ms, (link_event("removed", held[0]),), human=replace(human, idp_links=kept)
    )


def remove_provider_links(user: User | None, idp_id: str, now_ms: int) -> Change:
    """Every link of ``user`` to a provider that was deleted (ZITADEL's cascade).

    NotFound when there is none left (another cascade, or the user removed it meanwhile).
    """
    user = existing(user, "COMMAND-1M9xR")
    human = user.human
    gone = tuple(link for link in links_of(user) if link.idp_id == idp_id)
    if human is None or not gone:
        raise NotFound("COMMAND-1M9xR", "Errors.User.ExternalIDP.NotFound")
    kept = tuple(link for link in human.idp_links if link.idp_id != idp_id)
    events = tuple(link_event("cascade.removed", link) for link in gone)
    return changed(user, now_ms, events, human=replace(human, idp_links=kept))


def links_of(user: User) -> tuple[IdpLink, ...]:
    return user.human.idp_links if user.human is not None else ()


def _same(a: IdpLink, b: IdpLink) -> bool:
    return a.idp_id == b.idp_id and a.user_id == b.user_id
