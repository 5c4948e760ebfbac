"""Who may do what: ZITADEL's default role → permission table and the caller it applies to.

A role is held either on the instance (it then applies everywhere) or on one organization
(it then applies to resources owned by that organization, e.g. sessions of its users).
"""

from __future__ import annotations

import msgspec

_SESSION_ALL = frozenset({"session.read", "session.write", "session.delete", "session.link"})
_READ_ALL = frozenset({"session.read", "user.read", "org.read", "iam.read"})
_USER_ALL = frozenset({"user.read", "user.write", "user.delete", "user.credential.write"})
#: Identity providers: the instance's (``iam.idp.*``) and an organization's (``org.idp.*``).
_IDP_ALL = frozenset({"iam.idp.read", "iam.idp.write", "org.idp.read", "org.idp.write"})
_IDP_READ = frozenset({"iam.idp.read", "org.idp.read"})

#: Default role → permissions, after ZITADEL's cmd/defaults.yaml (session rows verbatim).
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "IAM_OWNER": _SESSION_ALL
    | _READ_ALL
    | _USER_ALL
    | _IDP_ALL
    | {"org.write", "org.create", "iam.write", "iam.member.write", "user.pat.write"},
    "IAM_LOGIN_CLIENT": _SESSION_ALL
    | {"user.read", "user.write", "user.credential.write", "org.read"},
    "IAM_OWNER_VIEWER": _READ_ALL | _IDP_READ,
    "IAM_ORG_MANAGER": frozenset(
        {"session.read", "session.delete", "org.read", "org.write", "org.create", "user.read"}
    ),
    "IAM_USER_MANAGER": frozenset({"session.read", "session.delete"}) | _USER_ALL | {"org.read"},
    "ORG_OWNER": frozenset(
        {
            "session.read",
            "session.delete",
            "org.read",
            "org.write",
            "user.pat.write",
            "org.member.write",
            "org.idp.read",
            "org.idp.write",
        }
    )
    | _USER_ALL,
    "ORG_USER_MANAGER": frozenset({"session.read", "session.delete", "org.read"}) | _USER_ALL,
    "ORG_OWNER_VIEWER": frozenset({"session.read", "org.read", "user.read", "org.idp.read"}),
}
INSTANCE_ROLES = frozenset(r for r in ROLE_PERMISSIONS if r.startswith("IAM_"))
ORG_ROLES = frozenset(r for r in ROLE_PERMISSIONS if r.startswith("ORG_"))


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """Roles held on the instance (``org_id`` empty) or on one organization."""

    roles: tuple[str, ...]
    org_id: str = ""


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller of a request: a machine user's PAT or a user's session."""

    user_id: str
    org_id: str = ""
    #: The organization the request names as its context (``x-zitadel-orgid``), if any:
    #: where management-API resources are read and written.
    context_org_id: str = ""
    grants: tuple[Grant, ...] = ()
    agent_id: str = ""
    #: Where the request comes from, for rate limits: the peer address, or the end user's
    #: address a trusted login client reports (``userAgent.ip``).
    client_ip: str = ""

    def has(self, permission: str, org_id: str | None = None) -> bool:
        """True if an instance role grants it, or a role on ``org_id`` does."""
        for grant in self.grants:
            if grant.org_id and grant.org_id != org_id:
                continue
            if any(permission in ROLE_PERMISSIONS.get(role, ()) for role in grant.roles):
                return True
        return False

    def orgs_with(self, permission: str) -> list[str]:
        """Organizations on which an org-scoped role grants ``permission``."""
        return [
            grant.org_id
            for grant in self.grants
            if grant.org_id
            and any(permission in ROLE_PERMISSIONS.get(role, ()) for role in grant.roles)
        ]


def reports_end_users(caller: Caller) -> bool:
    """A login client (it may link sessions): its ``userAgent.ip`` is the end user's address."""
    return caller.has("session.link")


SYSTEM = Caller(user_id="", grants=(Grant(roles=("IAM_OWNER",)),))
