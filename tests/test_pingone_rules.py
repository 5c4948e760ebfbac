"""The pure parts of PingOne's facade, table-tested: no Redis, no HTTP.

The presented ``ST`` token guard of the session rules, the request model's validation
(``app.services.pingone_wire``), the resource it renders, the user-agent adapter, and the
client address behind trusted proxies.
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import msgspec
import pytest
from msgspec.structs import replace

from actors import machine
from actors.commands import (
    DeleteSession,
    Evidence,
    ResetAuthentication,
    SetSession,
    SignOnReport,
    TouchSession,
)
from actors.errors import NotFound
from actors.model import AgentDetails, Location
from app.process.settings import Settings
from app.services import pingone_wire as wire
from app.services.pingone_wire import InvalidField
from app.services.user_agents import parse_user_agent
from app.transports.client_ip import resolve
from tests.test_rules_activity import PWD, ctx
from tests.test_rules_session import NOW, session

SEED_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:103.0) Gecko/20100101 Firefox/103.0"
REPORT = SignOnReport(active_ms=NOW, location=Location(at_ms=NOW, remote_ip="192.0.2.1"))


# -- the presented token ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        TouchSession(presented_st_hash="old"),
        ResetAuthentication(presented_st_hash="old"),
        DeleteSession(presented_st_hash="old"),
        SetSession(report=REPORT, presented_st_hash="old"),
    ],
)
def test_a_replaced_token_names_no_session(command: Any):
    state = replace(session(), st_token_hash="new")
    with pytest.raises(NotFound):
        machine.decide(state, command, Evidence(), ctx())
    with pytest.raises(NotFound):
        machine.decide(replace(state, st_token_hash=""), command, Evidence(), ctx())


def test_the_current_token_passes_the_guard():
    state = replace(session(), st_token_hash="h")
    assert machine.decide(state, DeleteSession(presented_st_hash="h"), Evidence(), ctx())
    assert machine.decide(
        state, SetSession(report=REPORT, presented_st_hash="h"), Evidence(), ctx()
    )


# -- the request model ------------------------------------------------------------------------
def body(**fields: Any) -> wire.SessionIn:
    values: dict[str, Any] = {
        "activeAt": "2022-08-17T01:21:30.117Z",
        "userAgent": SEED_UA,
        "user": {"id": "u1"},
        "lastSignOn": {
            "authenticators": ["pwd"],
            "remoteIp": "174.1.62.19",
            "withAuthenticator": {
                "pwd": {"at": "2022-08-17T01:21:30.116Z", "policy": {"id": "p", "type": "PINGONE"}}
            },
        },
        **fields,
    }
    return msgspec.convert(values, wire.SessionIn, strict=False)


@pytest.mark.parametrize(
    ("given", "minutes"),
    [("144000", 144000), (72000, 72000), (" 5 ", 5), (1, 1), (5_270_400, 5_270_400), (None, None)],
)
def test_idle_timeouts_are_numbers_or_numeric_strings(given: Any, minutes: int | None):
    validated = wire.validate(body(idleTimeoutInMinutes=given))
    assert validated.idle_timeout_ms == (None if minutes is None else minutes * 60_000)


@pytest.mark.parametrize("given", [0, -1, "0", "-5", "1e3", "\uff15", "", "9" * 13, 5_270_401])
def test_idle_timeouts_out_of_range_or_not_numbers_are_refused(given: Any):
    with pytest.raises(InvalidField) as raised:
        wire.validate(body(idleTimeoutInMinutes=given))
    assert raised.value.target == "idleTimeoutInMinutes"


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"activeAt": "2022-02-30T00:00:00Z"}, "activeAt"),
        ({"activeAt": "1969-12-31T23:59:59Z"}, "activeAt"),
        ({"activeAt": "9999-12-31T23:59:59-23:59"}, "activeAt"),
        ({"userAgent": "x" * 2049}, "userAgent"),
        ({"userAgent": "bad\nagent"}, "userAgent"),
        ({"token": "x" * 15}, "token"),
        ({"token": "x" * 513}, "token"),
        ({"token": "sixteen chars\x00!!"}, "token"),
        ({"lastSignOn": {"remoteIp": "300.1.1.1"}}, "lastSignOn.remoteIp"),
    ],
)
def test_bad_fields_name_their_target(fields: dict[str, Any], target: str):
    with pytest.raises(InvalidField) as raised:
        wire.validate(body(**fields))
    assert raised.value.target == target


def test_an_anonymous_session_ignores_even_a_broken_sign_on():
    validated = wire.validate(body(user=None, lastSignOn={"remoteIp": "not an ip"}))
    assert validated.sign_on is None
    assert validated.location("198.51.100.1", NOW) == Location(at_ms=NOW, remote_ip="198.51.100.1")


def test_the_location_is_the_latest_authenticators():
    validated = wire.validate(body())
    assert validated.location("198.51.100.1", NOW) == Location(
        at_ms=1660699290116, remote_ip="174.1.62.19"
    )


# -- the resource -----------------------------------------------------------------------------
def test_dates_always_have_three_fractional_digits():
    assert wire.iso_ms(1660699290000) == "2022-08-17T01:21:30.000Z"
    assert wire.iso_ms(1660699290116) == "2022-08-17T01:21:30.116Z"
    assert wire.iso_ms(0) == "1970-01-01T00:00:00.000Z"


def test_the_rendered_sign_on_names_the_latest_authenticator():
    state = replace(session(), sign_on=PWD, idle_timeout_ms=90_000)
    out = wire.render(state, base_url="https://sso.example.com", env_id="e1")
    assert out.last_sign_on is not None
    assert out.last_sign_on.policy == wire.PolicyOut("p2", "PINGONE")  # "otp", a second later
    assert out.idle_timeout_in_minutes == 1.5
    assert out.links.self.href == f"https://sso.example.com/v1/environments/e1/sessions/{state.id}"


def test_a_session_without_agent_or_sign_on_renders_nulls():
    out = wire.render(session(), base_url="http://h", env_id="e1")
    assert (out.browser, out.operating_system, out.device, out.last_sign_on) == (None,) * 4


# -- the user-agent adapter -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SEED_UA, ("Firefox", "103.0", "Mac OS X", "10.15", "Mac")),
        ("curl/8.1.2", ("curl", "8.1", "Other", "", "Other")),
        ("", ("Other", "", "Other", "", "Other")),
    ],
)
def test_user_agents_parse_to_families_and_major_minor(raw: str, expected: tuple[str, ...]):
    parsed = parse_user_agent(raw)
    assert parsed == AgentDetails(
        raw=raw,
        browser_name=expected[0],
        browser_version=expected[1],
        os_name=expected[2],
        os_version=expected[3],
        device_type=expected[4],
    )


# -- the client address -----------------------------------------------------------------------
TRUSTED = (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(
    ("peer", "header", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, 10.1.1.1", "203.0.113.9"),  # trusted hops skipped
        ("127.0.0.1", "198.51.100.1, 203.0.113.9, 10.1.1.1", "203.0.113.9"),  # not further
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # an untrusted peer's header is ignored
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "garbage, 10.1.1.1", "10.1.1.1"),  # stops at what it cannot read
        ("127.0.0.1", "10.2.2.2, 10.1.1.1", "10.2.2.2"),  # all trusted: the farthest
        ("127.0.0.1", " 2001:db8::1 ", "2001:db8::1"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(peer: str, header: str, client: str):
    assert resolve(peer, header, TRUSTED) == client


def test_without_trusted_proxies_the_header_is_never_read():
    assert resolve("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


@pytest.mark.parametrize(
    "fields",
    [
        {"trusted_proxies": "10.0.0.0/33"},
        {"public_url": "sso.example.com"},
        {"public_url": "https://h/p"},
    ],
)
def test_bad_edge_settings_are_refused_at_start(fields: dict[str, Any]):
    with pytest.raises(ValueError):
        Settings(**fields).validate()
