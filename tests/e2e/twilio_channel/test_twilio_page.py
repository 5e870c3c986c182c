"""What an agent sees of Twilio in the inbox page (headless Chromium): an SMS arriving live, the
delivery status of a reply, a STOP and the refused reply after it, and a missed call with voicemail."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.e2e.api_support import phone_number
from tests.e2e.test_inbox_page import browser_page as browser_page  # the fixture
from tests.e2e.twilio_channel.conftest import PUBLIC, unique_text

VOICE = f"{PUBLIC}/webhooks/twilio/voice"


def test_an_agent_sees_twilio_sms_delivery_an_opt_out_and_a_missed_call_in_the_inbox(
        twilio_server, owner, fake, number, browser_page):  # noqa: F811 (the fixture)
    page, errors = browser_page
    login = json.loads((twilio_server.data_dir / "demo-login.json").read_text())
    owner.ok("PUT", "/api/v1/sms/settings", {"forward_to": "+442079460000", "missed_call_text": None})
    page.goto(twilio_server.url)
    page.get_by_label("Workspace").fill(login["workspace_slug"])
    page.get_by_label("Email", exact=True).fill(login["email"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#live-status")).to_have_text("Live")

    customer, first = phone_number(), unique_text("Can I bring my daughter along?")
    assert fake.inbound_sms(PUBLIC, sender=customer, to=number, body=first).status_code == 200
    row = page.locator("#conversation-list .conversation").filter(has_text=first)
    expect(row).to_have_count(1)
    row.click()
    thread = page.locator("#messages")
    expect(thread.locator(".message.in")).to_contain_text(first)

    page.locator("#reply").fill("Of course she can.")
    page.keyboard.press("Control+Enter")
    sent = thread.locator(".message.out").filter(has_text="Of course she can.")
    expect(sent).to_contain_text("delivered")

    assert fake.inbound_sms(PUBLIC, sender=customer, to=number, body="STOP").status_code == 200
    expect(thread.locator(".message.out").filter(has_text="unsubscribed")).to_have_count(1)
    page.locator("#reply").fill("One more thing")
    page.keyboard.press("Control+Enter")
    refused = thread.locator(".message.refused").filter(has_text="One more thing")
    expect(refused).to_contain_text("Not sent because the contact withdrew consent")

    call = "CA" + "5" * 32
    fake.post(VOICE, fake.call_params(call, sender=customer, to=number))
    fake.post(f"{VOICE}/dial", fake.call_params(call, sender=customer, to=number, DialCallStatus="no-answer"))
    fake.post(f"{VOICE}/recording", fake.call_params(
        call, sender=customer, to=number, RecordingUrl="https://api.twilio.com/Recordings/RE5", RecordingDuration="9"))
    voice = page.locator("#conversation-list .conversation").filter(has_text="Voicemail").first
    expect(voice).to_be_visible()
    voice.click()
    expect(thread.locator(".message.call")).to_have_count(3)
    expect(thread.locator(".message.call").last).to_contain_text(re.compile("Voicemail"))
    expect(page.locator("#timeline")).to_contain_text("Missed call")
    assert errors == []
