"""The served OpenAPI document against the real server: schemathesis, every check, 0 failures.

A real ``python -m app`` (the same process the other worker tests start) is fuzzed by the
schemathesis CLI (its pytest plugin does not work on pytest 9.2) with all of its checks:
every status a route answers is documented with its body, every request the document allows
is served, every request it forbids is refused, an undeclared method is 405 with ``Allow``,
and the stateful phase chains the operations (create a user, lock it, ...). The seed is
fixed, so a failure reproduces with the command line printed on failure, together with the
CLI's report.

Two of the checks are told what ZITADEL's contract says, in the config written next to the
run (``_CONFIG``); this module is also the run's hooks file:

- ``not_a_server_error``: 501 is the documented answer to a check or field not built yet,
  not a crash (``status_code_conformance`` still holds each route to its documented list).
- ``positive_data_acceptance`` lets a 400 through, and ``refused_only_by_state`` below fails
  every 400 to a schema-valid request except the refusals no schema can state: the state
  forbids it (FAILED_PRECONDITION, which grpc-gateway answers 400), a wrong password or
  code, a session's merged metadata over its bound, an expiration in the past.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.generation.meta import REQUEST_SHAPE_PROBES, coverage_scenario

from tests.processes import server
from tests.support import ADMIN_TOKEN

pytestmark = pytest.mark.slow

SEED = 20261201
#: Test cases per operation and phase: one run takes about 50 s on 2 cores (budget: 90 s).
MAX_EXAMPLES = 40
#: The subprocess's bound (``--max-time`` is no cap: the CLI would fuzz until it is spent).
TIMEOUT_S = 200

#: gRPC FAILED_PRECONDITION: the resource's state forbids the request (user locked, session
#: expired, a user already deactivated...); grpc-gateway answers it 400.
FAILED_PRECONDITION = 9
#: Refusals of a schema-valid request that depend on stored secrets or state, by error id.
STATE_IDS = frozenset(
    {
        "COMMAND-3M0fs",  # wrong password
        "COMMAND-eis9R",  # wrong, expired or missing verification code
        "CODE-woT0xc",  # wrong password reset code
        "EVENT-8isk2",  # wrong code of the TOTP being registered
        "COMMAND-84rgg",  # removing recovery codes the user does not have (or checking them)
        "COMMAND-S453v",  # an OTP check on a session that has no user yet
        "COMMAND-4m9s2",  # a recovery-code check on a session that has no user yet
        "COMMAND-8N9ds",  # a TOTP check on a session that has no user yet
        "DOMAIN-6uvh0",  # a wrong recovery code
        "TOTP-Auw0a",  # a TOTP code of a used-up time step
        "DOMAIN-oGh5e",  # a URL template naming fields ZITADEL does not offer
        "SESSION-metaKeys",  # the session's metadata, merged with the request's, has too many keys
        "SESSION-metaSize",  # ... or too many bytes (a sum no schema can bound)
        "COMMAND-Dhz8i",  # a wrong passkey registration code
        "WEBAU-rpId0",  # an RP id (domain) none of the configured origins belongs to
        "WEBAU-sKf8s",  # a registration response that does not verify against its challenge
        "WEBAU-ADgv4",  # an assertion object that is not a WebAuthn assertion
        "WEBAU-3M9si",  # an assertion that does not verify against the session's challenge
        "WEBAU-4M90s",  # an assertion whose sign count went back (a cloned key)
        "IDP-unknownState",  # a callback whose state names no started intent
    }
)
#: ... and by message, where the refusal carries no id.
STATE_MESSAGES = frozenset(
    {
        "user change not possible",  # SetSession naming another user than the session's
        "invalid AddPersonalAccessTokenRequest.ExpirationDate: must be in the future",
    }
)

_CONFIG = """\
hooks = {hooks}

[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "501"]

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""


def _state_refusal(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    if body.get("code") == FAILED_PRECONDITION:
        return True
    details = body.get("details") or [{}]
    detail = details[0] if isinstance(details[0], dict) else {}
    return detail.get("id") in STATE_IDS or body.get("message") in STATE_MESSAGES


@schemathesis.serializer("application/vnd.pingidentity.sso.session.logout")
def _logout_body(ctx: Any, value: Any) -> bytes:
    """PingOne's sign-off has no body: the content type alone is the request."""
    return b""


@schemathesis.check
def refused_only_by_state(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schema-valid request is answered 400 only when its refusal depends on state."""
    meta = case.meta
    if response.status_code != 400 or meta is None or not meta.generation.mode.is_positive:
        return None
    if coverage_scenario(case) in REQUEST_SHAPE_PROBES:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if _state_refusal(body):
        return None
    raise AssertionError(
        "Valid data should have been accepted: 400 for a schema-valid request, not a refusal "
        f"that depends on state: {response.content[:500]!r}"
    )


def _schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.fail("the schemathesis CLI is not installed (it is in the dev extra)")
    return found


def _environment() -> dict[str, str]:
    """No proxy (every request goes straight to 127.0.0.1); the project importable by the hooks."""
    proxies = {"http_proxy", "https_proxy", "all_proxy"}
    env = {k: v for k, v in os.environ.items() if k.lower() not in proxies}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_the_server_conforms_to_its_openapi_document(redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(_CONFIG.format(hooks=json.dumps(str(Path(__file__).resolve()))))
    with server(
        redis_url, rate_limit_user="0", rate_limit_ip="0", rate_limit_caller="0"
    ) as running:
        command = [
            _schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{running.url}/openapi.json",
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--generation-database",
            "none",
            "--request-timeout",
            "15",
            # one worker: reproducible, and hypothesis's lambda descriptions (ast.parse) are
            # not thread-safe on Python 3.11 ("AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--no-color",
        ]
        started = time.monotonic()
        # cwd: schemathesis writes .hypothesis/ and .schemathesis/ into its working directory
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        print(output)  # the failures, for the CI log
    shown = " ".join(command).replace(ADMIN_TOKEN, "<admin token>")
    assert result.returncode == 0, (
        f"schemathesis found failures ({elapsed:.0f} s, exit {result.returncode}):\n"
        f"{shown}\n{output[-20_000:]}"
    )
