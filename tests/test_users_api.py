"""The user API slice end to end: create_app on a real server, called over HTTP."""

from __future__ import annotations

import secrets
from typing import Any

import argon2
import pytest

from storage import keys
from tests.support import PASSWORD, Api


def human_body(username: str | None = None, **extra: Any) -> dict[str, Any]:
    username = username or f"user-{secrets.token_hex(4)}"
    body: dict[str, Any] = {
        "username": username,
        "profile": {"givenName": "Ada", "familyName": "Lovelace"},
        "email": {"email": f"{username}@example.com", "isVerified": True},
        "password": {"password": PASSWORD},
    }
    body.update(extra)
    return body


async def add_human(api: Api, body: dict[str, Any]) -> str:
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert reply.status == 201, reply.body
    return str(reply.body["userId"])


async def session_with_password(api: Api, user_id: str, password: str = PASSWORD):
    return await api.create(
        {"checks": {"user": {"userId": user_id}, "password": {"password": password}}}
    )


# -- creating ---------------------------------------------------------------------------------


async def test_add_human_user_answers_201_with_id_and_details_of_its_org(api, redis):
    reply = await api.call("POST", "/v2/users/human", body=human_body("ada"))

    default_org = (await redis.hget(keys.INSTANCE, "default_org")).decode()
    assert reply.status == 201
    assert reply.body["details"]["resourceOwner"] == default_org
    assert reply.body["details"]["sequence"] == "2"  # user.human.added, email verified
    assert reply.body["details"]["changeDate"].endswith("Z")
    assert "emailCode" not in reply.body


async def test_the_username_defaults_to_the_email(api):
    body = human_body()
    del body["username"]

    user_id = await add_human(api, body)

    user = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]
    assert user["username"] == body["email"]["email"]


async def test_snake_case_input_is_accepted_too(api):
    body = {
        "profile": {"given_name": "Ada", "family_name": "Lovelace"},
        "email": {"email": "snake@example.com", "is_verified": True},
    }

    reply = await api.call("POST", "/v2/users/human", body=body)

    assert reply.status == 201, reply.body


async def test_a_returned_email_code_verifies_the_email(api):
    body = human_body(email={"email": "code@example.com", "returnCode": {}})
    reply = await api.call("POST", "/v2/users/human", body=body)
    user_id, code = reply.body["userId"], reply.body["emailCode"]

    verified = await api.call(
        "POST", f"/v2/users/{user_id}/email/verify", body={"verificationCode": code}
    )

    user = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]
    assert (len(code), code.isupper() or code.isdigit()) == (6, True)
    assert verified.status == 200
    assert user["human"]["email"] == {"email": "code@example.com", "isVerified": True}


@pytest.mark.settings(smtp_host="127.0.0.1")
async def test_a_sent_email_code_is_not_revealed(api):
    reply = await api.call(
        "POST",
        "/v2/users/human",
        body=human_body(email={"email": "sent@example.com", "sendCode": {}}),
    )

    assert reply.status == 201
    assert "emailCode" not in reply.body


async def test_a_wrong_email_code_is_an_invalid_argument(api):
    body = human_body(email={"email": "wrong@example.com", "returnCode": {}})
    user_id = (await api.call("POST", "/v2/users/human", body=body)).body["userId"]

    reply = await api.call(
        "POST", f"/v2/users/{user_id}/email/verify", body={"verificationCode": "NOTIT1"}
    )

    assert (reply.status, reply.body["code"], reply.error_id) == (400, 3, "COMMAND-eis9R")


async def test_a_returned_phone_code_verifies_the_phone(api):
    body = human_body(phone={"phone": "+41791234567", "returnCode": {}})
    reply = await api.call("POST", "/v2/users/human", body=body)
    user_id = reply.body["userId"]

    verified = await api.call(
        "POST",
        f"/v2/users/{user_id}/phone/verify",
        body={"verificationCode": reply.body["phoneCode"]},
    )

    phone = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]["human"]["phone"]
    assert verified.status == 200
    assert phone == {"phone": "+41791234567", "isVerified": True}


async def test_a_taken_username_is_409_whatever_its_case(api):
    await add_human(api, human_body("Grace"))

    reply = await api.call("POST", "/v2/users/human", body=human_body("GRACE"))

    assert (reply.status, reply.body["code"], reply.error_id) == (409, 6, "COMMAND-k2h3d")


async def test_a_missing_profile_is_a_plain_400(api):
    body = human_body()
    del body["profile"]

    reply = await api.call("POST", "/v2/users/human", body=body)

    assert (reply.status, reply.body["code"]) == (400, 3)
    assert "profile" in reply.body["message"]
    assert reply.body["details"] == []


async def test_an_invalid_email_is_refused(api):
    reply = await api.call(
        "POST",
        "/v2/users/human",
        body=human_body(email={"email": "no-at-sign", "isVerified": True}),
    )

    assert (reply.status, reply.error_id) == (400, "EMAIL-599BI")


async def test_idp_links_of_an_unconfigured_provider_are_refused_and_nothing_is_written(api):
    link = {"idpId": "no-such-idp", "userId": "2", "userName": "someone"}
    body = human_body(userId="linked-to-nothing", idpLinks=[link])
    reply = await api.call("POST", "/v2/users/human", body=body)

    assert (reply.status, reply.error_id) == (404, "COMMAND-0x0idp")
    assert (await api.call("GET", "/v2/users/linked-to-nothing")).status == 404


async def test_an_imported_argon2_hash_lets_the_user_log_in(api):
    encoded = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    body = human_body(hashedPassword={"hash": encoded})
    del body["password"]
    user_id = await add_human(api, body)

    assert (await session_with_password(api, user_id)).status == 201


async def test_an_imported_bcrypt_hash_is_refused(api):
    body = human_body(hashedPassword={"hash": "$2a$10$" + "a" * 53})
    del body["password"]

    reply = await api.call("POST", "/v2/users/human", body=body)

    assert (reply.status, reply.error_id) == (400, "COMMAND-hashAlg")


async def test_create_user_makes_a_machine_user_with_201(api):
    reply = await api.call(
        "POST",
        "/v2/users/new",
        body={
            "organizationId": await api.org(),
            "username": "robot",
            "machine": {"name": "Robot", "description": "does things"},
        },
    )

    user = (await api.call("GET", f"/v2/users/{reply.body['id']}")).body["user"]
    assert reply.status == 201
    assert reply.body["creationDate"].endswith("Z")
    assert user["machine"] == {"name": "Robot", "description": "does things"}
    assert "human" not in user


async def test_create_user_needs_exactly_one_of_human_and_machine(api):
    reply = await api.call("POST", "/v2/users/new", body={"organizationId": await api.org()})

    assert (reply.status, reply.body["details"]) == (400, [])


async def test_create_user_in_an_unknown_org_is_404(api):
    reply = await api.call(
        "POST", "/v2/users/new", body={"organizationId": "nope", "machine": {"name": "Robot"}}
    )

    assert (reply.status, reply.error_id) == (404, "QUERY-iTTGJ")


# -- reading ----------------------------------------------------------------------------------


async def test_get_user_shows_the_zitadel_shape_and_no_secret(api):
    org_id = (
        await api.call("POST", "/v2/organizations", body={"name": "Analytical Engines"})
    ).body["organizationId"]
    user_id = await add_human(api, human_body("ada", organization={"orgId": org_id}))

    reply = await api.call("GET", f"/v2/users/{user_id}")

    user = reply.body["user"]
    assert reply.status == 200
    assert (user["userId"], user["state"], user["preferredLoginName"]) == (
        user_id,
        "USER_STATE_ACTIVE",
        "ada",
    )
    assert user["loginNames"] == ["ada", "ada@analytical-engines.localhost"]
    assert user["human"]["profile"] == {
        "givenName": "Ada",
        "familyName": "Lovelace",
        "displayName": "Ada Lovelace",
    }
    assert user["human"]["passwordChanged"].endswith("Z")
    assert user["details"]["resourceOwner"] == org_id
    assert "argon2" not in str(reply.body)


async def test_an_unknown_user_is_404(api):
    reply = await api.call("GET", "/v2/users/unknown")

    assert (reply.status, reply.error_id) == (404, "QUERY-Dfbg2")


async def test_a_caller_without_permission_cannot_read_others(api):
    user_id = await add_human(api, human_body())
    _, token = await api.machine_with_pat([])

    reply = await api.call("GET", f"/v2/users/{user_id}", token=token)

    assert (reply.status, reply.body["code"]) == (403, 7)


async def test_anyone_may_read_themselves(api):
    robot_id, token = await api.machine_with_pat([])

    reply = await api.call("GET", f"/v2/users/{robot_id}", token=token)

    assert reply.status == 200


async def test_the_login_name_works_for_a_session_user_check(api):
    user_id = await add_human(api, human_body("Charles"))

    reply = await api.create({"checks": {"user": {"loginName": "CHARLES@zitadel.localhost"}}})
    session = await api.get(reply.body["sessionId"])

    assert session.body["session"]["factors"]["user"]["id"] == user_id
    assert session.body["session"]["factors"]["user"]["loginName"] == "Charles"


# -- state ------------------------------------------------------------------------------------


async def test_deactivating_twice_is_a_failed_precondition(api):
    user_id = await add_human(api, human_body())

    first = await api.call("POST", f"/v2/users/{user_id}/deactivate")
    second = await api.call("POST", f"/v2/users/{user_id}/deactivate")

    assert first.status == 200
    assert (second.status, second.body["code"], second.error_id) == (400, 9, "COMMAND-5M0sf")


async def test_a_deactivated_user_fails_the_session_user_check(api):
    user_id = await add_human(api, human_body())
    await api.call("POST", f"/v2/users/{user_id}/deactivate")

    reply = await api.create({"checks": {"user": {"userId": user_id}}})

    assert (reply.status, reply.error_id) == (400, "SESSION-Gj4ko")


async def test_reactivating_restores_the_user(api):
    user_id = await add_human(api, human_body())
    await api.call("POST", f"/v2/users/{user_id}/deactivate")

    reply = await api.call("POST", f"/v2/users/{user_id}/reactivate")

    user = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]
    assert reply.status == 200
    assert user["state"] == "USER_STATE_ACTIVE"


async def test_lock_then_unlock_changes_the_state_each_time(api):
    user_id = await add_human(api, human_body())

    locked = await api.call("POST", f"/v2/users/{user_id}/lock")
    state_locked = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]["state"]
    unlocked = await api.call("POST", f"/v2/users/{user_id}/unlock")

    assert (locked.status, unlocked.status) == (200, 200)
    assert state_locked == "USER_STATE_LOCKED"
    assert int(unlocked.body["details"]["sequence"]) > int(locked.body["details"]["sequence"])


async def test_a_deleted_user_is_404_and_its_username_free(api):
    user_id = await add_human(api, human_body("turing"))

    deleted = await api.call("DELETE", f"/v2/users/{user_id}")

    assert deleted.status == 200
    gone = await api.call("GET", f"/v2/users/{user_id}")
    assert (gone.status, gone.error_id) == (404, "QUERY-Dfbg2")
    assert (await api.call("POST", "/v2/users/human", body=human_body("turing"))).status == 201


async def test_state_changes_of_an_unknown_user_are_404(api):
    reply = await api.call("POST", "/v2/users/nobody/lock")

    assert (reply.status, reply.error_id) == (404, "COMMAND-5M9fs")


async def test_an_org_user_manager_manages_only_its_own_orgs_users(api):
    org_a, org_b = await api.org(), await api.org()
    inside = await add_human(api, human_body(organization={"orgId": org_a}))
    outside = await add_human(api, human_body(organization={"orgId": org_b}))
    _, token = await api.machine_with_pat(["ORG_USER_MANAGER"], org_a)

    allowed = await api.call("POST", f"/v2/users/{inside}/lock", token=token)
    denied = await api.call("POST", f"/v2/users/{outside}/lock", token=token)

    assert (allowed.status, denied.status) == (200, 403)


# -- passwords --------------------------------------------------------------------------------


async def test_a_new_password_set_by_an_admin_works_and_the_old_one_not(api):
    user_id = await add_human(api, human_body())

    reply = await api.call(
        "POST", f"/v2/users/{user_id}/password", body={"newPassword": {"password": "An0ther-One!"}}
    )

    assert reply.status == 200
    assert (await session_with_password(api, user_id, "An0ther-One!")).status == 201
    assert (await session_with_password(api, user_id)).status == 400


async def test_setting_a_password_without_proof_needs_user_write(api):
    user_id = await add_human(api, human_body())
    _, token = await api.machine_with_pat([])

    reply = await api.call(
        "POST",
        f"/v2/users/{user_id}/password",
        token=token,
        body={"newPassword": {"password": "An0ther-One!"}},
    )

    assert reply.status == 403


@pytest.mark.settings(lockout_max_password_attempts=2)
async def test_a_wrong_current_password_counts_toward_the_lockout(api):
    user_id = await add_human(api, human_body())
    body = {"newPassword": {"password": "An0ther-One!"}, "currentPassword": "wrong"}

    first = await api.call("POST", f"/v2/users/{user_id}/password", body=body)
    second = await api.call("POST", f"/v2/users/{user_id}/password", body=body)
    third = await api.call("POST", f"/v2/users/{user_id}/password", body=body)

    assert first.body["details"][0]["failedAttempts"] == 1
    assert first.body["details"][0]["@type"].endswith("CredentialsCheckError")
    assert (second.error_id, second.body["details"][0]["failedAttempts"]) == ("COMMAND-3M0fs", 2)
    assert (third.status, third.error_id) == (400, "COMMAND-JLK35")


async def test_the_right_current_password_changes_it(api):
    user_id = await add_human(api, human_body())

    reply = await api.call(
        "POST",
        f"/v2/users/{user_id}/password",
        body={"newPassword": {"password": "An0ther-One!"}, "currentPassword": PASSWORD},
    )

    assert reply.status == 200
    assert (await session_with_password(api, user_id, "An0ther-One!")).status == 201


async def test_a_reset_code_sets_the_password_once(api):
    user_id = await add_human(api, human_body())
    reset = await api.call("POST", f"/v2/users/{user_id}/password_reset", body={"returnCode": {}})
    body = {
        "newPassword": {"password": "An0ther-One!"},
        "verificationCode": reset.body["verificationCode"],
    }
    _, nobody = await api.machine_with_pat([])

    first = await api.call("POST", f"/v2/users/{user_id}/password", token=nobody, body=body)
    again = await api.call("POST", f"/v2/users/{user_id}/password", token=nobody, body=body)

    assert first.status == 200
    assert (again.status, again.error_id) == (400, "COMMAND-2M9fs")


async def test_a_password_change_invalidates_password_factors_checked_before(api):
    user_id = await add_human(api, human_body())
    created = await session_with_password(api, user_id)

    await api.call(
        "POST", f"/v2/users/{user_id}/password", body={"newPassword": {"password": "An0ther-One!"}}
    )

    factors = (await api.get(created.body["sessionId"])).body["session"]["factors"]
    assert "password" not in factors


# -- organizations, PATs, administrators ------------------------------------------------------


async def test_add_organization_answers_201_and_refuses_a_taken_name(api):
    first = await api.call("POST", "/v2/organizations", body={"name": "Babbage & Co"})
    second = await api.call("POST", "/v2/organizations", body={"name": "babbage & co"})

    assert first.status == 201
    assert first.body["details"]["resourceOwner"] == first.body["organizationId"]
    assert (second.status, second.body["code"]) == (409, 6)


async def test_org_admins_get_org_owner_on_the_new_org(api):
    robot_id, token = await api.machine_with_pat([])

    reply = await api.call(
        "POST", "/v2/organizations", body={"name": "Owned Org", "admins": [{"userId": robot_id}]}
    )
    inside = await add_human(api, human_body(organization={"orgId": reply.body["organizationId"]}))

    assert reply.body["createdAdmins"] == [{"userId": robot_id}]
    assert (await api.call("GET", f"/v2/users/{inside}", token=token)).status == 200


async def test_an_unknown_org_admin_leaves_no_org_behind(api):
    reply = await api.call(
        "POST", "/v2/organizations", body={"name": "Half Made", "admins": [{"userId": "ghost"}]}
    )
    retry = await api.call("POST", "/v2/organizations", body={"name": "Half Made"})

    assert (reply.status, reply.error_id) == (404, "QUERY-Dfbg2")  # the admin, not the org
    assert retry.status == 201


async def test_an_admin_listed_twice_is_a_conflict_and_leaves_no_org_behind(api):
    robot_id, _ = await api.machine_with_pat([])
    twice = [{"userId": robot_id}, {"userId": robot_id, "roles": ["ORG_USER_MANAGER"]}]
    reply = await api.call("POST", "/v2/organizations", body={"name": "Twice", "admins": twice})
    retry = await api.call("POST", "/v2/organizations", body={"name": "Twice"})

    assert (reply.status, reply.body["code"], reply.error_id) == (409, 6, "COMMAND-PtXi1")
    assert retry.status == 201


async def test_a_user_can_be_placed_in_an_org_by_its_domain(api):
    org_id = await api.org("Difference Engines")

    user_id = await add_human(
        api, human_body(organization={"orgDomain": "difference-engines.localhost"})
    )

    user = (await api.call("GET", f"/v2/users/{user_id}")).body["user"]
    assert user["details"]["resourceOwner"] == org_id


async def test_creating_an_org_needs_org_create(api):
    _, token = await api.machine_with_pat(["IAM_USER_MANAGER"])

    reply = await api.call("POST", "/v2/organizations", token=token, body={"name": "Nope Inc"})

    assert reply.status == 403


async def test_a_pat_authenticates_its_machine_user(api):
    _, token = await api.machine_with_pat(["IAM_OWNER_VIEWER"])
    user_id = await add_human(api, human_body())

    reply = await api.call("GET", f"/v2/users/{user_id}", token=token)

    assert reply.status == 200
    assert token.startswith("p.")


async def test_a_pat_of_a_deactivated_machine_user_stops_working(api):
    robot_id, token = await api.machine_with_pat([])
    await api.call("POST", f"/v2/users/{robot_id}/deactivate")

    reply = await api.call("GET", f"/v2/users/{robot_id}", token=token)

    assert reply.status == 401


async def test_a_human_gets_no_pat(api):
    user_id = await add_human(api, human_body())

    reply = await api.call("POST", f"/v2/users/{user_id}/pats", body={})

    assert (reply.status, reply.body["code"]) == (400, 9)


async def test_a_pat_expiring_in_the_past_is_refused(api):
    robot_id, _ = await api.machine_with_pat([])

    reply = await api.call(
        "POST", f"/v2/users/{robot_id}/pats", body={"expirationDate": "2001-01-01T00:00:00Z"}
    )

    assert (reply.status, reply.body["details"]) == (400, [])


async def test_an_unknown_role_is_an_invalid_argument(api):
    user_id = await add_human(api, human_body())

    reply = await api.call(
        "POST",
        "/v2/administrators",
        body={"userId": user_id, "resource": {"instance": True}, "roles": ["IAM_GOD"]},
    )

    assert (reply.status, reply.body["code"]) == (400, 3)


async def test_an_instance_administrator_gets_its_permissions_at_once(api):
    robot_id, token = await api.machine_with_pat([])
    user_id = await add_human(api, human_body())
    before = await api.call("GET", f"/v2/users/{user_id}", token=token)

    granted = await api.call(
        "POST",
        "/v2/administrators",
        body={"userId": robot_id, "resource": {"instance": True}, "roles": ["IAM_OWNER_VIEWER"]},
    )

    after = await api.call("GET", f"/v2/users/{user_id}", token=token)
    assert granted.body["creationDate"].endswith("Z")
    assert (before.status, after.status) == (403, 200)


async def test_granting_instance_roles_needs_iam_member_write(api):
    robot_id, token = await api.machine_with_pat(["IAM_USER_MANAGER"])

    reply = await api.call(
        "POST",
        "/v2/administrators",
        token=token,
        body={"userId": robot_id, "resource": {"instance": True}, "roles": ["IAM_OWNER"]},
    )

    assert reply.status == 403
