"""What counts as an absolute http(s) URL here: redirect targets and provider endpoints.

One definition, as a pattern the wire schemas publish (so a client and a fuzzer know it) and
as a check the rules run: ASCII host names (IDNs in punycode), an optional port 1..65535, a
path or query of anything but whitespace, control characters and ``#``; no credentials, no
fragment, at most 2048 characters. Pure.
"""

from __future__ import annotations

import re

MAX_URL_LENGTH = 2048
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: ``(?!\n)$``: Python's ``$`` also matches before a final newline, ECMAScript's does not.
HTTP_URL_PATTERN = (
    rf"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::{_PORT})?(?:[/?][^\s\x00-\x1f#]*)?(?!\n)$"
)
_HTTP_URL = re.compile(HTTP_URL_PATTERN)


def is_http_url(url: str) -> bool:
    return len(url) <= MAX_URL_LENGTH and _HTTP_URL.search(url) is not None
