"""User agents parsed by uap-core's rules (``ua-parser`` with its Rust regex backend).

Parsed once, when a session's user agent is written (``AgentDetails``), never on reads.
Families are the parser's ("Firefox", "Mac OS X", "Mac"; "Other" where it knows none);
versions are ``major.minor`` where the parser found them.
"""

from __future__ import annotations

from functools import lru_cache

import ua_parser

from actors.model import AgentDetails

#: Real user agents are a few hundred characters; longer ones are refused by the facade.
MAX_USER_AGENT_CHARS = 2048


def _version(major: str | None, minor: str | None) -> str:
    if not major:
        return ""
    return f"{major}.{minor}" if minor else major


@lru_cache(maxsize=4096)
def parse_user_agent(raw: str) -> AgentDetails:
    """The parsed form of ``raw``; a login UI's few distinct agents are parsed once each."""
    result = ua_parser.parse(raw).with_defaults()
    browser, system, device = result.user_agent, result.os, result.device
    return AgentDetails(
        raw=raw,
        browser_name=browser.family,
        browser_version=_version(browser.major, browser.minor),
        os_name=system.family,
        os_version=_version(system.major, system.minor),
        device_type=device.family,
    )
