"""PasswordService against a real server: ZITADEL's check order, lockout, races, rehash, PATs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import msgspec
import pytest

from actors import tokens
from actors import users as rules
from actors.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from actors.permissions import Caller, Grant
from app.process.settings import Settings
from app.services.hashing import PasswordHasher
from app.services.ids import SecretsMinter
from app.services.passwords import PasswordService
from storage import keys
from storage.users import RedisUserStore

PASSWORD = "Corr3ct-Horse!"
CALLER = Caller(user_id="login-client")
#: The cheapest argon2id argon2-cffi allows: these tests are about the protocol, not the KDF.
FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1, "hash_threads": 4}


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def hasher_args(config: Settings) -> dict[str, int]:
    return {
        "time_cost": config.argon2_time_cost,
        "memory_kib": config.argon2_memory_kib,
        "parallelism": config.argon2_parallelism,
        "threads": config.hash_threads,
    }


def hasher_for(config: Settings) -> PasswordHasher:
    return PasswordHasher(**hasher_args(config))


def settings(max_attempts: int = 3, **overrides: object) -> Settings:
    base = msgspec.structs.replace(
        Settings(lockout_max_password_attempts=max_attempts, event_partitions=2), **FAST
    )
    return msgspec.structs.replace(base, **overrides)


@pytest.fixture(name="store")
async def _store(fast_redis):
    store = RedisUserStore(fast_redis, settings(), clock=WallClock(), ids=SecretsMinter())
    await store.bootstrap()
    return store


@pytest.fixture(name="hasher")
def _hasher():
    hasher = hasher_for(settings())
    yield hasher
    hasher.close()


def service(store, hasher, max_attempts: int = 3, busy_wait_s: float = 2.0) -> PasswordService:
    return PasswordService(
        store, hasher, WallClock(), max_attempts=max_attempts, busy_wait_s=busy_wait_s
    )


async def add_user(store, hasher, *, user_id: str = "u1", password: str | None = PASSWORD):
    password_hash = await hasher.hash(password) if password is not None else ""
    spec = rules.HumanSpec(
        user_id=user_id,
        org_id=await store.default_org_id(),
        username=f"name-{user_id}",
        profile=rules.Profile(given_name="Alice", family_name="Liddell"),
        email=rules.Email(address="alice@example.com", verified=True),
        password_hash=password_hash,
    )
    return await store.create_user(rules.new_human(spec, WallClock().now_ms()))


async def outcome(coro) -> tuple[str, int | None]:
    """The error id of a check (and its failedAttempts), or ("ok", None)."""
    try:
        await coro
    except (InvalidArgument, FailedPrecondition, ResourceExhausted) as exc:
        return exc.error_id, exc.extra.get("failedAttempts")
    return "ok", None


async def test_the_right_password_passes_and_clears_earlier_failures(store, hasher):
    await add_user(store, hasher)
    passwords = service(store, hasher)
    assert await outcome(passwords.verify_password("u1", "wrong", caller=CALLER)) == (
        "COMMAND-3M0fs",
        1,
    )
    assert (await store.get_user("u1")).failed_password_attempts == 1  # there is one to clear

    await passwords.verify_password("u1", PASSWORD, caller=CALLER)

    assert (await store.get_user("u1")).failed_password_attempts == 0


async def test_each_wrong_password_reports_the_failures_so_far(store, hasher):
    await add_user(store, hasher)
    passwords = service(store, hasher, max_attempts=0)

    results = [
        await outcome(passwords.verify_password("u1", "wrong", caller=CALLER)) for _ in range(3)
    ]

    assert results == [("COMMAND-3M0fs", 1), ("COMMAND-3M0fs", 2), ("COMMAND-3M0fs", 3)]


async def test_the_wrong_password_error_carries_a_credentials_check_detail(store, hasher):
    await add_user(store, hasher)

    with pytest.raises(InvalidArgument) as caught:
        await service(store, hasher).verify_password("u1", "wrong", caller=CALLER)

    detail = caught.value.detail()
    assert caught.value.detail_type == "CredentialsCheckError"
    assert detail == {"id": "COMMAND-3M0fs", "message": "Password is invalid", "failedAttempts": 1}


async def test_max_two_attempts_gives_invalid_invalid_then_locked(store, hasher):
    """Spec §16 item 9: the second failure locks, the third attempt reports the lock."""
    await add_user(store, hasher)
    passwords = service(store, hasher, max_attempts=2)

    results = [
        await outcome(passwords.verify_password("u1", "wrong", caller=CALLER)) for _ in range(3)
    ]

    assert results == [("COMMAND-3M0fs", 1), ("COMMAND-3M0fs", 2), ("COMMAND-JLK35", None)]
    assert (await store.get_user("u1")).state == rules.LOCKED


async def test_a_locked_user_fails_even_with_the_right_password(store, hasher):
    await add_user(store, hasher)
    await store.mutate("u1", rules.lock)

    assert await outcome(service(store, hasher).verify_password("u1", PASSWORD, caller=CALLER)) == (
        "COMMAND-JLK35",
        None,
    )


async def test_an_unknown_user_is_a_failed_precondition(store, hasher):
    assert await outcome(
        service(store, hasher).verify_password("nobody", PASSWORD, caller=CALLER)
    ) == (
        "COMMAND-3n77z",
        None,
    )


async def test_a_user_without_password_cannot_pass_a_password_check(store, hasher):
    await add_user(store, hasher, password=None)

    assert await outcome(service(store, hasher).verify_password("u1", PASSWORD, caller=CALLER)) == (
        "COMMAND-3nJ4t",
        None,
    )


async def test_without_lockout_no_number_of_failures_locks(store, hasher):
    await add_user(store, hasher)
    passwords = service(store, hasher, max_attempts=0)

    results = [
        await outcome(passwords.verify_password("u1", "wrong", caller=CALLER)) for _ in range(5)
    ]

    assert results == [("COMMAND-3M0fs", n) for n in range(1, 6)]  # counted, never locked
    user = await store.get_user("u1")
    assert (user.state, user.failed_password_attempts) == (rules.ACTIVE, 5)


class CountingHasher(PasswordHasher):
    """Real hashing that counts how many verifications actually ran."""

    def __init__(self) -> None:
        super().__init__(**hasher_args(settings()))
        self.verifications = 0

    async def verify(self, encoded: str, password: str) -> bool:
        self.verifications += 1
        return await super().verify(encoded, password)


async def test_thirty_concurrent_wrong_passwords_are_verified_at_most_max_times(store, hasher):
    await add_user(store, hasher)
    counting = CountingHasher()
    try:
        results = await asyncio.gather(
            *(
                outcome(service(store, counting).verify_password("u1", f"wrong-{n}", caller=CALLER))
                for n in range(30)
            )
        )
    finally:
        counting.close()

    invalid = sorted(failed or 0 for error_id, failed in results if error_id == "COMMAND-3M0fs")
    others = Counter(error_id for error_id, _ in results if error_id != "COMMAND-3M0fs")
    user = await store.get_user("u1")
    assert counting.verifications == 3
    assert invalid == [1, 2, 3]
    # the other 27 waited for the three in flight, whose failures locked the user
    assert others == {"COMMAND-JLK35": 27}
    assert (user.state, user.failed_password_attempts) == (rules.LOCKED, 3)


async def test_checks_beyond_the_reserved_ones_are_busy(store, hasher, redis):
    await add_user(store, hasher)
    for n in range(3):
        await store.begin_password_check("u1", f"held-{n}", WallClock().now_ms() + 60_000, 3)

    started = asyncio.get_running_loop().time()
    passwords = service(store, hasher, busy_wait_s=0.3)
    assert await outcome(passwords.verify_password("u1", PASSWORD, caller=CALLER)) == (
        "COMMAND-pwBusy",
        None,
    )
    assert asyncio.get_running_loop().time() - started >= 0.3  # it waited before giving up


async def test_reservations_of_a_crashed_verifier_expire_at_their_deadline(store, hasher):
    await add_user(store, hasher)
    for n in range(3):
        await store.begin_password_check("u1", f"crashed-{n}", WallClock().now_ms() - 1, 3)

    assert await outcome(service(store, hasher).verify_password("u1", PASSWORD, caller=CALLER)) == (
        "ok",
        None,
    )


class StuckHasher(PasswordHasher):
    """Verification that never finishes on its own: the check can only end by cancellation."""

    def __init__(self) -> None:
        super().__init__(**hasher_args(settings()))
        self.started = asyncio.Event()

    async def verify(self, encoded: str, password: str) -> bool:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_cancelled_check_neither_counts_nor_keeps_its_reservation(store, hasher, redis):
    await add_user(store, hasher)
    stuck = StuckHasher()
    check = asyncio.create_task(service(store, stuck).verify_password("u1", "wrong", caller=CALLER))
    await asyncio.wait_for(stuck.started.wait(), 5)
    assert await redis.zcard(keys.user_attempts("u1")) == 1
    check.cancel()
    with pytest.raises(asyncio.CancelledError):
        await check

    stuck.close()
    assert await redis.zcard(keys.user_attempts("u1")) == 0
    user = await store.get_user("u1")
    assert user is not None
    assert user.failed_password_attempts == 0


class LockingHasher(PasswordHasher):
    """Real hashing; an administrator locks the user while the hash is being verified."""

    def __init__(self, store: RedisUserStore) -> None:
        super().__init__(**hasher_args(settings()))
        self.store = store

    async def verify(self, encoded: str, password: str) -> bool:
        await self.store.mutate("u1", rules.lock)
        return await super().verify(encoded, password)


async def test_a_right_password_of_a_user_locked_meanwhile_is_refused(store, hasher):
    await add_user(store, hasher)
    locking = LockingHasher(store)
    try:
        result = await outcome(
            service(store, locking).verify_password("u1", PASSWORD, caller=CALLER)
        )
    finally:
        locking.close()

    assert result == ("COMMAND-SFA3t", None)


async def test_a_hash_with_old_parameters_is_upgraded_on_a_right_password(store, hasher):
    weak = hasher_for(settings(argon2_memory_kib=8))
    strong = hasher_for(settings(argon2_memory_kib=16))
    try:
        await add_user(store, weak)
        await service(store, strong).verify_password("u1", PASSWORD, caller=CALLER)
        upgraded = (await store.get_user("u1")).human.password_hash
        await service(store, strong).verify_password("u1", PASSWORD, caller=CALLER)
    finally:
        weak.close()
        strong.close()

    assert "m=16," in upgraded
    assert not strong.needs_rehash(upgraded)


async def test_changing_the_password_needs_the_current_one(store, hasher):
    await add_user(store, hasher)
    passwords = service(store, hasher)

    wrong = await outcome(
        passwords.change_password("u1", "wrong", "N3w-Password!", False, caller=CALLER)
    )
    assert wrong == ("COMMAND-3M0fs", 1)
    assert (await store.get_user("u1")).failed_password_attempts == 1  # it counted

    await passwords.change_password("u1", PASSWORD, "N3w-Password!", False, caller=CALLER)

    assert (await store.get_user("u1")).failed_password_attempts == 0
    assert await outcome(passwords.verify_password("u1", "N3w-Password!", caller=CALLER)) == (
        "ok",
        None,
    )


async def test_user_events_reach_the_stream_without_any_secret(store, hasher, redis):
    user = await add_user(store, hasher)
    passwords = service(store, hasher, max_attempts=2)
    await passwords.verify_password("u1", PASSWORD, caller=CALLER)
    failures = [
        await outcome(passwords.verify_password("u1", "Wr0ng-Guess!", caller=CALLER))
        for _ in range(2)
    ]
    assert failures == [("COMMAND-3M0fs", 1), ("COMMAND-3M0fs", 2)]
    assert (await store.get_user("u1")).state == rules.LOCKED
    await store.mutate("u1", rules.unlock)
    changed = await passwords.set_password("u1", "N3w-Password!", False)

    entries = await redis.xrange(keys.event_stream(keys.event_partition("u1", 2)))
    types = [fields[b"type"].decode() for _, fields in entries if fields[b"aggregateId"] == b"u1"]
    raw = b" ".join(value for _, fields in entries for value in fields.values())
    assert types == [
        "user.human.added",
        "user.human.email.verified",
        "user.human.password.check.succeeded",
        "user.human.password.check.failed",
        "user.human.password.check.failed",
        "user.locked",
        "user.unlocked",
        "user.human.password.changed",
    ]
    assert user.human is not None
    assert changed.human is not None
    for secret in (
        PASSWORD,
        "Wr0ng-Guess!",
        "N3w-Password!",
        user.human.password_hash,
        changed.human.password_hash,
        "$argon2",
    ):
        assert secret.encode() not in raw


async def test_user_events_carry_zitadels_envelope(store, hasher, redis):
    await add_user(store, hasher)

    _, fields = (await redis.xrange(keys.event_stream(keys.event_partition("u1", 2))))[-1]

    event = {key.decode(): value.decode() for key, value in fields.items()}
    assert event["aggregateType"] == "user"
    assert event["instanceId"] == store.instance_id
    assert event["resourceOwner"] == await store.default_org_id()
    assert event["createdAt"].endswith("Z")
    assert msgspec.json.decode(event["payload"]) == {}


# -- personal access tokens ------------------------------------------------------------------


async def add_robot(store, *, expiration_ms: int | None = None) -> str:
    change = rules.new_machine(
        user_id="m1",
        org_id=await store.default_org_id(),
        username="robot",
        name="Robot",
        description="",
        now_ms=WallClock().now_ms(),
        grants=(Grant(roles=("IAM_LOGIN_CLIENT",)),),
    )
    await store.create_user(change)
    issued = tokens.issue(tokens.PAT_PREFIX, "t1", "t1", b"\x05" * 32)
    await store.add_pat("m1", issued, expiration_ms)
    return issued.plain


async def test_a_valid_pat_authenticates_its_machine_user_with_its_grants(store, hasher):
    token = await add_robot(store)

    caller = await service(store, hasher).authenticate_pat(token)

    assert caller is not None
    assert (caller.user_id, caller.grants) == ("m1", (Grant(roles=("IAM_LOGIN_CLIENT",)),))


async def test_a_pat_with_a_wrong_secret_or_shape_authenticates_nobody(store, hasher):
    token = await add_robot(store)
    passwords = service(store, hasher)

    assert await passwords.authenticate_pat(token[:-1] + "x") is None
    assert await passwords.authenticate_pat(token.replace("p.", "s.", 1)) is None
    assert await passwords.authenticate_pat("p.unknown.secret") is None


async def test_an_expired_pat_authenticates_nobody(store, hasher, redis):
    token = await add_robot(store, expiration_ms=WallClock().now_ms() + 60_000)
    await redis.hset(keys.pat("t1"), "exp", WallClock().now_ms() - 1)  # expired, key not yet

    assert await service(store, hasher).authenticate_pat(token) is None


@pytest.mark.parametrize("transition", [rules.deactivate, rules.lock, rules.remove])
async def test_a_pat_of_a_disabled_user_authenticates_nobody(store, hasher, transition):
    token = await add_robot(store)
    await store.mutate("m1", transition)

    assert await service(store, hasher).authenticate_pat(token) is None
