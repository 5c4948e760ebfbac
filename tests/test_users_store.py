"""RedisUserStore and its scripts against a real server: users, login names, orgs, PATs."""

from __future__ import annotations

import time

import msgspec
import pytest

from actors import tokens
from actors import users as rules
from actors.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from actors.permissions import Grant
from app.process.settings import Settings
from app.services.ids import SecretsMinter
from storage import keys
from storage.user_codec import user_fields
from storage.users import MAX_WRITE_ATTEMPTS, RedisUserStore

NOW = 1_700_000_000_000


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self, now_ms: int = NOW) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@pytest.fixture(name="clock")
def _clock():
    return StepClock()


@pytest.fixture(name="store")
async def _store(fast_redis, clock):
    store = RedisUserStore(
        fast_redis,
        Settings(domain="example.test", event_partitions=2),
        clock=clock,
        ids=SecretsMinter(),
    )
    await store.bootstrap()
    return store


def human_change(
    org_id: str,
    *,
    user_id: str = "u1",
    username: str = "Alice",
    email_code: rules.Code | None = None,
) -> rules.Change:
    spec = rules.HumanSpec(
        user_id=user_id,
        org_id=org_id,
        username=username,
        profile=rules.Profile(given_name="Alice", family_name="Liddell"),
        email=rules.Email(
            address="alice@example.com", verified=email_code is None, code=email_code
        ),
        password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    )
    return rules.new_human(spec, NOW)


async def add_alice(store: RedisUserStore, **kwargs) -> rules.User:
    return await store.create_user(human_change(await store.default_org_id(), **kwargs))


async def test_a_created_user_reads_back_as_written_with_its_event_count(store):
    created = await add_alice(store)

    assert created.sequence == 2  # user.human.added + user.human.email.verified
    assert await store.get_user("u1") == created


async def test_usernames_are_unique_instance_wide_ignoring_case(store):
    await add_alice(store)

    with pytest.raises(AlreadyExists) as caught:
        await add_alice(store, user_id="u2", username="ALICE")
    assert caught.value.error_id == "COMMAND-k2h3d"


async def test_a_user_id_cannot_be_taken_twice(store):
    await add_alice(store)

    with pytest.raises(AlreadyExists):
        await add_alice(store, username="someone-else")


async def test_a_user_in_an_unknown_organization_is_not_created(store, redis):
    with pytest.raises(NotFound):
        await store.create_user(human_change("no-such-org"))
    assert await redis.exists(keys.user("u1")) == 0


async def test_login_names_resolve_ignoring_case_with_or_without_the_org_domain(store):
    await add_alice(store)

    by_username = await store.user_ref_by_login_name("aLiCe")
    by_domain = await store.user_ref_by_login_name("ALICE@zitadel.example.test")

    assert by_username is not None
    assert by_username == by_domain
    assert by_username.login_name == "Alice"  # preferred login name = username as given
    assert by_username.display_name == "Alice Liddell"


async def test_a_deleted_user_is_gone_and_its_username_is_free_again(store):
    await add_alice(store)

    await store.delete_user("u1")

    assert await store.get_user("u1") is None
    assert await store.user_ref_by_login_name("alice") is None
    assert (await add_alice(store, user_id="u2")).id == "u2"


async def test_deleting_a_deleted_user_is_not_found(store):
    await add_alice(store)
    await store.delete_user("u1")

    with pytest.raises(NotFound) as caught:
        await store.delete_user("u1")
    assert caught.value.error_id == "COMMAND-m9od"


async def test_deactivating_an_inactive_user_fails_as_zitadel_does(store):
    await add_alice(store)
    await store.mutate("u1", rules.deactivate)

    with pytest.raises(FailedPrecondition) as caught:
        await store.mutate("u1", rules.deactivate)
    assert (caught.value.error_id, caught.value.key) == (
        "COMMAND-5M0sf",
        "Errors.User.AlreadyInactive",
    )


async def test_reactivating_an_active_user_fails_as_zitadel_does(store):
    await add_alice(store)

    with pytest.raises(FailedPrecondition) as caught:
        await store.mutate("u1", rules.reactivate)
    assert caught.value.error_id == "COMMAND-6M0sf"


async def test_locking_a_locked_user_and_unlocking_an_unlocked_one_fail(store):
    await add_alice(store)
    with pytest.raises(FailedPrecondition) as not_locked:
        await store.mutate("u1", rules.unlock)
    await store.mutate("u1", rules.lock)

    with pytest.raises(FailedPrecondition) as already_locked:
        await store.mutate("u1", rules.lock)
    assert (not_locked.value.error_id, already_locked.value.error_id) == (
        "COMMAND-4M0ds",
        "COMMAND-3NN8v",
    )


async def test_transitions_of_an_unknown_user_are_not_found(store):
    with pytest.raises(NotFound) as caught:
        await store.mutate("nobody", rules.deactivate)
    assert caught.value.error_id == "COMMAND-3M9ds"


async def test_state_changes_bump_the_view_version_sessions_compare(store):
    created = await add_alice(store)

    locked = await store.mutate("u1", rules.lock)

    assert locked.view_version == created.view_version + 1
    assert (await store.user_view("u1")).state == rules.LOCKED


async def test_unlocking_forgets_failed_password_attempts(store, redis):
    await add_alice(store)
    await redis.hset(keys.user("u1"), mapping={"failed": 3, "state": rules.LOCKED})

    unlocked = await store.mutate("u1", rules.unlock)

    assert (unlocked.state, unlocked.failed_password_attempts) == (rules.ACTIVE, 0)


async def test_a_write_based_on_a_stale_revision_is_refused(store, redis):
    user = await add_alice(store)
    before = user_fields(user)
    await store.mutate("u1", rules.lock)

    status, _ = await store._write(
        "update",
        user,
        rules.deactivate(user, NOW),
        guard=("rev", "1"),
        creator_id="",
        ops=[],
        before=before,
    )

    assert status == "CONFLICT"
    assert (await store.get_user("u1")).state == rules.LOCKED


class RacedStore(RedisUserStore):
    """Another writer bumps ``rev`` right after each of the first ``races`` reads."""

    def __init__(self, *args, races: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.races = races
        self.loads = 0

    async def _load(self, user_id):
        loaded = await super()._load(user_id)
        self.loads += 1
        if self.loads <= self.races:
            await self._redis.execute("HINCRBY", keys.user(user_id), "rev", 1)
        return loaded


async def test_mutate_rereads_and_retries_when_another_writer_got_in_between(fast_redis, clock):
    raced = RacedStore(fast_redis, Settings(), clock=clock, ids=SecretsMinter(), races=2)
    await add_alice(raced)

    locked = await raced.mutate("u1", rules.lock)

    assert locked.state == rules.LOCKED
    assert raced.loads == 3
    assert (await raced.get_user("u1")) == locked


async def test_mutate_gives_up_with_aborted_when_it_never_wins(fast_redis, clock):
    raced = RacedStore(
        fast_redis, Settings(), clock=clock, ids=SecretsMinter(), races=MAX_WRITE_ATTEMPTS
    )
    await add_alice(raced)

    with pytest.raises(Aborted):
        await raced.mutate("u1", rules.lock)
    unlocked = await raced.get_user("u1")
    assert unlocked is not None
    assert unlocked.state == rules.ACTIVE


async def test_setting_a_password_records_when_and_invalidates_older_checks(store, clock):
    created = await add_alice(store)
    clock.now += 5_000

    changed = await store.set_password("u1", "$argon2id$new", True)

    assert changed.human.password_changed_ms == NOW + 5_000
    assert changed.human.password_change_required
    assert changed.view_version == created.view_version + 1
    assert (await store.user_view("u1")).password_changed_ms == NOW + 5_000


async def test_a_rehash_does_not_overwrite_a_password_changed_meanwhile(store):
    created = await add_alice(store)
    assert created.human is not None
    old_hash = created.human.password_hash
    await store.set_password("u1", "$argon2id$changed", False)

    replaced = await store.replace_password_hash("u1", old_hash, "$argon2id$rehashed")

    assert not replaced
    assert (await store.get_user("u1")).human.password_hash == "$argon2id$changed"


async def test_a_right_email_code_verifies_the_email_once(store, clock):
    await add_alice(store, email_code=rules.new_code("u1", "ABC123", NOW + 3_600_000))

    verified = await store.mutate("u1", lambda u, now: rules.verify_email(u, "ABC123", now))

    assert verified.human.email.verified
    assert verified.human.email.code is None


async def test_a_wrong_email_code_is_recorded_and_rejected(store, redis):
    created = await add_alice(store, email_code=rules.new_code("u1", "ABC123", NOW + 1))

    with pytest.raises(InvalidArgument) as caught:
        await store.mutate("u1", lambda u, now: rules.verify_email(u, "XYZ999", now))

    after = await store.get_user("u1")
    assert caught.value.error_id == "COMMAND-eis9R"
    assert not after.human.email.verified
    assert after.sequence == created.sequence + 1  # user.human.email.verification.failed


async def test_an_expired_email_code_is_rejected(store, clock):
    await add_alice(store, email_code=rules.new_code("u1", "ABC123", NOW + 1_000))
    clock.now += 2_000

    with pytest.raises(InvalidArgument):
        await store.mutate("u1", lambda u, now: rules.verify_email(u, "ABC123", now))


async def test_grants_accept_only_roles_of_their_resource_kind(store):
    await add_alice(store)

    with pytest.raises(InvalidArgument) as caught:
        await store.add_grant("u1", Grant(roles=("ORG_OWNER",)))  # an org role on the instance
    granted = await store.add_grant("u1", Grant(roles=("ORG_OWNER",), org_id="o1"))

    assert caught.value.key == "Errors.Member.InvalidRole"
    assert granted.grants == (Grant(roles=("ORG_OWNER",), org_id="o1"),)


async def test_a_second_grant_on_the_same_resource_already_exists(store):
    await add_alice(store)
    await store.add_grant("u1", Grant(roles=("IAM_OWNER",)))

    with pytest.raises(AlreadyExists):
        await store.add_grant("u1", Grant(roles=("IAM_OWNER_VIEWER",)))


async def test_org_names_are_unique_ignoring_case(store):
    await store.create_org("Acme Corp")

    with pytest.raises(AlreadyExists):
        await store.create_org("ACME CORP")


async def test_an_org_gets_a_domain_from_its_name_and_the_instance_domain(store):
    org = await store.create_org("Acme & Sons, Ltd.")

    assert org.domain == "acme-sons-ltd.example.test"
    assert await store.org_by_domain("ACME-SONS-LTD.example.test") == org


async def test_bootstrap_twice_keeps_one_instance_and_one_default_org(redis, fast_redis, clock):
    settings = Settings(domain="example.test")
    first = await RedisUserStore(fast_redis, settings, clock=clock, ids=SecretsMinter()).bootstrap()
    second = await RedisUserStore(
        fast_redis, settings, clock=clock, ids=SecretsMinter()
    ).bootstrap()

    assert first == second
    assert await redis.keys("orgname:*") == [keys.org_name("zitadel").encode()]


async def test_a_configured_instance_id_wins(fast_redis, clock):
    info = await RedisUserStore(
        fast_redis, Settings(instance_id="tenant-7"), clock=clock, ids=SecretsMinter()
    ).bootstrap()

    assert info.id == "tenant-7"


async def test_a_pat_is_stored_as_a_hash_with_its_expiry(store, redis, clock):
    clock.now = time.time_ns() // 1_000_000  # Redis applies key expiry on its own clock
    machine = rules.new_machine(
        user_id="m1",
        org_id=await store.default_org_id(),
        username="robot",
        name="Robot",
        description="",
        now_ms=NOW,
    )
    await store.create_user(machine)
    issued = tokens.issue(tokens.PAT_PREFIX, "t1", "t1", b"\x07" * 32)

    await store.add_pat("m1", issued, clock.now + 60_000)

    stored = await redis.hgetall(keys.pat("t1"))
    assert issued.plain.split(".")[2].encode() not in b"".join(stored.values())
    assert (await store.get_pat("t1")).secret_hash == issued.token_hash
    assert await redis.pttl(keys.pat("t1")) == pytest.approx(60_000, abs=5_000)


async def test_a_human_cannot_have_a_pat(store):
    await add_alice(store)
    issued = tokens.issue(tokens.PAT_PREFIX, "t1", "t1", b"\x07" * 32)

    with pytest.raises(FailedPrecondition):
        await store.add_pat("u1", issued, None)


async def test_ensuring_the_admin_twice_gives_one_iam_owner_with_the_token(store, redis):
    first = await store.ensure_admin("p.admintoken.s3cr3t")
    second = await store.ensure_admin("p.admintoken.s3cr3t")

    admin_id = await store.user_id_by_login_name("admin")
    admin = await store.get_user(admin_id)
    assert (first, second) == (False, False)  # nothing was replaced either time
    assert admin.grants == (Grant(roles=("IAM_OWNER",)),)
    assert (await store.get_pat("admintoken")).user_id == admin_id


async def test_an_admin_token_not_shaped_like_a_pat_is_refused(store):
    with pytest.raises(ValueError, match=r"p\.<tokenId>\.<secret>"):
        await store.ensure_admin("just-a-string")


def test_stored_user_fields_keep_the_hash_out_of_the_json_document():
    change = human_change("o1")

    fields = user_fields(change.user)

    assert change.user.human is not None
    assert fields["pw"] == change.user.human.password_hash
    assert "argon2" not in fields["human"]
    assert msgspec.json.decode(fields["human"])["profile"]["given_name"] == "Alice"
