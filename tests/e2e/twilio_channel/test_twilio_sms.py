"""Two-way SMS over Twilio, end to end: a real commhub server, the real twilio client, and a fake
Twilio on loopback that answers the Messages API and sends signed webhooks and status callbacks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.api_support import AgentSocket, assert_problem, phone_number, wait_for
from tests.e2e.twilio_channel.conftest import (
    PUBLIC,
    conversation_with,
    sent_to,
    status_is,
    texted_in,
    unique_text,
)

RECEIVED = "conversation.message_received"


def test_an_inbound_sms_creates_the_contact_and_conversation_and_reaches_the_agents_websocket(
        twilio_server, owner, fake, number):
    sender, body = phone_number(), unique_text("Can I move my appointment?")

    async def scenario() -> list[dict[str, Any]]:
        socket = AgentSocket(twilio_server.url, owner.token)
        await socket.connect()
        try:
            response = await asyncio.to_thread(
                fake.inbound_sms, PUBLIC, sender=sender, to=number, body=body,
                media=[("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg")])
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/xml")
            assert "<Response" in response.text and "<Message" not in response.text
            return await socket.collect(lambda seen: any(u.get("body") == body for u in seen), timeout=15)
        finally:
            await socket.close()

    updates = asyncio.run(scenario())
    pushed = next(u for u in updates if u["type"] == RECEIVED and u["body"] == body)
    assert pushed["attachments"] == [{"url": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                                      "content_type": "image/jpeg"}]
    row = conversation_with(owner, body)
    contact = owner.ok("GET", f"/api/v1/contacts/{row['contact_id']}")
    assert contact["phone"] == sender and row["channel"] == "sms"
    [received] = owner.messages(row["conversation_id"])
    assert received["kind"] == "in" and received["attachments"][0]["content_type"] == "image/jpeg"
    log = twilio_server.log()
    assert sender not in log and body not in log and "Media/ME1" not in log


def test_a_retried_webhook_with_the_same_message_sid_stores_one_message(twilio_server, owner, fake, number):
    sender, body, sid = phone_number(), unique_text("Running late"), "SM" + "7" * 32
    for _ in range(3):
        assert fake.inbound_sms(PUBLIC, sender=sender, to=number, body=body, sid=sid).status_code == 200
    row = conversation_with(owner, body)
    assert [m["body"] for m in owner.messages(row["conversation_id"])] == [body]
    assert row["message_count"] == 1


def test_a_reply_goes_through_the_outbox_to_twilio_once_and_its_status_callbacks_are_recorded(
        twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Is parking free?"), sender)
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Yes, behind us."})
    assert reply["status"] == "queued"

    status_is(owner, row["conversation_id"], reply["message_id"], "delivered")
    [request] = sent_to(fake, sender)
    assert request.form["From"] == number and request.form["Body"] == "Yes, behind us."
    assert request.form["StatusCallback"].startswith(f"{PUBLIC}/webhooks/twilio/status?")
    assert reply["message_id"] in request.form["StatusCallback"]
    time.sleep(0.3)  # a second send would have happened by now
    assert len(sent_to(fake, sender)) == 1


def test_a_server_error_then_success_delivers_the_message_exactly_once(twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Do you do Saturdays?"), sender)
    fake.answer_next("500", "429")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "We do."})

    status_is(owner, row["conversation_id"], reply["message_id"], "delivered")
    assert [r.answered for r in sent_to(fake, sender)] == [500, 429, 201]


def test_a_twilio_that_hangs_is_given_up_on_and_the_message_goes_on_the_next_attempt(
        twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Hello?"), sender)
    fake.answer_next("hang")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Hi there."})

    status_is(owner, row["conversation_id"], reply["message_id"], "delivered")
    assert [r.answered for r in sent_to(fake, sender)] == [-1, 201]


def test_a_refused_number_fails_at_once_with_twilios_error_code(twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Thanks"), sender)
    fake.answer_next("400:21211")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "You're welcome."})

    failed = status_is(owner, row["conversation_id"], reply["message_id"], "failed")
    assert failed["error_code"] == "21211"
    assert len(sent_to(fake, sender)) == 1


def test_persistent_server_errors_give_up_after_the_configured_attempts_with_a_visible_failure(
        twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Any news?"), sender)
    fake.answer_next("500", "500", "500")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Not yet."})

    failed = status_is(owner, row["conversation_id"], reply["message_id"], "failed")
    assert failed["error_code"] == "20500"
    assert [r.answered for r in sent_to(fake, sender)] == [500, 500, 500]


def test_status_callbacks_record_failures_with_codes_and_never_move_a_status_back(twilio_server, owner, fake, number):
    fake.callbacks = ()
    try:
        first, second = phone_number(), phone_number()
        one = texted_in(owner, fake, number, unique_text("First"), first)
        two = texted_in(owner, fake, number, unique_text("Second"), second)
        reply_one = owner.ok("POST", f"/api/v1/conversations/{one['conversation_id']}/reply", {"body": "One"})
        reply_two = owner.ok("POST", f"/api/v1/conversations/{two['conversation_id']}/reply", {"body": "Two"})
        [request_one] = wait_for(lambda: sent_to(fake, first), what="the first send")
        [request_two] = wait_for(lambda: sent_to(fake, second), what="the second send")

        assert fake.status_callback(request_one, "delivered").status_code == 204
        assert fake.status_callback(request_one, "sent").status_code == 204  # late and out of order
        assert fake.status_callback(request_one, "delivered").status_code == 204  # retried
        assert fake.status_callback(request_two, "sent").status_code == 204
        assert fake.status_callback(request_two, "undelivered", error_code="30003").status_code == 204
    finally:
        fake.callbacks = ("sent", "delivered")

    assert status_is(owner, one["conversation_id"], reply_one["message_id"], "delivered")["error_code"] is None
    assert status_is(owner, two["conversation_id"], reply_two["message_id"], "undelivered")["error_code"] == "30003"


def test_unsigned_or_wrongly_signed_webhooks_are_refused_with_403(twilio_server, owner, fake, number):
    params = {"MessageSid": "SM" + "1" * 32, "From": phone_number(), "To": number, "Body": "hi", "NumMedia": "0"}
    url = f"{PUBLIC}/webhooks/twilio/sms"
    refused = [
        fake.post(url, params, sign=False),
        fake.post(url, params, token="not-the-auth-token"),
        fake.post(url, {**params, "Body": "tampered"}, signed_url=url + "x"),
        fake.post(f"{twilio_server.url}/webhooks/twilio/sms", params),  # signed for the internal, not the public URL
        fake.post(f"{PUBLIC}/webhooks/twilio/status?workspace_id=00000000-0000-0000-0000-000000000000"
                  "&conversation_id=00000000-0000-0000-0000-000000000000"
                  "&message_id=00000000-0000-0000-0000-000000000000", {"MessageStatus": "sent"}, sign=False),
        fake.post(f"{PUBLIC}/webhooks/twilio/voice", {"CallSid": "CA1", "To": number}, sign=False),
    ]
    for response in refused:
        assert response.status_code == 403
        assert_problem(response, 403)
    rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=sms&limit=200")["items"]
    assert "tampered" not in [row["preview"] for row in rows] and "hi" not in [row["preview"] for row in rows]


def test_malformed_webhooks_get_a_4xx_problem_never_a_500(twilio_server, fake, number):
    base = {"MessageSid": "SM" + "2" * 32, "From": phone_number(), "To": number, "Body": "hello", "NumMedia": "0"}
    cases = [
        {k: v for k, v in base.items() if k != "From"},
        {k: v for k, v in base.items() if k != "MessageSid"},
        {**base, "From": "not a number"},
        {**base, "To": phone_number()},  # nobody owns this number
        {**base, "NumMedia": "many"},
        {**base, "NumMedia": "1", "MediaUrl0": "javascript:alert(1)"},
        {**base, "MessageSid": "SM/../../etc"},
        {**base, "Body": "", "NumMedia": "0"},
        {**base, "Body": "x" * 30_000},
    ]
    for params in cases:
        response = fake.post(f"{PUBLIC}/webhooks/twilio/sms", params)
        assert 400 <= response.status_code < 500, (params, response.status_code)
        assert_problem(response)
    status_url = f"{PUBLIC}/webhooks/twilio/status?workspace_id=nope&conversation_id=1&message_id=2"
    response = fake.post(status_url, {"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert response.status_code == 422
    assert_problem(response, 422)
