"""Webhooks without I/O: the signature, the retry schedule, which events become which payloads (and
that no personal value ever enters one), URL rules and API key scopes (the SSRF address rules: test_destinations.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid4

import jsonschema
import pytest

from api.api_key_scopes import ROUTE_SCOPES
from domain.appointment import Appointment
from domain.contact import Contact
from domain.conversation import Conversation
from domain.errors import ApiKeyScopeInvalidError, WebhookEventTypeInvalidError, WebhookUrlInvalidError
from domain.integrations import SCOPES, WebhookSubscription, check_key
from domain.personal import personal_fields
from domain.webhooks import (
    EVENT_TYPES,
    check_event_types,
    check_url,
    envelope,
    event_id,
    retry_delay,
    signature,
    verify,
    webhook_event,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
WORKSPACE, CONTACT, CONVERSATION = uuid4(), uuid4(), uuid4()
SECRET = "whsec_test-secret"
BODY_TEXT = "My knee still hurts after the marathon"
SCHEMA = json.loads((ROOT / "docs" / "webhooks" / "events.schema.json").read_text())


def _event(kind: type, originator_id: UUID, **fields: object) -> object:
    if kind in (Contact.Created, Appointment.Booked):
        fields["originator_topic"] = f"{kind.__module__}:{kind.__qualname__}"
    return kind(originator_id=originator_id, originator_version=3, timestamp=NOW, **fields)


def events() -> list[object]:
    appointment = uuid4()
    return [
        _event(Conversation.MessageReceived, CONVERSATION, workspace_id=WORKSPACE, contact_id=CONTACT,
               message_id=uuid4(), body=BODY_TEXT, attachments=[{"filename": "scan.pdf"}], provider_message_id="SM1"),
        _event(Conversation.MessageSent, CONVERSATION, workspace_id=WORKSPACE, contact_id=CONTACT, message_id=uuid4(),
               channel="sms", body=BODY_TEXT, author_id=None, purpose="transactional"),
        _event(Contact.Created, CONTACT, workspace_id=WORKSPACE, name="Zelda Quixote", phone="+447700900417",
               email="zelda@example.org", time_zone="Europe/London", custom_fields={"ref": "X1"}, actor_id=None),
        _event(Contact.ConsentGranted, CONTACT, workspace_id=WORKSPACE, channel="sms", purpose="marketing",
               source="web form", wording="Yes please", actor_id=None, ip_address="203.0.113.7", expires_at=None),
        _event(Contact.ConsentWithdrawn, CONTACT, workspace_id=WORKSPACE, channel="sms", purpose="marketing",
               source="STOP", wording="STOP", actor_id=None, ip_address=None),
        _event(Contact.Erased, CONTACT, workspace_id=WORKSPACE, request_id=uuid4(), subject_ids=[CONTACT],
               actor_id=None),
        _event(Appointment.Booked, appointment, workspace_id=WORKSPACE, contact_id=CONTACT, staff_id=None,
               service="IVF consultation", location="Room 2", starts_at=NOW, ends_at=NOW + timedelta(hours=1),
               time_zone="Europe/London", notes="bring results", source="staff", external_id=None, actor_id=None),
        _event(Appointment.Rescheduled, appointment, workspace_id=WORKSPACE, contact_id=CONTACT,
               starts_at=NOW, ends_at=NOW + timedelta(hours=1), time_zone="Europe/London", staff_id=uuid4(),
               location="Room 3", actor_id=None),
        _event(Appointment.Cancelled, appointment, workspace_id=WORKSPACE, contact_id=CONTACT, reason="feels better",
               actor_id=None),
    ]


# Signature --------------------------------------------------------------------------------------------


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body_under_the_secret():
    body = b'{"id":"x"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_a_receiver_accepts_a_fresh_signature_and_refuses_tampering_age_and_the_wrong_secret():
    body = b'{"id":"x","type":"contact.created"}'
    header = signature(SECRET, 1_700_000_000, body)
    assert verify(SECRET, header, body, now=1_700_000_100)
    assert not verify(SECRET, header, body.replace(b"contact", b"kontact"), now=1_700_000_100)
    assert not verify(SECRET, header, body, now=1_700_000_000 + 301)
    assert not verify("whsec_other", header, body, now=1_700_000_100)
    assert not verify(SECRET, "t=abc,v1=00", body, now=1_700_000_100)
    assert not verify(SECRET, "", body, now=1_700_000_100)


# Retries ----------------------------------------------------------------------------------------------


def test_retry_delays_double_from_the_base_up_to_the_cap_scaled_by_the_jitter():
    assert [retry_delay(n, 5, 3600, 1.0) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert retry_delay(20, 5, 3600, 1.0) == 3600
    assert retry_delay(3, 5, 3600, 0.5) == 10 and retry_delay(3, 5, 3600, 1.5) == 30


# Payloads ---------------------------------------------------------------------------------------------


def test_every_carried_event_maps_to_its_type_and_a_payload_valid_against_the_published_schema():
    found = {}
    for e in events():
        mapped = webhook_event(e)
        assert mapped is not None, type(e).__qualname__
        body = envelope(mapped, e.originator_id, e.originator_version, WORKSPACE, NOW)
        jsonschema.validate(body, SCHEMA, format_checker=jsonschema.FormatChecker())
        found[type(e).__qualname__] = body
    assert {b["type"] for b in found.values()} == set(EVENT_TYPES)
    assert found["Contact.ConsentWithdrawn"]["data"]["granted"] is False
    assert found["Contact.ConsentGranted"]["data"]["granted"] is True
    assert found["Conversation.MessageReceived"]["data"]["direction"] == "in"


def test_no_personal_field_of_any_carried_event_reaches_its_payload():
    for e in events():
        body = json.dumps(envelope(webhook_event(e), e.originator_id, 3, WORKSPACE, NOW))
        for name in personal_fields(type(e)):
            value = getattr(e, name)
            for text in (value.values() if isinstance(value, dict) else [value]):
                if isinstance(text, str):
                    assert text not in body, f"{type(e).__qualname__}.{name} leaked into its webhook"
        assert BODY_TEXT not in body and "IVF" not in body


def test_event_ids_are_stable_per_stored_event_and_differ_between_events():
    a, b = uuid4(), uuid4()
    assert event_id(a, 1) == event_id(a, 1)
    assert len({event_id(a, 1), event_id(a, 2), event_id(b, 1)}) == 3


def test_events_no_webhook_carries_map_to_nothing():
    closed = _event(Conversation.Closed, CONVERSATION, workspace_id=WORKSPACE, contact_id=CONTACT, actor_id=None)
    assert webhook_event(closed) is None


# Subscriptions and keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "https://user:pw@example.com/x",
                                 "https:///nohost", "javascript:alert(1)", "https://exa mple.com/",
                                 "https://example.com:0/x", "https://" + "a" * 2000 + ".com/"])
def test_a_webhook_url_must_be_plain_http_or_https(url):
    with pytest.raises(WebhookUrlInvalidError):
        check_url(url)


def test_good_webhook_urls_and_event_types_pass():
    assert check_url("https://hooks.example.com/commhub?team=1") == "https://hooks.example.com/commhub?team=1"
    assert check_event_types(["message.sent", "message.received", "message.sent"]) == ["message.received",
                                                                                        "message.sent"]
    for bad in ([], ["message.deleted"]):
        with pytest.raises(WebhookEventTypeInvalidError):
            check_event_types(bad)


def test_the_signing_secret_is_sealed_as_personal_data_of_the_subscription():
    assert personal_fields(WebhookSubscription.Created) == {"secret": "originator_id"}
    assert personal_fields(WebhookSubscription.SecretRotated) == {"secret": "originator_id"}


def test_an_api_key_needs_a_name_and_known_scopes():
    assert check_key("  Zapier ", ["contacts:read", "contacts:read"]) == ("Zapier", ["contacts:read"])
    for name, scopes in (("", ["contacts:read"]), ("x", []), ("x", ["staff:manage"]), ("x" * 101, ["contacts:read"])):
        with pytest.raises(ApiKeyScopeInvalidError):
            check_key(name, scopes)


def test_every_scope_opens_some_route_and_no_key_reaches_staff_keys_privacy_or_audit():
    assert set(ROUTE_SCOPES.values()) == set(SCOPES)
    closed = ("/api/v1/staff", "/api/v1/api-keys", "/api/v1/privacy", "/api/v1/audit", "/api/v1/auth")
    assert not [path for _, path in ROUTE_SCOPES if path.startswith(closed)]
