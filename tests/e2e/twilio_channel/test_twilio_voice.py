"""Voice over Twilio, end to end: the TwiML commhub answers calls with, calls and voicemail on the
timeline and in the inbox, and the missed-call text-back SMS (subject to consent)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from tests.e2e.api_support import phone_number, wait_for
from tests.e2e.twilio_channel.conftest import (
    PUBLIC,
    conversation_with,
    sent_to,
    texted_in,
    unique_text,
)

VOICE = f"{PUBLIC}/webhooks/twilio/voice"


def call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def test_a_call_is_greeted_and_forwarded_to_the_business_phone_with_a_timeout(twilio_server, owner, fake, number):
    owner.ok("PUT", "/api/v1/sms/settings", {"forward_to": "+442079460000", "ring_seconds": 15,
                                             "greeting": "Welcome to Harbour Physio."})
    caller, sid = phone_number(), call_sid()
    root = twiml(fake.post(VOICE, fake.call_params(sid, sender=caller, to=number)))

    assert root.find("Say").text == "Welcome to Harbour Physio."
    dial = root.find("Dial")
    assert dial.text == "+442079460000" and dial.get("timeout") == "15"
    assert dial.get("action") == f"{VOICE}/dial"
    row = conversation_with(owner, "Incoming call", channel="voice")
    timeline = owner.ok("GET", f"/api/v1/contacts/{row['contact_id']}/timeline")["items"]
    assert any(e["kind"] == "call" and e["detail"]["call"] == "started" for e in timeline)

    answered = twiml(fake.post(f"{VOICE}/dial", fake.call_params(
        sid, sender=caller, to=number, DialCallStatus="completed", DialCallDuration="42")))
    assert answered.find("Hangup") is not None
    conversation_with(owner, "Call answered", channel="voice")


def test_a_missed_call_goes_to_voicemail_texts_back_and_shows_the_recording_and_transcription(
        twilio_server, owner, fake, number):
    owner.ok("PUT", "/api/v1/sms/settings", {"forward_to": "+442079460000",
                                             "missed_call_text": "Sorry we missed you - we'll call back soon."})
    caller, sid = phone_number(), call_sid()
    twiml(fake.post(VOICE, fake.call_params(sid, sender=caller, to=number)))
    missed = fake.call_params(sid, sender=caller, to=number, DialCallStatus="no-answer", DialCallDuration="0")
    root = twiml(fake.post(f"{VOICE}/dial", missed))
    assert fake.post(f"{VOICE}/dial", missed).status_code == 200  # retried: still one missed call, one text

    record = root.find("Record")
    assert record.get("action") == f"{VOICE}/recording" and record.get("transcribeCallback") == f"{VOICE}/transcription"
    [text_back] = wait_for(lambda: sent_to(fake, caller), what="the missed-call text-back")
    assert text_back.form["Body"] == "Sorry we missed you - we'll call back soon." and text_back.form["From"] == number

    recording = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    fake.post(f"{VOICE}/recording", fake.call_params(sid, sender=caller, to=number, RecordingUrl=recording,
                                                     RecordingDuration="17", RecordingSid="RE1"))
    words = unique_text("Please call me about my knee")
    assert fake.post(f"{VOICE}/transcription", fake.call_params(
        sid, sender=caller, to=number, TranscriptionText=words, TranscriptionStatus="completed")).status_code == 204

    row = conversation_with(owner, words, channel="voice")
    calls = [(m["status"], m["body"]) for m in owner.messages(row["conversation_id"])]
    assert calls == [("started", ""), ("missed", ""), ("voicemail", ""), ("transcription", words)]
    voicemail = owner.messages(row["conversation_id"])[2]
    assert voicemail["attachments"] == [{"url": recording, "content_type": "audio/wav", "duration": 17}]
    assert row["unread"] == 2 and row["status"] == "open"
    assert len(sent_to(fake, caller)) == 1


def test_no_text_back_goes_to_a_caller_who_opted_out_and_the_refusal_is_recorded(twilio_server, owner, fake, number):
    owner.ok("PUT", "/api/v1/sms/settings", {"forward_to": "+442079460000", "missed_call_text": "We missed you."})
    caller, sid = phone_number(), call_sid()
    row = texted_in(owner, fake, number, unique_text("Question"), caller)
    fake.inbound_sms(PUBLIC, sender=caller, to=number, body="STOP")
    wait_for(lambda: sent_to(fake, caller), what="the opt-out confirmation")

    fake.post(f"{VOICE}/dial", fake.call_params(sid, sender=caller, to=number, DialCallStatus="busy"))

    def refusal():
        return [m for m in owner.messages(row["conversation_id"]) if m["kind"] == "refused"]

    [refused] = wait_for(refusal, what="the refused text-back")
    assert refused["reason"] == "consent_withdrawn" and refused["body"] == "We missed you."
    assert [r.form["Body"] for r in sent_to(fake, caller)][1:] == []


def test_a_call_from_a_withheld_number_is_still_answered(twilio_server, fake, number):
    root = twiml(fake.post(VOICE, fake.call_params(call_sid(), sender="anonymous", to=number)))
    assert root.find("Say") is not None
