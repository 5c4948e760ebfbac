"""Bounds on what one session may hold, so no client can grow a session without limit.

Pure: the numbers come from settings; ``check_metadata`` and ``check_user_agent`` raise
``InvalidArgument`` with a stable id when a request would exceed them. The defaults are far
above what a login UI stores (a few keys of a few bytes) and far below what would slow Redis
or the event streams down (every SetSession publishes the full metadata map).
"""

from __future__ import annotations

import msgspec

from actors.errors import InvalidArgument
from actors.model import UserAgent

#: The largest protobuf Timestamp, 9999-12-31T23:59:59.999Z: no expiration may pass it.
MAX_TIMESTAMP_MS = 253_402_300_799_999


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    metadata_keys: int = 100
    metadata_key_chars: int = 200
    metadata_value_bytes: int = 4096
    metadata_bytes: int = 65536
    header_names: int = 64
    header_values: int = 16
    header_value_bytes: int = 4096


class Rate(msgspec.Struct, frozen=True):
    """``count`` per ``period_ms``, in bursts of up to ``count`` (0 = unlimited)."""

    count: int
    period_ms: int

    @property
    def interval_ms(self) -> int:
        """GCRA's emission interval: the steady spacing between two admitted checks."""
        return max(1, self.period_ms // max(1, self.count))

    @property
    def tolerance_ms(self) -> int:
        """How far ahead of the steady pace a burst may run: ``count - 1`` intervals."""
        return self.interval_ms * max(0, self.count - 1)


UNLIMITED = Rate(0, 1)
_SPAN_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_span_ms(text: str) -> int:
    """Parse "1h", "90m", "300s", "250ms" or bare seconds ("300") into milliseconds."""
    value = text.strip().lower()
    for unit in ("ms", "s", "m", "h", "d"):
        if value.endswith(unit) and value[: -len(unit)].strip().isdigit():
            return int(value[: -len(unit)]) * _SPAN_UNITS_MS[unit]
    if value.isdigit():
        return int(value) * 1000
    raise ValueError(f"not a time span: {text!r}")


def parse_rate(text: str) -> Rate:
    """``"20/1m"`` → 20 per minute; ``"0"`` (or ``"0/..."``) → unlimited."""
    count, _, span = text.strip().partition("/")
    if not count.isdigit():
        raise ValueError(f"not a rate (count/span, e.g. 20/1m): {text!r}")
    if int(count) == 0:
        return UNLIMITED
    period_ms = parse_span_ms(span or "1m")
    if period_ms <= 0:
        raise ValueError(f"a rate needs a positive span: {text!r}")
    return Rate(int(count), period_ms)


def _too_large(error_id: str, key: str, limit: int) -> InvalidArgument:
    return InvalidArgument(error_id, key, extra={"limit": limit})


def check_metadata(metadata: dict[str, bytes], limits: Limits) -> None:
    """The session's metadata after a merge: key count, key length, value and total size."""
    if len(metadata) > limits.metadata_keys:
        raise _too_large(
            "SESSION-metaKeys", "Errors.Session.Metadata.TooMany", limits.metadata_keys
        )
    total = 0
    for key, value in metadata.items():
        if len(key) > limits.metadata_key_chars:
            raise _too_large(
                "SESSION-metaKey", "Errors.Session.Metadata.KeyTooLong", limits.metadata_key_chars
            )
        if len(value) > limits.metadata_value_bytes:
            raise _too_large(
                "SESSION-metaValue",
                "Errors.Session.Metadata.ValueTooLarge",
                limits.metadata_value_bytes,
            )
        total += len(key.encode()) + len(value)
    if total > limits.metadata_bytes:
        raise _too_large(
            "SESSION-metaSize", "Errors.Session.Metadata.TooLarge", limits.metadata_bytes
        )


def check_user_agent(user_agent: UserAgent | None, limits: Limits) -> None:
    """The user agent's header map: names, values per name, bytes per value."""
    if user_agent is None:
        return
    header = user_agent.header
    if len(header) > limits.header_names:
        raise _too_large(
            "SESSION-uaHeaders", "Errors.Session.UserAgent.TooLarge", limits.header_names
        )
    for values in header.values():
        if len(values) > limits.header_values:
            raise _too_large(
                "SESSION-uaValues", "Errors.Session.UserAgent.TooLarge", limits.header_values
            )
        if any(len(value.encode()) > limits.header_value_bytes for value in values):
            raise _too_large(
                "SESSION-uaValue", "Errors.Session.UserAgent.TooLarge", limits.header_value_bytes
            )


def check_expiration(now_ms: int, lifetime_ms: int) -> None:
    """An expiration past year 9999 cannot be represented (protobuf Timestamp, RFC 3339)."""
    if now_ms + lifetime_ms > MAX_TIMESTAMP_MS:
        raise InvalidArgument("SESSION-lifetimeMax", "Errors.Session.LifetimeTooLong")
