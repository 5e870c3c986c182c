"""Opt-out, opt-in and HELP keywords, quiet hours, and the sandbox without Twilio credentials, end to end."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.e2e.api_support import assert_problem, demo_login, phone_number, wait_for
from tests.e2e.twilio_channel.conftest import (
    PUBLIC,
    message,
    sent_to,
    status_is,
    texted_in,
    unique_text,
)
from tests.fake_twilio import FakeTwilio


def bodies_sent(fake, to: str) -> list[str]:
    return [r.form["Body"] for r in sent_to(fake, to)]


def test_stop_withdraws_sms_consent_sends_one_confirmation_and_refuses_further_sends(
        twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Hi"), sender)
    conversation = row["conversation_id"]

    assert fake.inbound_sms(PUBLIC, sender=sender, to=number, body="  Stop! ").status_code == 200
    wait_for(lambda: bodies_sent(fake, sender), what="the opt-out confirmation")
    assert fake.inbound_sms(PUBLIC, sender=sender, to=number, body="unsubscribe").status_code == 200
    refused = owner.ok("POST", f"/api/v1/conversations/{conversation}/reply", {"body": "Still there?"})

    assert refused["status"] == "refused" and refused["reason"] == "consent_withdrawn"
    shown = wait_for(lambda: message(owner, conversation, refused["message_id"]), what="the refused send")
    assert shown["kind"] == "refused" and shown["reason"] == "consent_withdrawn"
    consents = owner.ok("GET", f"/api/v1/contacts/{row['contact_id']}")["consents"]
    assert any(c["channel"] == "sms" and c["purpose"] == "transactional" and not c["granted"] for c in consents)
    time.sleep(0.3)
    [confirmation] = bodies_sent(fake, sender)
    assert "unsubscribed" in confirmation and "START" in confirmation


def test_start_restores_consent_and_help_answers_with_the_workspace_help_text(twilio_server, owner, fake, number):
    owner.ok("PUT", "/api/v1/sms/settings", {"help_text": "Harbour Physio: call 020 7946 0000. Reply STOP to opt out."})
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Hello"), sender)
    for count, keyword in enumerate(("STOP", "Yes.", "help"), start=1):
        assert fake.inbound_sms(PUBLIC, sender=sender, to=number, body=keyword).status_code == 200
        wait_for(lambda n=count: len(bodies_sent(fake, sender)) == n, what=f"the reply to {keyword}")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Welcome back"})

    assert reply["status"] == "queued"
    wait_for(lambda: len(bodies_sent(fake, sender)) == 4, what="the reply after START")
    stop, start, help_text, welcome = bodies_sent(fake, sender)
    assert "unsubscribed" in stop and "resubscribed" in start and welcome == "Welcome back"
    assert help_text == "Harbour Physio: call 020 7946 0000. Reply STOP to opt out."


def test_a_reply_in_the_contacts_quiet_hours_is_refused_with_the_reason_shown(twilio_server, owner, fake, number):
    sender = phone_number()
    row = texted_in(owner, fake, number, unique_text("Late question"), sender)
    owner.ok("PATCH", f"/api/v1/contacts/{row['contact_id']}", {"time_zone": "Pacific/Auckland"})
    local = datetime.now(ZoneInfo("Pacific/Auckland"))
    window = {"quiet_hours_start": (local - timedelta(hours=1)).strftime("%H:%M"),
              "quiet_hours_end": (local + timedelta(hours=1)).strftime("%H:%M")}
    owner.ok("PUT", "/api/v1/sms/settings", window)
    try:
        refused = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Tomorrow"})
    finally:
        owner.ok("PUT", "/api/v1/sms/settings", {"quiet_hours_start": None, "quiet_hours_end": None})
    assert (refused["status"], refused["reason"]) == ("refused", "quiet_hours")
    shown = wait_for(lambda: message(owner, row["conversation_id"], refused["message_id"]), what="the refusal")
    assert shown["reason"] == "quiet_hours"
    assert sent_to(fake, sender) == []


def test_settings_and_numbers_are_validated_and_a_number_belongs_to_one_workspace(twilio_server, owner, number):
    for bad in ({"quiet_hours_start": "25:00"}, {"quiet_hours_start": "22:00"}, {"ring_seconds": 2},
                {"forward_to": "call me"}, {"help_text": ""}, {"unknown": 1}):
        response = owner.request("PUT", "/api/v1/sms/settings", json=bad)
        assert response.status_code == 422, bad
        assert_problem(response, 422)
    response = owner.post("/api/v1/sms/numbers", {"number": "12"})
    assert response.status_code == 422
    assert owner.ok("POST", "/api/v1/sms/numbers", {"number": number})["numbers"].count(number) == 1


def test_without_twilio_credentials_sms_is_captured_and_shown_instead_of_sent(tmp_path, fresh_database, session_kek):
    from tests.e2e.conftest import start_server, stop_server

    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema, "COMMHUB_KEK": session_kek}
    server = start_server(tmp_path, env, "--demo")
    outside = FakeTwilio().start()
    try:
        with demo_login(server) as api:
            row = api.inbound(phone_number(), unique_text("Sandbox hello"), channel="sms")
            reply = api.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Captured"})
            captured = status_is(api, row["conversation_id"], reply["message_id"], "captured")
            assert captured["body"] == "Captured"
            webhook = outside.inbound_sms(server.url, sender=phone_number(), to=phone_number(), body="hi")
            assert webhook.status_code == 403
    finally:
        outside.stop()
        stop_server(server)
