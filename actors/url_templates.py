"""The ``urlTemplate`` of OTP e-mails: Go ``text/template`` syntax, reduced to its fields.

ZITADEL renders the template with sample data when the request arrives and refuses it if
parsing or rendering fails (DOMAIN-oGh5e), so a bad template is a 400 at once, never a
failed delivery later. Here a template may contain text and ``{{.Field}}`` actions (spaces
and Go's trim markers ``{{- .Field -}}`` allowed) naming the six fields ZITADEL offers;
anything else is an error. Pure.
"""

from __future__ import annotations

import re

from actors.errors import InvalidArgument

#: The fields of an OTP e-mail's link; verification and reset links have ``OrgID`` instead
#: of ``SessionID`` (ZITADEL's URL data of each message).
FIELDS = ("Code", "UserID", "LoginName", "DisplayName", "PreferredLanguage", "SessionID")
USER_FIELDS = ("Code", "UserID", "OrgID", "LoginName", "DisplayName", "PreferredLanguage")
#: A passkey registration link also names the code's id (ZITADEL's ``CodeID``).
PASSKEY_FIELDS = (*USER_FIELDS, "CodeID")
_ACTION = re.compile(r"\{\{(-\s)?\s*\.([A-Za-z]+)\s*(\s-)?\}\}")
_OPEN = "{{"


def invalid_template() -> InvalidArgument:
    return InvalidArgument("DOMAIN-oGh5e", "Errors.User.InvalidURLTemplate")


def validate(template: str, fields: tuple[str, ...] = FIELDS) -> None:
    """Raise InvalidArgument (DOMAIN-oGh5e) unless ``render`` would succeed."""
    render(template, dict.fromkeys(fields, "x"))


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with each action replaced by its value (trim markers honoured).

    ``values`` names the fields the template may use; any other field is an error.
    """
    out: list[str] = []
    at = 0
    while True:
        start = template.find(_OPEN, at)
        if start < 0:
            out.append(template[at:])
            return "".join(out)
        match = _ACTION.match(template, start)
        if match is None or match.group(2) not in values:
            raise invalid_template()
        text = template[at:start]
        out.append(text.rstrip() if match.group(1) else text)
        out.append(values[match.group(2)])
        at = match.end()
        if match.group(3):
            while at < len(template) and template[at].isspace():
                at += 1
