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
)
