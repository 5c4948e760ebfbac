"""Surviving mutants judged equivalent: behaviour-identical, so no test can kill them.

Matched by file and by the changed line before/after (as ``mutation.run`` prints them);
mutmut's mutant numbers shift whenever a function changes, these lines do not. Each needs a
reason; docs/mutation.md repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Equivalent:
    file: str
    before: str
    after: str
    reason: str


EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        "actors/limits.py",
        'period_ms = parse_span_ms(span or "1m")',
        'period_ms = parse_span_ms(span or "1M")',
        "parse_span_ms lower-cases its input first: '1M' and '1m' are the same span",
    ),
    Equivalent(
        "actors/machine.py",
        "case DeleteSession():",
        "",
        "without the case the match falls through and preflight returns None, as the case does",
    ),
    Equivalent(
        "actors/machine.py",
        'if not ctx.caller.has("session.write", state.user_org_id):',
        'if not ctx.caller.has("session.write", None):',
        "no org-scoped role grants session.write (ZITADEL's defaults, ROLE_PERMISSIONS): "
        "only instance grants can, and they ignore the org",
    ),
    Equivalent(
        "actors/machine.py",
        'if not ctx.caller.has("session.write", state.user_org_id):',
        'if not ctx.caller.has("session.write", ):',
        "the same as passing None (the parameter's default); see the line above",
    ),
    Equivalent(
        "actors/queries.py",
        'low, high = float("-inf"), float("inf")',
        'low, high = float("-INF"), float("inf")',
        "float() parses infinity case-insensitively: the same value",
    ),
    Equivalent(
        "actors/queries.py",
        'low, high = float("-inf"), float("inf")',
        'low, high = float("-inf"), float("INF")',
        "float() parses infinity case-insensitively: the same value",
    ),
    Equivalent(
        "actors/user_names.py",
        'return _SLUG_JUNK.sub("-", name.lower()).strip("-") or "org"',
        'return _SLUG_JUNK.sub("-", name.lower()).strip("XX-XX") or "org"',
        "strip() takes a set of characters; after lower() and the substitution no 'X' is left "
        "to strip, so only '-' is stripped either way",
    ),
    Equivalent(
        "actors/user_names.py",
        "if isinstance(value, int) and 0 < value < len(GENDERS):",
        "if isinstance(value, int) and 0 <= value < len(GENDERS):",
        "0 (and False) already returned '' on the line before: the bound is never reached at 0",
    ),
    # -- scope A', the service layer --------------------------------------------------------
    Equivalent(
        "app/services/auth.py",
        "elif parts is not None and parts[0] == tokens.PAT_PREFIX:",
        "elif parts is not None and parts[1] == tokens.PAT_PREFIX:",
        "a PAT then takes the else branch, and tokens.as_pat returns a PAT unchanged: the "
        "branch only saves splitting the token twice",
    ),
    Equivalent(
        "actors/url_templates.py",
        'render(template, dict.fromkeys(fields, "x"))',
        'render(template, dict.fromkeys(fields, "X"))',
        "validation renders sample values only to see whether rendering succeeds: any value will do",
    ),
    Equivalent(
        "actors/url_templates.py",
        'render(template, dict.fromkeys(fields, "x"))',
        'render(template, dict.fromkeys(fields, "XXxXX"))',
        "the same: the sample value is never looked at",
    ),
    Equivalent(
        "actors/url_templates.py",
        "at = 0",
        "at = None",
        "str.find(sub, None) and s[None:i] mean the same as with 0",
    ),
    Equivalent(
        "actors/user_factors.py",
        "return str(pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).generate_otp(step))",
        "return str(pyotp.TOTP(secret, interval=TOTP_PERIOD_S).generate_otp(step))",
        "pyotp's default is 6 digits, TOTP_DIGITS",
    ),
    Equivalent(
        "actors/user_factors.py",
        "return str(pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).generate_otp(step))",
        "return str(pyotp.TOTP(secret, digits=TOTP_DIGITS, ).generate_otp(step))",
        "pyotp's default interval is 30 s, TOTP_PERIOD_S",
    ),
    Equivalent(
        "actors/user_factors.py",
        "hotp = HOTP(key, TOTP_DIGITS, SHA1(), enforce_key_length=False)  # noqa: S303 - RFC 6238",
        "hotp = HOTP(key, TOTP_DIGITS, SHA1(), enforce_key_length=None)  # noqa: S303 - RFC 6238",
        "cryptography only tests the flag's truth: None is as false as False",
    ),
    Equivalent(
        "actors/user_factors.py",
        "totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S)",
        "totp = pyotp.TOTP(secret, interval=TOTP_PERIOD_S)",
        "pyotp's default is 6 digits, TOTP_DIGITS",
    ),
    Equivalent(
        "actors/user_factors.py",
        "totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S)",
        "totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, )",
        "pyotp's default interval is 30 s, TOTP_PERIOD_S",
    ),
    Equivalent(
        "actors/user_factors.py",
        "step = matching_totp_step(secret, code, now_ms) if secret else None",
        "step = matching_totp_step(secret, code, now_ms) if (secret) or True else None",
        "an empty seed decodes to an empty key whose codes match no 6-digit code: None either way",
    ),
)
