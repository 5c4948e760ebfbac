"""Secrets at rest: the keyring's sealing and keyed hashes, rotation, and the start rules.

A TOTP seed sealed under the previous master key must still check after a rotation
(``SESSIOND_MASTER_KEY_OLD``); a server on a real Redis without a key refuses to start; the
dev setup keeps a generated key in its data dir, private to its owner.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyotp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from app.process.master_key import MASTER_KEY_FILE, with_master_key
from app.process.settings import Settings
from app.services.sealing import Keyring, SealError, new_master_key, parse_master_key
from storage import keys
from tests.apifixtures import make_settings
from tests.support import Api

OLD, NEW = new_master_key(), new_master_key()


# -- the keyring ------------------------------------------------------------------------------
def test_a_sealed_value_opens_only_for_its_purpose_and_untampered():
    ring = Keyring.from_text(OLD)
    sealed = ring.seal("totp:1", b"JBSWY3DPEHPK3PXP")
    assert b"JBSWY3DPEHPK3PXP" not in sealed.encode()
    assert ring.open("totp:1", sealed) == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(SealError):
        ring.open("totp:2", sealed)  # bound to its purpose
    kid, _, body = sealed.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SealError):
        ring.open("totp:1", f"{kid}.{flipped}")
    with pytest.raises(SealError):
        Keyring.from_text(NEW).open("totp:1", sealed)  # another key


def test_seals_are_randomised_and_digests_are_keyed():
    ring = Keyring.from_text(OLD)
    assert ring.seal("p", b"x") != ring.seal("p", b"x")
    assert ring.digest("p", "12345678") == ring.digest("p", "12345678")
    assert ring.digest("p", "12345678") != Keyring.from_text(NEW).digest("p", "12345678")
    assert ring.digest("p", "1") != ring.digest("q", "1")


def test_after_a_rotation_the_old_key_still_opens_and_matches():
    before = Keyring.from_text(OLD)
    sealed, digest = before.seal("totp:u", b"seed"), before.digest("rc:u", "AAAAA-BBBBB")
    after = Keyring.from_text(NEW, OLD)
    assert after.open("totp:u", sealed) == b"seed"
    assert after.matches("rc:u", "AAAAA-BBBBB", digest)
    assert digest in after.digests("rc:u", "AAAAA-BBBBB")
    assert after.needs_reseal(sealed)
    assert not after.needs_reseal(after.seal("totp:u", b"seed"))
    assert not after.matches("rc:u", "AAAAA-BBBBC", digest)


@pytest.mark.parametrize("bad", ["", "not base64!", "c2hvcnQ=", "A" * 50])
def test_a_master_key_must_be_32_bytes_of_base64(bad: str):
    with pytest.raises(ValueError, match="master key"):
        parse_master_key(bad)


def test_a_bad_master_key_is_refused_as_configuration():
    with pytest.raises(SystemExit, match="master key"):
        Settings.from_env({"SESSIOND_MASTER_KEY": "c2hvcnQ="})


# -- start rules ----------------------------------------------------------------------------
def test_a_server_on_a_real_redis_without_a_master_key_refuses_to_start(redis_url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env["SESSIOND_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "app"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert b"SESSIOND_MASTER_KEY is required" in done.stderr


def test_dev_mode_keeps_one_private_generated_key(tmp_path: Path):
    settings = Settings(data_dir=str(tmp_path))
    first = with_master_key(settings, dev_mode=True)
    second = with_master_key(settings, dev_mode=True)
    assert first.master_key == second.master_key
    assert first.dev_mode
    parse_master_key(first.master_key)
    mode = stat.S_IMODE((tmp_path / MASTER_KEY_FILE).stat().st_mode)
    assert mode == 0o600


def test_the_dev_mode_flag_cannot_come_from_the_environment():
    with pytest.raises(SystemExit, match="DEV_MODE"):
        Settings.from_env({"SESSIOND_DEV_MODE": "1"})


# -- rotation end to end ----------------------------------------------------------------------
@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Api]:
    from app.application import create_app
    from app.process.bootstrap import bootstrap

    await bootstrap(settings, dev_mode=False)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        yield Api(client)


async def test_a_totp_registered_before_a_key_rotation_still_checks(
    redis: aioredis.Redis, redis_url: str
):
    async with served(make_settings(redis_url, master_key=OLD)) as api:
        user = await api.human()
        registered = await api.call("POST", f"/v2/users/{user}/totp", body={})
        totp = pyotp.TOTP(registered.body["secret"])
        first: Any = await redis.hget(keys.user(user), "totp")
        sealed = bytes(first or b"").decode()
        assert registered.body["secret"] not in sealed
        codes = await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 1})
    if 30 - time.time() % 30 < 5:  # the verification and the check must share a window
        time.sleep(30 - time.time() % 30 + 0.05)
    async with served(make_settings(redis_url, master_key=NEW, master_key_old=OLD)) as api:
        verified = await api.call(
            "POST", f"/v2/users/{user}/totp/verify", body={"code": totp.now()}
        )
        assert verified.status == 200, verified.body
        sid = (await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        recovered = await api.set(
            sid, {"checks": {"recoveryCode": {"code": codes.body["recoveryCodes"][0]}}}
        )
        assert recovered.status == 200, recovered.body
        checked = await api.set(sid, {"checks": {"totp": {"code": totp.at(time.time() + 30)}}})
        assert checked.status == 200, checked.body
    # the successful check re-sealed the seed under the new key: the old one can go
    stored: Any = await redis.hget(keys.user(user), "totp")
    resealed = bytes(stored).decode()
    assert resealed != sealed
    new_ring = Keyring.from_text(NEW)
    assert not new_ring.needs_reseal(resealed)
    assert new_ring.open(f"totp:{user}", resealed).decode() == registered.body["secret"]
    async with served(make_settings(redis_url, master_key=NEW)) as api:  # old key dropped
        sid = (await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        replay = await api.set(sid, {"checks": {"totp": {"code": totp.at(time.time() + 30)}}})
        assert (replay.status, replay.error_id) == (400, "TOTP-Auw0a")  # opens: only used up
