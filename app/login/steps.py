"""Where a sign-in stands: the next step of the page, from the session's factors alone.

Pure: it reads GetSession's ``factors`` and the user's authentication method types
(ListAuthenticationMethodTypes) and mirrors the API's bearer rule, so the page shows
"signed in" exactly when the session token would be accepted as a bearer: a user-verified
passkey on its own, or a password plus a second factor whenever the user has one ready.
"""

from __future__ import annotations

from typing import Any

#: The method type of a password (the first factor this page asks for).
FIRST_FACTOR = "AUTHENTICATION_METHOD_TYPE_PASSWORD"
#: Method type → the page's name for it, in the order the page offers them.
SECOND_FACTORS = {
    "AUTHENTICATION_METHOD_TYPE_PASSKEY": "passkey",
    "AUTHENTICATION_METHOD_TYPE_U2F": "u2f",
    "AUTHENTICATION_METHOD_TYPE_TOTP": "totp",
    "AUTHENTICATION_METHOD_TYPE_OTP_EMAIL": "otpEmail",
    "AUTHENTICATION_METHOD_TYPE_OTP_SMS": "otpSms",
}
#: Kinds this page can check; the others are named, so the user knows why it stops.
SUPPORTED = frozenset({"passkey", "u2f", "totp", "otpEmail", "otpSms"})
_SECOND_FACTOR_KEYS = ("webAuthN", "totp", "otpSms", "otpEmail", "recoveryCode")
#: GetSession factor keys shown on the signed-in page, with their labels.
FACTOR_LABELS = {
    "user": "User",
    "password": "Password",
    "webAuthN": "Passkey / security key",
    "totp": "Authenticator app (TOTP)",
    "otpSms": "One-time code by SMS",
    "otpEmail": "One-time code by e-mail",
    "recoveryCode": "Recovery code",
    "intent": "Identity provider",
}


def _checked(factors: dict[str, Any], key: str) -> bool:
    factor = factors.get(key)
    return isinstance(factor, dict) and bool(factor.get("verifiedAt"))


def second_factor_options(methods: frozenset[str]) -> list[str]:
    return [name for kind, name in SECOND_FACTORS.items() if kind in methods]


def next_step(factors: dict[str, Any], methods: frozenset[str]) -> tuple[str, list[str]]:
    """``(step, options)``: loginName, password, passkey, secondFactor, signedIn or unsupported.

    ``unsupported``: the user has no password and no passkey (e.g. a machine user).
    """
    if not _checked(factors, "user"):
        return "loginName", []
    if _checked(factors, "webAuthN") and factors["webAuthN"].get("userVerified") is True:
        return "signedIn", []
    options = second_factor_options(methods)
    if not _checked(factors, "password"):
        if FIRST_FACTOR in methods:
            return "password", ["passkey"] if "passkey" in options else []
        return ("passkey", []) if "passkey" in options else ("unsupported", [])
    if not options or any(_checked(factors, key) for key in _SECOND_FACTOR_KEYS):
        return "signedIn", []
    return "secondFactor", options


def factor_list(factors: dict[str, Any]) -> list[dict[str, Any]]:
    """The checked factors, labelled, with nothing but what the page shows."""
    shown: list[dict[str, Any]] = []
    for key, label in FACTOR_LABELS.items():
        factor = factors.get(key)
        if not isinstance(factor, dict) or not factor.get("verifiedAt"):
            continue
        item: dict[str, Any] = {"kind": key, "label": label, "verifiedAt": factor["verifiedAt"]}
        if key == "webAuthN":
            item["userVerified"] = bool(factor.get("userVerified"))
        shown.append(item)
    return shown


def user_summary(factors: dict[str, Any]) -> dict[str, str]:
    user = factors.get("user")
    if not isinstance(user, dict):
        return {}
    return {
        "id": str(user.get("id", "")),
        "loginName": str(user.get("loginName", "")),
        "displayName": str(user.get("displayName", "")),
    }
