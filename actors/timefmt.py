"""Wire formats of time: RFC 3339 timestamps and protobuf ``Duration`` strings ("300s").

Pure conversions between those strings and integer milliseconds; no clock is read here.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_RFC3339 = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?([+-]\d{2}:\d{2})$")
_DURATION = re.compile(r"^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$")


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS``; cached because strftime costs ~2 µs and writes cluster in time."""
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    # strftime's %Y drops the zeros of years before 1000 on glibc: RFC 3339 needs four digits
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S")


def rfc3339_ms3(ms: int) -> str:
    """RFC 3339 UTC with exactly 3 fractional digits (PingOne's dates)."""
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


def rfc3339_ms(ms: int) -> str:
    """RFC 3339 UTC with 0 or 3 fractional digits, as protojson prints a Timestamp."""
    seconds, millis = divmod(ms, 1000)
    text = _second(seconds)
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def parse_rfc3339_ms(text: str) -> int:
    """Any RFC 3339 offset in, milliseconds since the epoch out; ValueError if malformed."""
    value = text.strip()
    if value.endswith(("z", "Z")):
        value = value[:-1] + "+00:00"
    match = _RFC3339.match(value)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    head, frac, offset = match.groups()
    parsed = dt.datetime.fromisoformat(head + offset)
    micros = int(((frac or ".0")[1:] + "000000")[:6])
    delta = parsed - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + micros // 1000


def parse_duration_ms(text: str) -> int:
    """Protobuf Duration JSON ("300s", "1.5s", "-2s") to milliseconds; ValueError if malformed."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    sign, whole, frac = match.groups()
    ms = int(whole) * 1000 + int(((frac or "") + "000")[:3])
    return -ms if sign else ms


def format_duration_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return f"{seconds}.{millis:03d}s" if millis else f"{seconds}s"
