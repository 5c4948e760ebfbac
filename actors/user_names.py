"""How users and organizations are named: org domains, login names, display names, gender.

Pure. Login names are ZITADEL's ``username`` and ``username@<org domain>``; the index that
resolves them is case-insensitive.
"""

from __future__ import annotations

import re

from actors.errors import ValidationFailed
from actors.user_records import User

#: protojson enum names, by number (input accepts either).
GENDERS = ("GENDER_UNSPECIFIED", "GENDER_FEMALE", "GENDER_MALE", "GENDER_DIVERSE")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def slug(name: str) -> str:
    """Lower-case, runs of anything but ``a-z0-9`` become one ``-``."""
    return _SLUG_JUNK.sub("-", name.lower()).strip("-") or "org"


def org_domain(org_name: str, instance_domain: str) -> str:
    """ZITADEL's generated org domain: ``<slug(name)>.<instance domain>``."""
    return f"{slug(org_name)}.{instance_domain}"


def login_names(user: User, domain: str) -> list[str]:
    """``username`` and ``username@<org domain>``; the first is the preferred one."""
    return [user.username, f"{user.username}@{domain}"]


def login_name_keys(user: User, domain: str) -> list[str]:
    """The case-insensitive index entries of ``login_names`` (lower-cased)."""
    return [name.lower() for name in login_names(user, domain)]


def display_name(user: User) -> str:
    if user.human is not None:
        profile = user.human.profile
        return profile.display_name or f"{profile.given_name} {profile.family_name}".strip()
    return user.machine.name if user.machine is not None else user.username


def gender_name(value: str | int | None) -> str:
    """Enum input as name or number → name ("" for unspecified); unknown → InvalidArgument."""
    if value is None or value in ("", 0, GENDERS[0]):
        return ""
    if isinstance(value, int) and 0 < value < len(GENDERS):
        return GENDERS[value]
    if isinstance(value, str) and value in GENDERS:
        return value
    raise ValidationFailed("invalid Profile.Gender: value must be one of the defined enum values")
