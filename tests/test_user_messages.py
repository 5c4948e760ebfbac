"""Verification and reset codes with ``sendCode`` / ``sendLink`` go through the outbox.

The job is queued in the same write as the user change that holds the code's hash; its
recipient, code and link are sealed; a link template is checked when the request arrives;
outside dev mode a channel nobody configured refuses the request and writes nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
import pytest

from actors.delivery import OUTBOX_PURPOSE, Message
from app.services.sealing import Keyring
from storage import keys
from storage.outbox import job_from_fields
from tests.support import MASTER_KEY, Api

pytestmark = pytest.mark.asyncio


def human(email: dict[str, Any], phone: dict[str, Any] | None = None) -> dict[str, Any]:
    name = f"msg-{secrets.token_hex(4)}"
    body: dict[str, Any] = {
        "username": name,
        "profile": {"givenName": "M", "familyName": name},
        "email": email,
    }
    if phone is not None:
        body["phone"] = phone
    return body


async def jobs(redis: Any) -> list[tuple[dict[str, str], Message]]:
    """Each queued job's plain fields and its opened message."""
    ring = Keyring.from_text(MASTER_KEY)
    found = []
    for _, raw in await redis.xrange(keys.OUTBOX):
        job = job_from_fields(raw)
        message = msgspec.json.decode(ring.open(OUTBOX_PURPOSE, job.sealed), type=Message)
        found.append(({k.decode(): v.decode() for k, v in raw.items()}, message))
    return found


@pytest.mark.settings(smtp_host="127.0.0.1", sms_webhook_url="http://x", sms_webhook_secret="s")
async def test_send_code_queues_both_verifications_with_the_new_user(api: Api, redis: Any):
    template = "https://login.example.com/verify?user={{.UserID}}&code={{.Code}}"
    body = human(
        {"email": "new@example.com", "sendCode": {"urlTemplate": template}},
        {"phone": "+41791234567", "sendCode": {}},
    )
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert reply.status == 201, reply.body
    assert "emailCode" not in reply.body
    assert "phoneCode" not in reply.body
    user = reply.body["userId"]
    queued = await jobs(redis)
    assert sorted(fields["template"] for fields, _ in queued) == ["email_code", "phone_code"]
    by_template = {fields["template"]: (fields, message) for fields, message in queued}
    email_fields, email = by_template["email_code"]
    assert email.recipient == "new@example.com"
    assert email.url == f"https://login.example.com/verify?user={user}&code={email.code}"
    assert "new@example.com" not in " ".join(email_fields.values())
    assert email.code not in " ".join(email_fields.values())
    verified = await api.call(
        "POST", f"/v2/users/{user}/email/verify", body={"verificationCode": email.code}
    )
    assert verified.status == 200, verified.body  # the sent code is the stored one
    _, sms = by_template["phone_code"]
    verified = await api.call(
        "POST", f"/v2/users/{user}/phone/verify", body={"verificationCode": sms.code}
    )
    assert verified.status == 200, verified.body


async def test_without_a_channel_send_code_is_refused_and_nothing_is_written(api: Api, redis: Any):
    body = human({"email": "nochannel@example.com", "sendCode": {}})
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert (reply.status, reply.body["code"], reply.error_id) == (400, 9, "NOTIF-noChannel")
    assert await redis.xlen(keys.OUTBOX) == 0
    assert not await redis.exists(keys.login_name(body["username"].lower()))


@pytest.mark.settings(smtp_host="127.0.0.1")
async def test_a_bad_link_template_is_refused_before_anything_is_written(api: Api, redis: Any):
    body = human({"email": "bad@example.com", "sendCode": {"urlTemplate": "{{.SessionID}}"}})
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert (reply.status, reply.error_id) == (400, "DOMAIN-oGh5e")
    assert await redis.xlen(keys.OUTBOX) == 0


@pytest.mark.settings(smtp_host="127.0.0.1", sms_webhook_url="http://x", sms_webhook_secret="s")
@pytest.mark.parametrize(
    ("link", "recipient"),
    [
        ({}, "email"),
        ({"notificationType": "NOTIFICATION_TYPE_Email"}, "email"),
        ({"notificationType": "NOTIFICATION_TYPE_SMS"}, "phone"),
        ({"notificationType": 2, "urlTemplate": "https://x/{{.Code}}"}, "phone"),
    ],
)
async def test_a_reset_link_is_sent_on_its_channel_and_its_code_sets_the_password(
    api: Api, redis: Any, link: dict[str, Any], recipient: str
):
    body = human(
        {"email": "reset@example.com", "isVerified": True},
        {"phone": "+41790000000", "isVerified": True},
    )
    user = (await api.call("POST", "/v2/users/human", body=body)).body["userId"]
    reply = await api.call("POST", f"/v2/users/{user}/password_reset", body={"sendLink": link})
    assert reply.status == 200, reply.body
    assert "verificationCode" not in reply.body
    [(fields, message)] = await jobs(redis)
    assert fields["template"] == "password_reset"
    assert fields["channel"] == ("sms" if recipient == "phone" else "email")
    assert message.recipient == ("+41790000000" if recipient == "phone" else "reset@example.com")
    changed = await api.call(
        "POST",
        f"/v2/users/{user}/password",
        body={"newPassword": {"password": "N3w-Passw0rd!"}, "verificationCode": message.code},
    )
    assert changed.status == 200, changed.body


@pytest.mark.settings(smtp_host="127.0.0.1")
@pytest.mark.parametrize(
    "body",
    [
        {"sendLink": {"notificationType": "NOTIFICATION_TYPE_Pigeon"}},
        {"sendLink": {"notificationType": 7}},
        {"sendLink": {"urlTemplate": "{{.Nope}}"}},
        {"sendLink": {}, "returnCode": {}},
    ],
)
async def test_bad_reset_requests_are_400(api: Api, body: dict[str, Any]):
    user = await api.human()
    reply = await api.call("POST", f"/v2/users/{user}/password_reset", body=body)
    assert (reply.status, reply.body["code"]) == (400, 3), reply.body
