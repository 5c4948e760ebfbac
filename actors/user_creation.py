"""New users and organizations: the records and the ZITADEL ``*.added`` events.

Pure: ids, verification codes and password hashes arrive already generated, the time as
``now_ms``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.structs import replace

from actors.codes import Code, code_added_payload
from actors.permissions import Grant
from actors.user_names import org_domain
from actors.user_records import (
    Change,
    Email,
    Human,
    Machine,
    Org,
    Phone,
    Profile,
    User,
    UserEvent,
)


class HumanSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What AddHumanUser/CreateUser ask for, with codes and hash already produced."""

    user_id: str
    org_id: str
    username: str
    profile: Profile
    email: Email
    phone: Phone | None = None
    password_hash: str = ""
    password_change_required: bool = False
    email_code_returned: bool = False
    phone_code_returned: bool = False


def new_human(spec: HumanSpec, now_ms: int) -> Change:
    """``user.human.added`` and the verification events of a new human user."""
    profile = spec.profile
    if not profile.display_name:
        profile = replace(profile, display_name=f"{profile.given_name} {profile.family_name}")
    human = Human(
        profile=profile,
        email=spec.email,
        phone=spec.phone,
        password_hash=spec.password_hash,
        password_change_required=spec.password_change_required,
        password_changed_ms=now_ms if spec.password_hash else 0,
    )
    user = User(
        id=spec.user_id,
        org_id=spec.org_id,
        username=spec.username,
        creation_ms=now_ms,
        change_ms=now_ms,
        human=human,
    )
    events = [UserEvent("user.human.added", _human_added_payload(user, human))]
    events += _contact_events(
        "email", spec.email.verified, spec.email.code, spec.email_code_returned, now_ms
    )
    if spec.phone is not None:
        events += _contact_events(
            "phone", spec.phone.verified, spec.phone.code, spec.phone_code_returned, now_ms
        )
    return Change(user, tuple(events))


def _human_added_payload(user: User, human: Human) -> dict[str, Any]:
    profile = human.profile
    payload: dict[str, Any] = {
        "userName": user.username,
        "firstName": profile.given_name,
        "lastName": profile.family_name,
        "displayName": profile.display_name,
        "email": human.email.address,
    }
    optional = {
        "nickName": profile.nick_name,
        "preferredLanguage": profile.preferred_language,
        "gender": profile.gender,
        "phone": human.phone.number if human.phone else "",
        "changeRequired": human.password_change_required,
    }
    payload.update({key: value for key, value in optional.items() if value})
    return payload


def _contact_events(
    kind: str, verified: bool, code: Code | None, returned: bool, now_ms: int
) -> list[UserEvent]:
    if verified:
        return [UserEvent(f"user.human.{kind}.verified")]
    if code is None:
        return []
    return [UserEvent(f"user.human.{kind}.code.added", code_added_payload(code, returned, now_ms))]


def new_machine(
    *,
    user_id: str,
    org_id: str,
    username: str,
    name: str,
    description: str,
    now_ms: int,
    grants: tuple[Grant, ...] = (),
) -> Change:
    user = User(
        id=user_id,
        org_id=org_id,
        username=username,
        creation_ms=now_ms,
        change_ms=now_ms,
        grants=grants,
        machine=Machine(name=name, description=description),
    )
    payload = {"userName": username, "name": name}
    if description:
        payload["description"] = description
    return Change(user, (UserEvent("user.machine.added", payload),))


def new_org(*, org_id: str, name: str, instance_domain: str, now_ms: int) -> tuple[Org, UserEvent]:
    org = Org(id=org_id, name=name, domain=org_domain(name, instance_domain), creation_ms=now_ms)
    return org, UserEvent("org.added", {"name": name})
