"""Messenger, Instagram and WhatsApp end to end: a real commhub server, and a fake Meta on loopback
that answers the Graph API and sends signed webhooks (signature computed by the fake)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.api_support import assert_problem, demo_credentials, login, wait_for
from tests.e2e.meta_channel.conftest import (
    ACCOUNTS,
    connect,
    conversation_with,
    social_id,
    status_is,
    unique_text,
    wa_id,
)
from tests.fake_meta import delivery, dm, read, sign, wa_message, wa_status

PLATFORMS = ["messenger", "instagram", "whatsapp"]


def inbound(fake, server, platform: str, account: str, sender: str, text: str | None, **extra) -> httpx.Response:
    if platform == "whatsapp":
        payload = wa_message(account, sender, text, **extra)
    else:
        payload = dm(platform, account, sender, text, **extra)
    return fake.deliver(server.url, payload)


def test_the_subscription_handshake_echoes_the_challenge_only_for_our_verify_token(meta_server, fake_meta):
    answer = fake_meta.handshake(meta_server.url, challenge="1158201444")
    assert answer.status_code == 200 and answer.text == "1158201444"
    assert answer.headers["content-type"].startswith("text/plain")
    assert_problem(fake_meta.handshake(meta_server.url, token="not-our-token"), 403)
    wrong_mode = httpx.get(f"{meta_server.url}/webhooks/meta", params={
        "hub.mode": "unsubscribe", "hub.verify_token": fake_meta.verify_token, "hub.challenge": "1"})
    assert_problem(wrong_mode, 403)
    assert_problem(httpx.get(f"{meta_server.url}/webhooks/meta"), 403)


def test_a_delivery_without_a_valid_signature_is_refused_and_stores_nothing(meta_server, owner, fake_meta):
    page = connect(owner, fake_meta, "messenger")
    text = unique_text("Forged message")
    payload = dm("messenger", page, social_id(), text)
    for kwargs in ({"signature": ""}, {"signature": "sha256=" + "0" * 64}, {"secret": "someone-elses-secret"},
                   {"signature": "sha1=abc"}):
        assert_problem(fake_meta.deliver(meta_server.url, payload, **kwargs), 403)
    body = json.dumps(payload).encode()
    tampered = fake_meta.deliver(meta_server.url, None, raw=body.replace(b"Forged", b"Forgeq"),
                                 signature=sign(fake_meta.app_secret, body))
    assert_problem(tampered, 403)
    time.sleep(0.3)
    rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=social&limit=200")["items"]
    assert all(row["preview"] != text for row in rows)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_inbound_text_then_an_image_land_in_the_inbox_on_one_new_contact(meta_server, owner, fake_meta, platform):
    account = connect(owner, fake_meta, platform)
    sender = wa_id() if platform == "whatsapp" else social_id()
    text = unique_text("Do you have space on Friday?")
    extra = {"name": "Kerry Castellano"} if platform == "whatsapp" else {}
    answer = inbound(fake_meta, meta_server, platform, account, sender, text, **extra)
    assert answer.status_code == 200, answer.text
    row = conversation_with(owner, text)
    assert row["channel"] == "social" and row["unread"] == 1
    contact = owner.ok("GET", f"/api/v1/contacts/{row['contact_id']}")
    if platform == "whatsapp":
        assert contact["phone"] == f"+{sender}" and contact["name"] == "Kerry Castellano"
    else:
        assert contact["phone"] is None and contact["name"] in ("Messenger contact", "Instagram contact")

    caption = unique_text("photo")
    if platform == "whatsapp":
        image = inbound(fake_meta, meta_server, platform, account, sender, caption, image=("MEDIA77", "image/jpeg"))
    else:
        image = inbound(fake_meta, meta_server, platform, account, sender, caption,
                        images=["https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=77"])
    assert image.status_code == 200
    same = conversation_with(owner, caption)
    assert same["conversation_id"] == row["conversation_id"] and same["contact_id"] == row["contact_id"]
    messages = owner.messages(row["conversation_id"])
    assert [m["body"] for m in messages] == [text, caption] and all(m["kind"] == "in" for m in messages)
    [attachment] = messages[1]["attachments"]
    if platform == "whatsapp":
        assert attachment == {"url": None, "content_type": "image/jpeg", "media_id": "MEDIA77"}
    else:
        assert attachment["content_type"] == "image" and "asset_id=77" in attachment["url"]
    log = meta_server.log()
    assert sender not in log and text not in log and "Kerry Castellano" not in log


@pytest.mark.parametrize("platform", ["messenger", "instagram"])
def test_a_messenger_or_instagram_contact_is_soon_named_from_their_profile(meta_server, owner, fake_meta, platform):
    account, sender = connect(owner, fake_meta, platform), social_id()
    if platform == "messenger":
        fake_meta.profile(account, sender, first_name="Rowan", last_name="Okafor")
    else:
        fake_meta.profile(account, sender, name="Rowan Okafor", username="rowan.o")
    text = unique_text("Who am I?")
    assert inbound(fake_meta, meta_server, platform, account, sender, text).status_code == 200
    contact_id = conversation_with(owner, text)["contact_id"]

    def named() -> bool:
        return owner.ok("GET", f"/api/v1/contacts/{contact_id}")["name"] == "Rowan Okafor"

    wait_for(named, timeout=20, what="the contact to be named from the profile")
    assert (account, sender) in {(a, u) for a, u, _ in fake_meta.profile_reads}
    log = meta_server.log()
    assert sender not in log and "Rowan" not in log


def test_a_retried_delivery_is_stored_once_and_our_own_echo_is_not_stored(meta_server, owner, fake_meta):
    page, sender = connect(owner, fake_meta, "messenger"), social_id()
    text, mid = unique_text("Retried by Meta"), "m_" + social_id()
    for _ in range(3):
        assert inbound(fake_meta, meta_server, "messenger", page, sender, text, mid=mid).status_code == 200
    echo = unique_text("Our own echo")
    assert inbound(fake_meta, meta_server, "messenger", page, sender, echo, echo=True).status_code == 200
    row = conversation_with(owner, text)
    time.sleep(0.3)
    assert [m["body"] for m in owner.messages(row["conversation_id"])] == [text]
    assert row["message_count"] == 1


def test_events_for_an_account_nobody_connected_are_acknowledged_and_dropped(meta_server, owner, fake_meta):
    text = unique_text("Nobody connected this page")
    answer = fake_meta.deliver(meta_server.url, dm("messenger", "99999999", social_id(), text))
    assert answer.status_code == 200
    time.sleep(0.3)
    rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=social&limit=200")["items"]
    assert all(row["preview"] != text for row in rows)


def test_malformed_deliveries_are_4xx_problems_never_500(meta_server, owner, fake_meta):
    page = connect(owner, fake_meta, "messenger")
    good = dm("messenger", page, social_id(), "hello")
    bad = [b"not json", b"[1, 2", b"[" * 100_000 + b"]" * 100_000, json.dumps({"object": "page"}).encode(),
           json.dumps({**good, "entry": [{"id": page, "messaging": [{"sender": {"id": 5}, "message": {}}]}]}).encode(),
           json.dumps(wa_message("1", "447700900123", "x") | {"entry": "x"}).encode(),
           "\udcff".encode("utf-8", "surrogatepass")]
    for raw in bad:
        answer = fake_meta.deliver(meta_server.url, None, raw=raw)
        assert 400 <= answer.status_code < 500, (raw[:60], answer.status_code)
        assert_problem(answer)
        assert "hello" not in answer.text
    huge = fake_meta.deliver(meta_server.url, None, raw=json.dumps({**good, "pad": "x" * 1_100_000}).encode())
    assert_problem(huge, 413)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_reply_goes_to_the_graph_api_with_the_platforms_body_and_statuses_move_it_forward(
        meta_server, owner, fake_meta, platform):
    account = connect(owner, fake_meta, platform)
    sender = wa_id() if platform == "whatsapp" else social_id()
    text = unique_text("What time do you close?")
    inbound(fake_meta, meta_server, platform, account, sender, text)
    row = conversation_with(owner, text)
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "At six tonight."})
    assert reply["status"] == "queued"
    status_is(owner, row["conversation_id"], reply["message_id"], "sent")
    [sent] = fake_meta.accepted(account)
    if platform == "whatsapp":
        assert sent.body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": sender,
                             "type": "text", "text": {"preview_url": False, "body": "At six tonight."}}
        statuses = [wa_status(account, sent.message_id, "delivered"), wa_status(account, sent.message_id, "sent"),
                    wa_status(account, sent.message_id, "read"), wa_status(account, sent.message_id, "delivered")]
    else:
        assert sent.body == {"recipient": {"id": sender}, "messaging_type": "RESPONSE",
                             "message": {"text": "At six tonight."}}
        statuses = [delivery(platform, account, sender, [sent.message_id]),
                    read(platform, account, sender, mid=sent.message_id) if platform == "instagram"
                    else read(platform, account, sender, watermark=int(time.time() * 1000) + 1000)]
    assert fake_meta.deliver(meta_server.url, statuses[0]).status_code == 200
    status_is(owner, row["conversation_id"], reply["message_id"], "delivered")
    for payload in statuses[1:]:
        assert fake_meta.deliver(meta_server.url, payload).status_code == 200
    status_is(owner, row["conversation_id"], reply["message_id"], "read")
    time.sleep(0.3)  # a late "sent" or "delivered" would have moved it back by now
    assert status_is(owner, row["conversation_id"], reply["message_id"], "read")
    assert len(fake_meta.accepted(account)) == 1


def test_whatsapp_free_text_outside_the_window_is_refused_and_an_approved_template_goes(
        meta_server, owner, fake_meta):
    number, sender = connect(owner, fake_meta, "whatsapp"), wa_id()
    text = unique_text("Sent yesterday")
    inbound(fake_meta, meta_server, "whatsapp", number, sender, text, sent=time.time() - 25 * 3600)
    row = conversation_with(owner, text)
    refused = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Sorry, missed it"})
    assert refused == {"message_id": refused["message_id"], "status": "refused",
                       "reason": "outside_customer_service_window"}
    shown = next(m for m in owner.messages(row["conversation_id"]) if m["message_id"] == refused["message_id"])
    assert shown["kind"] == "refused" and shown["reason"] == "outside_customer_service_window"

    template = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/whatsapp-template",
                        {"name": "missed_message", "language": "en_GB", "parameters": ["Kerry", "Friday"]})
    assert template["status"] == "queued"
    status_is(owner, row["conversation_id"], template["message_id"], "sent")
    [sent] = fake_meta.accepted(number)
    assert sent.body["type"] == "template" and sent.body["to"] == sender
    assert sent.body["template"] == {"name": "missed_message", "language": {"code": "en_GB"}, "components": [
        {"type": "body", "parameters": [{"type": "text", "text": "Kerry"}, {"type": "text", "text": "Friday"}]}]}


def test_messenger_replies_after_a_day_carry_the_human_agent_tag(meta_server, owner, fake_meta):
    page, sender = connect(owner, fake_meta, "messenger"), social_id()
    text = unique_text("Three days ago")
    inbound(fake_meta, meta_server, "messenger", page, sender, text, sent_ms=int((time.time() - 3 * 86400) * 1000))
    row = conversation_with(owner, text)
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Sorry for the wait"})
    status_is(owner, row["conversation_id"], reply["message_id"], "sent")
    [sent] = fake_meta.accepted(page)
    assert sent.body["messaging_type"] == "MESSAGE_TAG" and sent.body["tag"] == "HUMAN_AGENT"


def test_throttling_is_retried_with_backoff_and_a_final_error_shows_its_code_and_our_title(
        meta_server, owner, fake_meta):
    number, sender = connect(owner, fake_meta, "whatsapp"), wa_id()
    text = unique_text("Busy line")
    inbound(fake_meta, meta_server, "whatsapp", number, sender, text)
    row = conversation_with(owner, text)
    fake_meta.answer_next("429", "400:80007")
    retried = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Third time lucky"})
    status_is(owner, row["conversation_id"], retried["message_id"], "sent")
    assert [s.answered for s in fake_meta.attempts(number)] == [429, 400, 200]

    fake_meta.answer_next("400:131047")
    final = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Not this time"})
    failed = status_is(owner, row["conversation_id"], final["message_id"], "failed")
    assert failed["error_code"] == "meta 131047: Outside the 24-hour window: send an approved template"
    time.sleep(0.3)
    assert len(fake_meta.attempts(number)) == 4
    assert sender not in meta_server.log()


def test_a_failed_whatsapp_status_is_recorded_with_its_code(meta_server, owner, fake_meta):
    number, sender = connect(owner, fake_meta, "whatsapp"), wa_id()
    text = unique_text("Hello there")
    inbound(fake_meta, meta_server, "whatsapp", number, sender, text)
    row = conversation_with(owner, text)
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Hi!"})
    status_is(owner, row["conversation_id"], reply["message_id"], "sent")
    [sent] = fake_meta.accepted(number)
    fake_meta.deliver(meta_server.url, wa_status(number, sent.message_id, "failed", error_code=131026))
    failed = status_is(owner, row["conversation_id"], reply["message_id"], "failed")
    assert failed["error_code"].startswith("meta 131026:") and "447700900123" not in failed["error_code"]


def test_accounts_are_listed_without_tokens_and_belong_to_one_workspace(meta_server, owner, fake_meta):
    account, token = fake_meta.account("instagram")
    created = owner.ok("POST", ACCOUNTS, {"platform": "instagram", "account_id": account, "access_token": token})
    assert created["token_set"] is True and token not in json.dumps(created)
    listed = owner.ok("GET", ACCOUNTS)
    assert {"platform": "instagram", "account_id": account} in [
        {"platform": a["platform"], "account_id": a["account_id"]} for a in listed["items"]]
    assert listed["webhook_url"].endswith("/webhooks/meta") and listed["sandbox"] is False
    assert token not in json.dumps(listed) and token not in meta_server.log()
    assert_problem(owner.post(ACCOUNTS, {"platform": "instagram", "account_id": account, "access_token": "a b"}), 422)
    assert_problem(owner.post(ACCOUNTS, {"platform": "telegram", "account_id": account, "access_token": "t"}), 422)
    agent_password = "an agent's long password"
    agent = owner.ok("POST", "/api/v1/staff", {"name": "Agent Ash", "email": f"ash-{account}@clinic.example",
                                               "role": "agent", "password": agent_password})
    slug = demo_credentials(meta_server)["workspace_slug"]
    with login(meta_server.url, slug, agent["email"], agent_password) as ash:
        assert_problem(ash.get(ACCOUNTS), 403)
        assert_problem(ash.post(f"{ACCOUNTS}/disconnect", {"platform": "instagram", "account_id": account}), 403)
    owner.ok("POST", f"{ACCOUNTS}/disconnect", {"platform": "instagram", "account_id": account})
    assert_problem(owner.post(f"{ACCOUNTS}/disconnect", {"platform": "instagram", "account_id": account}), 404)
    text = unique_text("After disconnecting")
    assert inbound(fake_meta, meta_server, "instagram", account, social_id(), text).status_code == 200
    time.sleep(0.3)
    rows = owner.ok("GET", "/api/v1/conversations?view=all&channel=social&limit=200")["items"]
    assert all(row["preview"] != text for row in rows)


def test_one_person_on_whatsapp_and_messenger_becomes_one_contact_with_one_timeline(meta_server, owner, fake_meta):
    number, page = connect(owner, fake_meta, "whatsapp"), connect(owner, fake_meta, "messenger")
    phone, psid = wa_id(), social_id()
    on_whatsapp, on_messenger = unique_text("Hi on WhatsApp"), unique_text("Hi on Messenger")
    inbound(fake_meta, meta_server, "whatsapp", number, phone, on_whatsapp, name="Noor Haddad")
    whatsapp_row = conversation_with(owner, on_whatsapp)
    inbound(fake_meta, meta_server, "messenger", page, psid, on_messenger)
    messenger_row = conversation_with(owner, on_messenger)
    survivor, duplicate = whatsapp_row["contact_id"], messenger_row["contact_id"]
    assert survivor != duplicate
    owner.ok("PATCH", f"/api/v1/contacts/{duplicate}", {"name": "Noor Haddad"})  # the agent learns their name

    suggestions = owner.ok("GET", f"/api/v1/contacts/{survivor}/link-suggestions")["items"]
    assert {"contact_id": duplicate, "name": "Noor Haddad", "reasons": ["same_name"]} in suggestions
    owner.ok("POST", f"/api/v1/contacts/{survivor}/link-suggestions/confirm", {"contact_id": duplicate})
    assert owner.ok("GET", f"/api/v1/contacts/{duplicate}")["merged_into"] == survivor
    assert owner.ok("GET", f"/api/v1/contacts/{survivor}/link-suggestions")["items"] == []

    later = unique_text("Messenger again, after the merge")
    inbound(fake_meta, meta_server, "messenger", page, psid, later)
    row = conversation_with(owner, later)
    assert row["contact_id"] == survivor

    def timeline_has_all() -> list[dict] | None:
        items = owner.ok("GET", f"/api/v1/contacts/{survivor}/timeline?limit=200")["items"]
        previews = {(i.get("detail") or {}).get("preview") for i in items}
        return items if {on_whatsapp, on_messenger, later} <= previews else None

    wait_for(timeline_has_all, what="the merged timeline")
    reply = owner.ok("POST", f"/api/v1/conversations/{row['conversation_id']}/reply", {"body": "Welcome back"})
    status_is(owner, row["conversation_id"], reply["message_id"], "sent")
    assert fake_meta.accepted(page)[-1].body["recipient"] == {"id": psid}
