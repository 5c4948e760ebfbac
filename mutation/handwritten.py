"""Hand-written mutations of the Lua scripts and the security-critical lines (scope B).

Each row of ``MUTATIONS`` names a file, an exact snippet of its current text, what replaces
it, the tests that must notice, and what the change would break. Every row is applied to a
fresh copy of the work tree (without .venv, .git, var, caches) and its tests run there with
the venv's python; the row is KILLED when they fail, SURVIVED when they pass.

The run fails (exit 1) if a row survives, if its snippet is no longer found exactly once (a
stale table must fail loudly, not pass by mutating nothing), or if the tests already fail
on the unmutated copy (a failing baseline would "kill" every row).

    python -m mutation.handwritten            # every row, then the table
    python -m mutation.handwritten -k fence   # rows whose name contains "fence"
    python -m mutation.handwritten --list     # the table without running it
    python -m mutation.handwritten --markdown # the result table as Markdown (docs/mutation.md)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Never copied: the venv and git (big, and the copy must not be mistaken for the repo),
#: run-time data and caches (stale bytecode or examples must not decide a result).
IGNORED = (
    ".venv",
    ".git",
    "var",
    "mutants",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".schemathesis",
    "__pycache__",
    "build",
    "*.egg-info",
    "results",
)
PYTEST_ARGS = ("-q", "-x", "-p", "no:cacheprovider", "--no-header")
#: Per row; the slowest rows start worker processes.
TIMEOUT_S = 600


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    breaks: str


MUTATIONS: tuple[Mutation, ...] = (
    # -- leases and fencing (storage/scripts/commit.lua) -------------------------------------
    Mutation(
        "commit-fence-check",
        "storage/scripts/commit.lua",
        "if redis.call('GET', KEYS[3]) ~= ARGV[2] then return redis.error_reply('STALE_FENCE') end\n",
        "",
        ("tests/test_sessions_store.py::test_the_same_owner_with_an_old_fence_is_refused",),
        "a writer holding an old fencing token overwrites a newer writer's state",
    ),
    Mutation(
        "commit-owner-check",
        "storage/scripts/commit.lua",
        "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LEASE_LOST') end\n",
        "",
        ("tests/test_lease_fencing.py::test_a_lease_that_expired_unclaimed_no_longer_commits",),
        "a writer whose lease expired (nobody took it over) still commits",
    ),
    Mutation(
        "fence-not-bumped",
        "storage/scripts/acquire.lua",
        "local fence = redis.call('INCR', KEYS[2])\n",
        "local fence = redis.call('INCRBY', KEYS[2], 0)\n",
        ("tests/test_sessions_store.py::test_the_same_owner_with_an_old_fence_is_refused",),
        "a new lease reuses the old fencing token: the previous holder's late commit lands",
    ),
    # -- password lockout (password_begin.lua, password_finish.lua, passwords.py) -----------
    Mutation(
        "lockout-reservation-cap",
        "storage/scripts/password_begin.lua",
        "  if tonumber(failed or '0') + reserved >= max then return {'BUSY', '', '0'} end\n",
        "",
        (
            "tests/test_password_lockout.py::"
            "test_thirty_concurrent_wrong_passwords_are_verified_at_most_max_times",
            "tests/test_password_lockout.py::test_checks_beyond_the_reserved_ones_are_busy",
        ),
        "concurrent wrong passwords are all verified: more than max guesses before the lock",
    ),
    Mutation(
        "lockout-lock-at-max",
        "storage/scripts/_emit.lua",
        "  if max > 0 and failed >= max then\n",
        "  if false then\n",
        (
            "tests/test_password_lockout.py::test_max_two_attempts_gives_invalid_invalid_then_locked",
        ),
        "a user is never locked however many wrong passwords arrive",
    ),
    Mutation(
        "lockout-success-keeps-failures",
        "storage/scripts/password_finish.lua",
        "  redis.call('HSET', k_user, 'failed', 0, 'mtime', ARGV[4])\n",
        "  redis.call('HSET', k_user, 'mtime', ARGV[4])\n",
        (
            "tests/test_password_lockout.py::"
            "test_the_right_password_passes_and_clears_earlier_failures",
        ),
        "a right password does not reset the count: old typos add up to a lock",
    ),
    Mutation(
        "lockout-max-ignored",
        "app/services/passwords.py",
        "        self._max_attempts = max_attempts\n",
        "        self._max_attempts = 0\n",
        (
            "tests/test_password_lockout.py::test_max_two_attempts_gives_invalid_invalid_then_locked",
        ),
        "the configured lockout limit is ignored: lockout is off everywhere",
    ),
    # -- session indexes (storage/scripts/relay_apply.lua, storage/index_plan.py) -----------
    Mutation(
        "index-zadd-skipped",
        "storage/scripts/relay_apply.lua",
        "      redis.call('ZADD', k, score, member)\n    elseif kind == 'zrem' then\n",
        "      local _ = k\n    elseif kind == 'zrem' then\n",
        (
            "tests/test_sessions_store.py::test_create_writes_state_indexes_and_the_partition_stream",
        ),
        "a written session is in no index: ListSessions and the purge never find it",
    ),
    Mutation(
        "index-zrem-skipped",
        "storage/scripts/relay_apply.lua",
        "    redis.call('ZREM', k, member)\n",
        "    local _ = k\n",
        (
            "tests/test_sessions_store.py::"
            "test_termination_leaves_a_tombstone_and_clears_every_index",
        ),
        "a session that left an index (terminated, changed user) is still listed by it",
    ),
    Mutation(
        "index-fingerprint-membership",
        "storage/index_plan.py",
        "    if fingerprint_id:\n        found.append(keys.sessions_of_fingerprint(fingerprint_id))\n",
        "",
        ("tests/test_sessions_api.py::TestList::test_16_54_user_agent_query",),
        "a session is missing from its user agent's index: a fingerprint query finds nothing",
    ),
    # -- token rotation (actors/machine.py, actors/tokens.py) -------------------------------
    Mutation(
        "token-not-rotated",
        "actors/machine.py",
        "    if events and command.report is None:  # PingOne writes leave ZITADEL's token alone\n",
        "    if False:\n",
        (
            "tests/test_machine.py",
            "tests/test_sessions_api.py::TestSetAndTimes::"
            "test_the_previous_token_stops_working_after_a_write",
        ),
        "a write keeps the old session token: a leaked token outlives every later check",
    ),
    Mutation(
        "token-verify-prefix-only",
        "actors/tokens.py",
        "    return same_hash and given_prefix == prefix and given_owner == owner_id\n",
        "    return given_prefix == prefix\n",
        (
            "tests/test_sessions_api.py::TestSetAndTimes::"
            "test_the_previous_token_stops_working_after_a_write",
        ),
        "any token of the right shape verifies: the old (or a forged) token still works",
    ),
    Mutation(
        "token-verify-owner-ignored",
        "actors/tokens.py",
        "    return same_hash and given_prefix == prefix and given_owner == owner_id\n",
        "    return same_hash and given_prefix == prefix\n",
        (
            "tests/test_rules_tokens.py::test_a_token_verifies_only_for_the_session_it_was_issued_for",
        ),
        "one session's token, re-addressed, authenticates against another session id",
    ),
    # -- the relay (storage/scripts/relay_apply.lua, storage/relay.py) -----------------------
    Mutation(
        "relay-repair-republishes",
        "storage/scripts/relay_apply.lua",
        "      if id == sid and seq == first_seq then publish = false; break end\n",
        "",
        ("tests/test_relay.py::test_a_writer_that_published_then_died_is_not_published_twice",),
        "a commit whose writer published its events, then died, has them published twice",
    ),
    Mutation(
        "relay-writer-ignores-repair",
        "storage/scripts/relay_apply.lua",
        "  elseif not whole and redis.call('ZSCORE', k_replayed, mark) then\n",
        "  elseif false then\n",
        (
            "tests/test_relay.py::"
            "test_on_a_cluster_a_stalled_writer_after_the_repair_publishes_nothing_again",
        ),
        "on a cluster, a stalled writer resuming after the repair publishes its events again",
    ),
    Mutation(
        "relay-repair-not-old-enough",
        "storage/relay.py",
        "            args = [now_ms - CLAIM_MS, _REPAIR_BATCH, batch, *pending_keys]\n",
        "            args = [0, _REPAIR_BATCH, batch, *pending_keys]\n",
        ("tests/test_relay.py::test_a_create_whose_writer_died_is_relayed_by_the_repair_once",),
        "nothing is ever repaired: a crashed writer's commit stays out of every index",
    ),
    Mutation(
        "relay-next-writer-skips-recorded",
        "storage/relay.py",
        "            if recorded > 1:\n",
        "            if False:\n",
        (
            "tests/test_relay.py::"
            "test_the_next_writer_finishes_a_dead_writers_commit_before_its_own",
        ),
        "a session's next commit publishes its events before a dead writer's earlier ones",
    ),
    # -- retention (actors/queries.py, storage/scripts/purge.lua) ---------------------------
    Mutation(
        "retention-always-retained",
        "actors/queries.py",
        "    return exp is None or exp + retention_ms >= now_ms\n",
        "    return True\n",
        (
            "tests/test_sessions_api.py::TestRetention::"
            "test_get_shows_an_expired_session_until_its_retention_ends",
        ),
        "a session past expiration + retention is still returned by GetSession and listings",
    ),
    Mutation(
        "retention-purge-ignores-retention",
        "storage/scripts/purge.lua",
        "  local due = tonumber(exp) + tonumber(ARGV[2])\n",
        "  local due = tonumber(exp)\n",
        (
            "tests/test_sessions_store.py::"
            "test_purge_removes_sessions_past_retention_and_reschedules_extended_ones",
        ),
        "the sweeper deletes a session as soon as it expires, before its retention ends",
    ),
    # -- bearer rules (app/services/auth.py) -------------------------------------------------
    Mutation(
        "bearer-password-change-ignored",
        "app/services/auth.py",
        "    if password_ms is None or password_ms < view.password_changed_ms:\n",
        "    if password_ms is None:\n",
        (
            "tests/test_sessions_api.py::TestBearer::"
            "test_a_password_checked_before_a_password_change_no_longer_authenticates",
        ),
        "a session authenticated by a password since changed still acts as its user",
    ),
    Mutation(
        "bearer-mfa-ignored",
        "app/services/auth.py",
        "    return meta.second_factor_ms is not None or not view.second_factor\n",
        "    return True\n",
        (
            "tests/test_second_factors.py::"
            "test_16_31_a_password_only_token_stops_being_a_bearer_once_totp_is_verified",
        ),
        "a password-only session token still authenticates a user who has a second factor",
    ),
    Mutation(
        "bearer-terminated-accepted",
        "app/services/auth.py",
        "        if meta is None or meta.terminated or not meta.user_id:\n",
        "        if meta is None or not meta.user_id:\n",
        (
            "tests/test_bearer_rules.py::test_a_terminated_session_even_with_its_user_and_token",
            "tests/test_sessions_api.py::TestBearer::test_16_33_deleted_session_token_is_rejected",
        ),
        "a deleted (terminated) session's token still authenticates as its user",
    ),
    Mutation(
        "bearer-expired-accepted",
        "app/services/auth.py",
        "        if meta.expiration_ms is not None and meta.expiration_ms < self._clock.now_ms():\n",
        "        if False:\n",
        ("tests/test_sessions_api.py::TestBearer::test_16_34_token_stops_working_after_expiry",),
        "an expired session's token still authenticates as its user",
    ),
    # -- worker count (app/process/workers.py) ----------------------------------------------
    Mutation(
        "workers-count-ignored",
        "app/process/workers.py",
        "for index in range(settings.workers)]",
        "for index in range(1)]",
        (
            "tests/test_supervisor.py::"
            "test_a_killed_worker_is_restarted_while_the_other_keeps_serving",
        ),
        "SESSIOND_WORKERS=N starts one worker: no parallelism, a crash takes the service down",
    ),
    # -- rate limits (storage/scripts/rate_limit*.lua) ---------------------------------------
    Mutation(
        "rate-limit-admits-always",
        "storage/scripts/rate_limit_all.lua",
        "if wait > 0 then return {0, wait} end\n",
        "",
        ("tests/test_rate_limits.py::test_a_user_gets_a_429_with_retry_after_past_its_rate",),
        "credential checks are never rate limited: unbounded password guessing",
    ),
    Mutation(
        "rate-limit-per-key-admits-always",
        "storage/scripts/rate_limit.lua",
        "if now < allowed_at then return {0, allowed_at - now} end\n",
        "",
        ("tests/test_rate_limits.py::test_each_subject_gets_its_count_then_waits",),
        "on a cluster, credential checks are never rate limited",
    ),
    # -- second factors (storage/scripts/otp_*.lua) --------------------------------------------
    Mutation(
        "totp-replay-accepted",
        "storage/scripts/otp_finish.lua",
        "  if step <= tonumber(f[4] or '0') then\n",
        "  if false then\n",
        (
            "tests/test_second_factors.py::"
            "test_one_totp_code_sent_to_ten_sessions_at_once_is_accepted_once",
        ),
        "one TOTP code sent to several sessions at once is accepted more than once",
    ),
    Mutation(
        "otp-lock-never-lands",
        "storage/scripts/_emit.lua",
        "  if max > 0 and failed >= max then\n",
        "  if false then\n",
        (
            "tests/test_second_factors.py::"
            "test_30_concurrent_wrong_totp_codes_never_exceed_the_lockout",
        ),
        "wrong second-factor codes never lock the user: unbounded code guessing",
    ),
    # -- WebAuthn (otp_checks.py, second_factors.py, webauthn_ceremony.py) -------------------
    Mutation(
        "webauthn-challenge-reused",
        "storage/otp_checks.py",
        '"SET", keys.used_webauthn_challenge(user_id, challenge), "1", "NX", "PX", ttl_ms',
        '"SET", keys.used_webauthn_challenge(user_id, challenge), "1", "PX", ttl_ms',
        (
            "tests/test_webauthn_session.py::test_a_failed_check_uses_the_challenge_up",
            "tests/test_webauthn_session.py::"
            "test_one_assertion_sent_twenty_times_at_once_succeeds_once",
        ),
        "a challenge is answered more than once: a failed assertion may be retried against it",
    ),
    Mutation(
        "webauthn-user-handle-ignored",
        "app/services/webauthn_ceremony.py",
        "return not handle or hmac.compare_digest(handle, user_id.encode())",
        "return True",
        ("tests/test_webauthn_session.py::test_a_user_handle_of_another_user_is_refused",),
        "an assertion naming another user (W3C 7.2 step 6) signs that user in",
    ),
    Mutation(
        "webauthn-any-rp-id",
        "app/services/webauthn_ceremony.py",
        'if host == rp or (rp.count(".") >= 1 and host.endswith("." + rp)):',
        "if True:",
        (
            "tests/test_webauthn_session.py::"
            "test_a_passkey_for_an_rp_id_foreign_to_every_origin_never_becomes_ready",
        ),
        "a passkey is bound to a domain no accepted origin serves",
    ),
    Mutation(
        "webauthn-uv-not-required",
        "app/services/webauthn_ceremony.py",
        "require_user_verification=pending.user_verification == REQUIRED,",
        "require_user_verification=False,",
        ("tests/test_webauthn_session.py::test_a_missing_uv_flag_fails_a_required_challenge",),
        "a REQUIRED (passkey) challenge accepts an assertion without user verification",
    ),
    Mutation(
        "webauthn-offer-ignored",
        "app/services/second_factors.py",
        "offered = credential in found.allowed_credentials",
        "offered = True",
        (
            "tests/test_webauthn_session.py::"
            "test_a_passkey_registered_after_the_challenge_was_not_offered",
        ),
        "a key the challenge did not offer (a U2F key for a passkey login) is accepted",
    ),
    # -- PingOne's facade: the per-user cap and the ST token ---------------------------------
    Mutation(
        "cap-never-evicts",
        "storage/scripts/relay_apply.lua",
        "      local over = redis.call('ZCARD', k) - op[5]\n",
        "      local over = 0\n",
        (
            "tests/test_session_cap.py::test_forty_racing_creates_leave_exactly_the_cap",
            "tests/test_pingone_processes.py::"
            "test_forty_creates_over_two_workers_leave_exactly_the_cap",
        ),
        "a user gets more sessions than SESSIOND_MAX_SESSIONS_PER_USER allows",
    ),
    Mutation(
        "st-token-taken-ignored",
        "storage/scripts/claim.lua",
        "if holder and holder ~= ARGV[1] and holder ~= ARGV[3] then return holder end\n",
        "",
        (
            "tests/test_pingone_api.py::test_a_token_in_use_by_another_session_is_refused",
            "tests/test_relay.py::test_racing_creates_for_one_pingone_token_leave_exactly_one_owner",
        ),
        "a second session takes over a live session's ST token, and with it that session",
    ),
    Mutation(
        "st-presented-token-ignored",
        "actors/machine.py",
        "    _check_presented_st_token(state, command)\n",
        "",
        ("tests/test_pingone_rules.py::test_a_replaced_token_names_no_session",),
        "a request holding a replaced ST token still writes to the session it named",
    ),
    # -- uniqueness per key and the relay of other aggregates (storage/name_claims.py) -------
    Mutation(
        "name-claim-ignores-holder",
        "storage/scripts/claim_name.lua",
        "if holder and holder ~= ARGV[3] then return {holder, redis.call('PTTL', KEYS[1])} end\n",
        "",
        ("tests/test_name_claims.py::test_racing_creates_of_one_username_leave_exactly_one_user",),
        "two users get the same username when their creates race",
    ),
    Mutation(
        "name-claim-never-confirmed",
        "storage/users.py",
        '            ops=[IndexOp("set", keys.login_name(name), 0, user.id) for name in names],\n',
        "            ops=[],\n",
        ("tests/test_name_claims.py::test_racing_creates_of_one_username_leave_exactly_one_user",),
        "a user's login names expire 30 s after it was created: the name is free for another",
    ),
    Mutation(
        "aggregate-events-dropped",
        "storage/scripts/_emit.lua",
        "  relay.events[#relay.events + 1] = event\n",
        "",
        (
            "tests/test_aggregate_relay.py::"
            "test_a_users_events_whose_writer_died_are_relayed_by_the_repair_once",
        ),
        "a user's, org's, IdP's or intent's events never reach the partition stream",
    ),
)


@dataclass(frozen=True)
class Result:
    mutation: Mutation
    status: str  # KILLED | SURVIVED | STALE | ERROR
    seconds: float
    detail: str = ""


def copy_tree(destination: Path) -> None:
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*IGNORED), symlinks=True)


def stale_reason(mutation: Mutation) -> str | None:
    """Why the row cannot be applied to the current code, or None if it can."""
    path = ROOT / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    count = path.read_text(encoding="utf-8").count(mutation.original)
    if count != 1:
        return f"snippet found {count} times in {mutation.file} (expected exactly once)"
    if mutation.original == mutation.replacement:
        return "the replacement equals the original"
    return None


def run_pytest(tree: Path, tests: Iterable[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.setdefault("SESSIOND_TEST_REDIS", "valkey")
    # The copy's packages win over the editable install, in pytest and in the worker
    # processes some tests start.
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
    return subprocess.run(
        command,
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _tail(output: str, lines: int = 15) -> str:
    return "\n".join(output.strip().splitlines()[-lines:])


def apply_and_test(mutation: Mutation) -> Result:
    start = time.monotonic()
    reason = stale_reason(mutation)
    if reason is not None:
        return Result(mutation, "STALE", 0.0, reason)
    with tempfile.TemporaryDirectory(prefix="sessiond-mutant-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        target = tree / mutation.file
        text = target.read_text(encoding="utf-8")
        target.write_text(text.replace(mutation.original, mutation.replacement), encoding="utf-8")
        try:
            proc = run_pytest(tree, mutation.tests)
        except subprocess.TimeoutExpired:
            return Result(mutation, "KILLED", time.monotonic() - start, "timed out")
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    if proc.returncode == 0:
        return Result(mutation, "SURVIVED", seconds, _tail(output))
    if proc.returncode == 1:  # tests ran and failed
        return Result(mutation, "KILLED", seconds)
    # 2 interrupted, 3 internal error, 4 usage (e.g. a node id that no longer exists),
    # 5 no tests collected: not a verdict on the mutation.
    return Result(mutation, "ERROR", seconds, f"pytest exit {proc.returncode}\n{_tail(output)}")


def baseline(mutations: Sequence[Mutation]) -> tuple[bool, str, float]:
    """Every row's tests pass on the unmutated copy (else a row's kill would mean nothing)."""
    tests = sorted({test for mutation in mutations for test in mutation.tests})
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sessiond-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        proc = run_pytest(tree, tests)
    return proc.returncode == 0, _tail(proc.stdout + proc.stderr, 25), time.monotonic() - start


def render_text(results: Sequence[Result]) -> str:
    width = max(len(r.mutation.name) for r in results)
    lines = [f"{'mutation':<{width}}  {'result':<8}  {'time':>6}  file / what it would break"]
    for r in results:
        lines.append(
            f"{r.mutation.name:<{width}}  {r.status:<8}  {r.seconds:5.1f}s  "
            f"{r.mutation.file}: {r.mutation.breaks}"
        )
        if r.detail and r.status != "KILLED":
            lines.extend("      " + line for line in r.detail.splitlines())
    return "\n".join(lines)


def render_markdown(results: Sequence[Result]) -> str:
    lines = [
        "| mutation | file | what it would break | tests | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        tests = "<br>".join(f"`{t}`" for t in r.mutation.tests)
        lines.append(
            f"| `{r.mutation.name}` | `{r.mutation.file}` | {r.mutation.breaks} | {tests} | "
            f"{r.status} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="pattern", default="", help="only rows whose name has this")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="rows tested at once")
    parser.add_argument("--list", action="store_true", help="print the table, run nothing")
    parser.add_argument("--markdown", action="store_true", help="print the results as Markdown")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args(argv)

    rows = [m for m in MUTATIONS if args.pattern in m.name]
    if not rows:
        print(f"no mutation matches {args.pattern!r}", file=sys.stderr)
        return 2
    if args.list:
        for m in rows:
            print(f"{m.name}: {m.file}: {m.breaks}\n    tests: {' '.join(m.tests)}")
        return 0

    stale = [(m, reason) for m in rows if (reason := stale_reason(m)) is not None]
    for m, reason in stale:
        print(f"STALE {m.name}: {reason}", file=sys.stderr)
    if stale:
        print("the table no longer matches the code: update mutation/handwritten.py")
        return 1

    if not args.no_baseline:
        print(f"== baseline: the tests of {len(rows)} rows on the unmutated tree", flush=True)
        ok, output, seconds = baseline(rows)
        if not ok:
            print(output)
            print(f"baseline FAILED after {seconds:.0f}s: fix the tests before judging mutants")
            return 1
        print(f"   passed in {seconds:.0f}s", flush=True)

    print(f"== {len(rows)} hand-written mutations, {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(apply_and_test, rows))
    print(render_markdown(results) if args.markdown else render_text(results))
    bad = [r for r in results if r.status != "KILLED"]
    killed = len(results) - len(bad)
    print(f"\nhand-written mutations: {killed}/{len(results)} killed")
    if bad:
        print("NOT KILLED: " + ", ".join(f"{r.mutation.name} ({r.status})" for r in bad))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
