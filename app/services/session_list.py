"""ListSessions' queries (spec §6.1) turned into one ``SessionFilter`` for the store.

Pure: validation of the query kinds, the "mine" forms (``creatorQuery {}``, ``userAgentQuery
{}``) resolved against the caller, and the enums by name or number. Which indexes answer the
filter is storage's business (``storage.session_search``).
"""

from __future__ import annotations

import msgspec

from actors.errors import InvalidArgument, ValidationFailed
from actors.permissions import Caller
from actors.queries import METHODS, SessionFilter, TimeCondition
from app.services import session_wire as wire


def enum_value(value: str | int, names: dict[str, int], where: str) -> int:
    """A protojson enum given by name or number; anything undefined is a 400."""
    number = names.get(value) if isinstance(value, str) else value
    if number is None or number not in names.values():
        raise ValidationFailed(f"invalid {where}: value must be one of the defined enum values")
    return number


def _time(raw: wire.TimestampQuery, field: str) -> TimeCondition:
    value = raw.creation_date if field == "creationDate" else raw.expiration_date
    at_ms = wire.timestamp_ms(value, f"{field}Query.{field}")
    return TimeCondition(enum_value(raw.method, METHODS, f"{field}Query.Method"), at_ms)


def _one(current: str | None, new: str) -> str:
    """Two different values for one attribute can never both match: ANDed, nothing does."""
    return new if current in (None, new) else "\x00no-match"


def to_filter(queries: list[wire.SearchQuery], who: Caller) -> SessionFilter:
    fields: dict[str, object] = {}
    creation: list[TimeCondition] = []
    expiration: list[TimeCondition] = []
    for query in queries:
        kinds = [name for name in query.__struct_fields__ if getattr(query, name) is not None]
        if len(kinds) != 1:
            raise ValidationFailed("invalid SearchQuery.Query: value is required")
        if query.ids_query is not None:
            ids = frozenset(query.ids_query.ids)
            old = fields.get("ids")
            fields["ids"] = ids & old if isinstance(old, frozenset) else ids
        elif query.user_id_query is not None:
            fields["user_id"] = _one(_str(fields, "user_id"), query.user_id_query.id)
        elif query.creator_query is not None:
            creator = _given_or_own(
                query.creator_query.id, who.user_id, "CreatorQuery.Id", "GRPC-x8n24uh"
            )
            fields["creator_id"] = _one(_str(fields, "creator_id"), creator)
        elif query.user_agent_query is not None:
            agent = _given_or_own(
                query.user_agent_query.fingerprint_id,
                who.agent_id,
                "UserAgentQuery.FingerprintId",
                "GRPC-x8n23uh",
            )
            fields["fingerprint_id"] = _one(_str(fields, "fingerprint_id"), agent)
        elif query.creation_date_query is not None:
            creation.append(_time(query.creation_date_query, "creationDate"))
        elif query.expiration_date_query is not None:
            expiration.append(_time(query.expiration_date_query, "expirationDate"))
    fields["creation"] = tuple(creation)
    fields["expiration"] = tuple(expiration)
    return msgspec.convert(fields, SessionFilter)


def _str(fields: dict[str, object], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) else None


def _given_or_own(wanted: str | None, own: str, field: str, error_id: str) -> str:
    """``{}`` means "mine" (the caller's user or user agent); ``""`` is invalid (spec §6.1)."""
    if wanted == "":
        raise ValidationFailed(
            f"invalid {field}: value length must be between 1 and 200 runes, inclusive"
        )
    if wanted is None:
        if not own:
            raise InvalidArgument(error_id, "List.Query.Invalid")
        return own
    return wanted
