"""Tokens, bounds, rates, time formats and permissions, pure: the small rules the rest relies on."""

from __future__ import annotations

import contextlib
import hashlib

import pytest

from actors import limits, timefmt, tokens
from actors.errors import InvalidArgument
from actors.limits import Limits, Rate
from actors.model import UserAgent
from actors.permissions import SYSTEM, Caller, Grant, reports_end_users
from tests.test_rules_users import expect

SECRET = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"  # base64url of 32 x 0x01, no padding
SECRET_HASH = "56d5fa7333f6d747db42c239407e5da4c32f4c79f35d092b134fd35a402d9c5c"


# -- tokens --------------------------------------------------------------------------------


class TestIssue:
    def test_a_token_is_prefix_owner_and_an_unpadded_base64url_secret(self):
        issued = tokens.issue("s", "sess1", "tid1", b"\x01" * 32)
        assert issued == tokens.IssuedToken(
            token_id="tid1", token_hash=SECRET_HASH, plain=f"s.sess1.{SECRET}"
        )

    def test_padding_is_stripped_and_url_safe_characters_are_kept(self):
        issued = tokens.issue("p", "u1", "t", b"\xfb" * 31)
        secret = "-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-_v7-w"
        assert issued.plain == f"p.u1.{secret}"
        assert issued.token_hash == hashlib.sha256(secret.encode()).hexdigest()

    def test_the_secret_is_never_cut_short(self):
        issued = tokens.issue("s", "sess1", "t", bytes(27) + b"\x00\x00\x17")  # ends in "X"
        secret = "A" * 39 + "X"
        assert issued.plain == f"s.sess1.{secret}"
        assert issued.token_hash == hashlib.sha256(secret.encode()).hexdigest()

    def test_only_the_hash_of_the_secret_is_kept(self):
        assert tokens.hash_secret(SECRET) == SECRET_HASH


class TestSplit:
    @pytest.mark.parametrize(
        ("token", "parts"),
        [
            ("s.sess1.secret", ("s", "sess1", "secret")),
            ("s.a.b.secret", ("s", "a.b", "secret")),  # the owner may hold dots
        ],
    )
    def test_our_shape(self, token, parts):
        assert tokens.split(token) == parts

    @pytest.mark.parametrize(
        "token", ["", "s", "s.", "s.owner", "s.owner.", ".owner.secret", "s..secret", "plain"]
    )
    def test_anything_else(self, token):
        assert tokens.split(token) is None


class TestVerify:
    TOKEN = tokens.issue("s", "sess1", "tid1", b"\x01" * 32)

    def verify(self, token: str, owner_id: str = "sess1", stored_hash: str = SECRET_HASH) -> bool:
        return tokens.verify(token, prefix="s", owner_id=owner_id, stored_hash=stored_hash)

    def test_the_current_token_verifies(self):
        assert self.verify(self.TOKEN.plain) is True

    def test_a_rotated_token_does_not(self):
        newer = tokens.issue("s", "sess1", "tid2", b"\x02" * 32)
        assert self.verify(self.TOKEN.plain, stored_hash=newer.token_hash) is False

    def test_another_prefix_does_not(self):
        assert self.verify(f"p.sess1.{SECRET}") is False

    @pytest.mark.parametrize(
        "token", ["", "garbage", "s.sess1", f"s..{SECRET}", f".sess1.{SECRET}"]
    )
    def test_a_token_of_another_shape_does_not(self, token):
        assert self.verify(token) is False

    def test_no_stored_hash_never_verifies(self):
        assert self.verify(self.TOKEN.plain, stored_hash="") is False
        assert self.verify("s.sess1.x", stored_hash="") is False


def test_a_token_verifies_only_for_the_session_it_was_issued_for():
    """The same secret issued for two sessions still names its own session only."""
    first = tokens.issue("s", "sess1", "t1", b"\x07" * 32)
    second = tokens.issue("s", "sess2", "t2", b"\x07" * 32)
    assert first.token_hash == second.token_hash
    assert tokens.verify(first.plain, prefix="s", owner_id="sess1", stored_hash=first.token_hash)
    assert not tokens.verify(
        first.plain, prefix="s", owner_id="sess2", stored_hash=second.token_hash
    )


class TestAsPat:
    def test_a_pat_stays_as_it_is(self):
        assert tokens.as_pat("p.u1.secret") == "p.u1.secret"

    @pytest.mark.parametrize("token", ["my-admin-token", "s.u1.secret", "x.static.y"])
    def test_anything_else_becomes_the_pat_of_its_sha256(self, token):
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert tokens.as_pat(token) == f"p.static.{digest}"
        assert tokens.split(tokens.as_pat(token)) == ("p", "static", digest)

    def test_a_known_admin_token(self):
        assert tokens.as_pat("my-admin-token") == (
            "p.static.05a6853495d2e60541027074d6bf7f11f13f266060d3817e131c4bd77d43f84f"
        )


# -- rates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("90s", 90_000),
        ("2m", 120_000),
        ("3h", 10_800_000),
        ("2d", 172_800_000),
        ("300", 300_000),
        (" 5S ", 5_000),
        ("1H", 3_600_000),
        ("7 m", 420_000),
        ("1D", 86_400_000),
        ("10MS", 10),
    ],
)
def test_time_spans(text, ms):
    assert limits.parse_span_ms(text) == ms


@pytest.mark.parametrize("text", ["", "ms", "1x", "1.5s", "-1s", "s1", "1 2s", "h"])
def test_not_a_time_span(text):
    with pytest.raises(ValueError, match="not a time span"):
        limits.parse_span_ms(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/1m", Rate(20, 60_000)),
        ("20", Rate(20, 60_000)),  # a minute when no span is given
        ("5/", Rate(5, 60_000)),
        (" 3/10s ", Rate(3, 10_000)),
        ("1/1ms", Rate(1, 1)),
        ("0", limits.UNLIMITED),
        ("0/1h", limits.UNLIMITED),
    ],
)
def test_rates(text, rate):
    assert limits.parse_rate(text) == rate


def test_not_a_rate():
    with pytest.raises(ValueError, match="not a rate"):
        limits.parse_rate("many/1m")
    with pytest.raises(ValueError, match="a rate needs a positive span: '5/0s'"):
        limits.parse_rate("5/0s")
    with pytest.raises(ValueError, match="not a time span"):
        limits.parse_rate("5/soon")


@pytest.mark.parametrize(
    ("rate", "interval", "tolerance"),
    [
        (Rate(20, 60_000), 3_000, 57_000),
        (Rate(1, 1_000), 1_000, 0),
        (Rate(3, 2), 1, 2),  # never a zero interval
        (limits.UNLIMITED, 1, 0),
    ],
)
def test_gcra_interval_and_burst_tolerance(rate, interval, tolerance):
    assert (rate.interval_ms, rate.tolerance_ms) == (interval, tolerance)


# -- bounds --------------------------------------------------------------------------------

SMALL = Limits(
    metadata_keys=2,
    metadata_key_chars=3,
    metadata_value_bytes=4,
    metadata_bytes=12,
    header_names=2,
    header_values=2,
    header_value_bytes=3,
)


def refused(error_id: str, key: str, limit: int) -> contextlib.AbstractContextManager[None]:
    return expect(InvalidArgument, error_id, key, limit=limit)


def test_the_default_limits():
    assert Limits() == Limits(
        metadata_keys=100,
        metadata_key_chars=200,
        metadata_value_bytes=4096,
        metadata_bytes=65536,
        header_names=64,
        header_values=16,
        header_value_bytes=4096,
    )


class TestMetadataBounds:
    def test_at_every_limit_is_fine(self):
        limits.check_metadata({"abc": b"1234", "de": b"123"}, SMALL)  # 7 + 5 = 12 bytes

    def test_too_many_keys(self):
        with refused("SESSION-metaKeys", "Errors.Session.Metadata.TooMany", 2):
            limits.check_metadata({"a": b"", "b": b"", "c": b""}, SMALL)

    def test_a_key_too_long(self):
        with refused("SESSION-metaKey", "Errors.Session.Metadata.KeyTooLong", 3):
            limits.check_metadata({"abcd": b"1"}, SMALL)

    def test_a_value_too_large(self):
        with refused("SESSION-metaValue", "Errors.Session.Metadata.ValueTooLarge", 4):
            limits.check_metadata({"a": b"12345"}, SMALL)

    def test_too_large_in_total_counting_key_bytes(self):
        with refused("SESSION-metaSize", "Errors.Session.Metadata.TooLarge", 12):
            limits.check_metadata({"abc": b"1234", "dé": b"123"}, SMALL)  # 7 + 3 + 3 = 13

    def test_one_byte_over_the_total(self):
        with refused("SESSION-metaSize", "Errors.Session.Metadata.TooLarge", 11):
            limits.check_metadata({"abc": b"1234", "de": b"123"}, Limits(metadata_bytes=11))


class TestUserAgentBounds:
    def test_no_user_agent_or_one_at_every_limit_is_fine(self):
        limits.check_user_agent(None, SMALL)
        limits.check_user_agent(UserAgent(header={"a": ["abc", "é"], "b": []}), SMALL)

    def test_too_many_header_names(self):
        with refused("SESSION-uaHeaders", "Errors.Session.UserAgent.TooLarge", 2):
            limits.check_user_agent(UserAgent(header={"a": [], "b": [], "c": []}), SMALL)

    def test_too_many_values_of_one_name(self):
        with refused("SESSION-uaValues", "Errors.Session.UserAgent.TooLarge", 2):
            limits.check_user_agent(UserAgent(header={"a": ["1", "2", "3"]}), SMALL)

    def test_a_value_too_large_in_bytes(self):
        with refused("SESSION-uaValue", "Errors.Session.UserAgent.TooLarge", 3):
            limits.check_user_agent(UserAgent(header={"a": ["ok", "éé"]}), SMALL)


def test_the_last_representable_expiration():
    last = limits.MAX_TIMESTAMP_MS
    assert timefmt.rfc3339_ms(last) == "9999-12-31T23:59:59.999Z"
    limits.check_expiration(last - 1_000, 1_000)
    with pytest.raises(InvalidArgument) as raised:
        limits.check_expiration(last - 1_000, 1_001)
    assert (raised.value.error_id, raised.value.key) == (
        "SESSION-lifetimeMax",
        "Errors.Session.LifetimeTooLong",
    )


# -- time formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_000, "2023-11-14T22:13:20Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (-44_400_000_000_000, "0563-01-08T02:40:00Z"),  # four digits before year 1000 too
    ],
)
def test_rfc3339_out(ms, text):
    assert timefmt.rfc3339_ms(ms) == text


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00z", 0),
        ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
        ("2023-11-14T22:13:20.1239Z", 1_700_000_000_123),  # truncated to ms
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        ("2023-11-14T21:13:20.250-01:00", 1_700_000_000_250),
        (" 2023-11-14T22:13:20Z ", 1_700_000_000_000),
        ("1969-12-31T23:59:59Z", -1_000),
        ("2023-11-16T22:13:20Z", 1_700_172_800_000),
    ],
)
def test_rfc3339_in(text, ms):
    assert timefmt.parse_rfc3339_ms(text) == ms


@pytest.mark.parametrize(
    "text", ["", "2023-11-14", "2023-11-14T22:13Z", "2023-11-14T22:13:20", "22:13:20Z", "nowZ"]
)
def test_not_rfc3339(text):
    with pytest.raises(ValueError, match="not an RFC 3339 timestamp"):
        timefmt.parse_rfc3339_ms(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("300s", 300_000),
        ("1.5s", 1_500),
        ("0.001s", 1),
        ("1.2345s", 1_234),
        ("-2s", -2_000),
        ("-0.25s", -250),
        (" 7s ", 7_000),
        ("0s", 0),
    ],
)
def test_durations_in(text, ms):
    assert timefmt.parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "300", "1m", "s", "1.s", "+1s", "1.1234567890s"])
def test_not_a_duration(text):
    with pytest.raises(ValueError, match="not a duration"):
        timefmt.parse_duration_ms(text)


@pytest.mark.parametrize(
    ("ms", "text"), [(300_000, "300s"), (1_500, "1.500s"), (1, "0.001s"), (0, "0s")]
)
def test_durations_out(ms, text):
    assert timefmt.format_duration_ms(ms) == text


# -- permissions ---------------------------------------------------------------------------


class TestPermissions:
    def test_an_instance_role_applies_to_every_org(self):
        caller = Caller(user_id="u", grants=(Grant(roles=("IAM_OWNER_VIEWER",)),))
        assert caller.has("session.read")
        assert caller.has("session.read", "o1")
        assert not caller.has("session.write", "o1")

    def test_an_org_role_applies_to_its_org_only(self):
        caller = Caller(user_id="u", grants=(Grant(roles=("ORG_OWNER",), org_id="o1"),))
        assert caller.has("session.delete", "o1")
        assert not caller.has("session.delete", "o2")
        assert not caller.has("session.delete")

    def test_a_grant_on_another_org_does_not_hide_a_later_grant(self):
        caller = Caller(
            user_id="u",
            grants=(
                Grant(roles=("ORG_OWNER",), org_id="o2"),
                Grant(roles=("ORG_OWNER_VIEWER",), org_id="o1"),
            ),
        )
        assert caller.has("session.read", "o1")
        assert caller.orgs_with("session.read") == ["o2", "o1"]

    def test_unknown_roles_grant_nothing(self):
        caller = Caller(
            user_id="u",
            grants=(
                Grant(roles=("NO_SUCH_ROLE",)),
                Grant(roles=("NO_SUCH_ROLE", "ORG_OWNER_VIEWER"), org_id="o1"),
            ),
        )
        assert not caller.has("session.read")
        assert caller.has("session.read", "o1")
        assert caller.orgs_with("session.read") == ["o1"]
        assert caller.orgs_with("session.delete") == []

    def test_orgs_with_lists_only_org_grants_that_hold_the_permission(self):
        caller = Caller(
            user_id="u",
            grants=(
                Grant(roles=("IAM_OWNER",)),
                Grant(roles=("ORG_OWNER_VIEWER",), org_id="o1"),
                Grant(roles=("ORG_USER_MANAGER",), org_id="o2"),
            ),
        )
        assert caller.orgs_with("session.delete") == ["o2"]
        assert caller.orgs_with("session.read") == ["o1", "o2"]

    def test_only_a_login_client_reports_end_users(self):
        assert reports_end_users(Caller(user_id="l", grants=(Grant(roles=("IAM_LOGIN_CLIENT",)),)))
        assert reports_end_users(SYSTEM)
        assert not reports_end_users(
            Caller(user_id="m", grants=(Grant(roles=("IAM_USER_MANAGER",)),))
        )
        assert not reports_end_users(Caller(user_id="nobody"))
