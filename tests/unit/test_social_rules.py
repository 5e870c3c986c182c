"""The pure rules of the social channels: the 24-hour window, the order of statuses, threads and
the webhook signature check."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import HTTPException

from adapters.meta_graph import classify, error_text, provider_id, template_payload, text_payload
from api.routes.meta import signed_body
from domain.consent import Refusal
from domain.social import Mode, Platform, advances, platform_of, thread_for, window

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("platform", list(Platform))
def test_free_text_goes_as_a_response_within_24_hours_of_their_last_message(platform):
    assert window(platform, NOW - timedelta(hours=23, minutes=59), NOW).mode is Mode.RESPONSE
    assert window(platform, NOW - timedelta(hours=24), NOW).mode is Mode.RESPONSE


def test_whatsapp_free_text_after_24_hours_is_refused_and_needs_a_template():
    decision = window(Platform.WHATSAPP, NOW - timedelta(hours=24, seconds=1), NOW)
    assert decision.mode is None and decision.refusal is Refusal.OUTSIDE_WINDOW


@pytest.mark.parametrize("platform", [Platform.MESSENGER, Platform.INSTAGRAM])
def test_messenger_and_instagram_use_the_human_agent_tag_for_seven_days_then_refuse(platform):
    assert window(platform, NOW - timedelta(days=3), NOW).mode is Mode.HUMAN_AGENT
    assert window(platform, NOW - timedelta(days=7), NOW).mode is Mode.HUMAN_AGENT
    late = window(platform, NOW - timedelta(days=7, seconds=1), NOW)
    assert late.mode is None and late.refusal is Refusal.OUTSIDE_HUMAN_AGENT_WINDOW


@pytest.mark.parametrize("platform", list(Platform))
def test_a_thread_the_person_never_wrote_in_has_no_window(platform):
    assert window(platform, None, NOW).mode is None


@pytest.mark.parametrize(("current", "status", "moves"), [
    ("sent", "delivered", True), ("sent", "read", True), ("delivered", "read", True),
    ("delivered", "sent", False), ("read", "sent", False), ("read", "delivered", False), ("sent", "sent", False),
    ("sent", "failed", True), ("delivered", "failed", False), ("read", "failed", False), (None, "read", False),
])
def test_statuses_only_move_forward_and_a_late_sent_never_overwrites_delivered_or_read(current, status, moves):
    assert advances(current, status) is moves


def test_a_thread_names_the_platform_and_the_business_account_only():
    assert platform_of(thread_for(Platform.WHATSAPP, "1234567")) == (Platform.WHATSAPP, "1234567")
    assert platform_of("default") is None
    assert platform_of("telegram:123") is None
    assert platform_of("messenger:12a") is None


def test_the_signature_is_a_hex_hmac_sha256_of_the_raw_body_with_the_app_secret():
    body, secret = b'{"object":"page","entry":[]}', "app-secret"
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    signed_body(body, good, secret)
    signed_body(body, good.upper().replace("SHA256=", "sha256="), secret)  # hex case does not matter
    for header, configured in [(None, secret), ("", secret), (good, None), (good[:-1] + "0", secret),
                               ("sha1=" + good[7:], secret), (good, "another-secret")]:
        with pytest.raises(HTTPException) as refused:
            signed_body(body, header, configured)
        assert refused.value.status_code == 403
    with pytest.raises(HTTPException):
        signed_body(body + b" ", good, secret)


def test_messenger_text_goes_as_a_response_inside_the_window_and_with_the_human_agent_tag_after():
    assert text_payload(Platform.MESSENGER, "99", "Hi", Mode.RESPONSE) == {
        "recipient": {"id": "99"}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}}
    tagged = text_payload(Platform.INSTAGRAM, "99", "Hi", Mode.HUMAN_AGENT)
    assert tagged["messaging_type"] == "MESSAGE_TAG" and tagged["tag"] == "HUMAN_AGENT"


def test_whatsapp_text_and_template_bodies_follow_the_cloud_api():
    text = text_payload(Platform.WHATSAPP, "447700900123", "Hi", Mode.RESPONSE)
    assert text["messaging_product"] == "whatsapp" and text["to"] == "447700900123"
    assert text["type"] == "text" and text["text"]["body"] == "Hi"
    template = template_payload("447700900123", "appointment_reminder", "en_GB", ["Kerry", "3pm"])
    assert template["type"] == "template"
    assert template["template"]["name"] == "appointment_reminder"
    assert template["template"]["language"] == {"code": "en_GB"}
    assert template["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Kerry"},
                                                                    {"type": "text", "text": "3pm"}]


@pytest.mark.parametrize(("status", "code", "retry"), [
    (429, None, True), (500, 2, True), (400, 4, True), (400, 17, True), (400, 32, True), (400, 613, True),
    (400, 80007, True), (400, 130429, True), (400, 131047, False), (400, 100, False), (401, 190, False),
])
def test_throttling_and_server_errors_are_retried_and_other_graph_errors_are_final(status, code, retry):
    body = {"error": {"message": "Message to +447700900123 failed", "code": code}} if code else "not json"
    result = classify(status, body)
    assert result.retry is retry and result.status == "failed"
    assert "447700900123" not in (result.error_code or "")
    if code is not None:
        assert result.error_code.startswith(f"meta {code}:")


def test_the_recorded_error_is_our_own_title_for_the_code():
    assert error_text(131047) == "meta 131047: Outside the 24-hour window: send an approved template"
    assert error_text(999999) == "meta 999999: the Graph API refused the message"


def test_the_provider_id_is_read_from_each_platforms_answer():
    assert provider_id(Platform.MESSENGER, {"recipient_id": "1", "message_id": "m_abc"}) == "m_abc"
    assert provider_id(Platform.WHATSAPP, {"messages": [{"id": "wamid.X"}]}) == "wamid.X"
    assert provider_id(Platform.WHATSAPP, {"messages": []}) is None
    assert provider_id(Platform.MESSENGER, ["m_abc"]) is None
