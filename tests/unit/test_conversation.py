"""Conversations: message events, delivery status, labels as personal data."""

from datetime import datetime, timezone
from uuid import uuid4

import pytest

from domain.contact import Contact
from domain.conversation import Conversation, conversation_id_for
from domain.errors import ConsentExpiryInvalidError, MessageBodyInvalidError
from domain.identifiers import Channel, Purpose
from domain.personal import ERASED, personal_fields

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
WORKSPACE, CONTACT = uuid4(), uuid4()


def conversation() -> Conversation:
    return Conversation.start(workspace_id=WORKSPACE, contact_id=CONTACT, channel="sms", thread="default", now=NOW)


def test_a_conversation_id_derives_from_contact_and_channel_only():
    assert conversation().id == conversation_id_for(CONTACT, "sms") != conversation_id_for(CONTACT, "email")


def test_message_bodies_and_labels_are_sealed_under_the_contact():
    for event_class, field in [(Conversation.MessageReceived, "body"), (Conversation.MessageSent, "body"),
                               (Conversation.NoteAdded, "text"), (Conversation.Labelled, "label"),
                               (Conversation.Unlabelled, "label")]:
        assert personal_fields(event_class)[field] == "contact_id"
    assert Conversation.personal_subject == "contact_id" and "labels" in Conversation.personal_state


def test_a_delivery_status_is_recorded_once_and_a_final_one_ends_tracking():
    c = conversation()
    message_id = uuid4()
    c.send(message_id, "See you at 3", None, "transactional", NOW)
    assert c.update_delivery(message_id, "sent", None, NOW)
    assert not c.update_delivery(message_id, "sent", None, NOW), "a retried callback records nothing"
    assert c.update_delivery(message_id, "delivered", None, NOW)
    assert not c.update_delivery(message_id, "failed", "30003", NOW), "nothing after a final status"
    assert not c.update_delivery(uuid4(), "delivered", None, NOW), "unknown messages are ignored"


def test_labels_survive_an_erased_snapshot_and_erased_labels_are_ignored():
    c = conversation()
    c.labels = ERASED  # as read back from a snapshot after the contact's erasure
    Conversation.Labelled(originator_id=c.id, originator_version=c.version + 1, timestamp=NOW, workspace_id=WORKSPACE,
                          contact_id=CONTACT, label=ERASED, actor_id=None).mutate(c)
    assert c.labels == []
    c.label("billing", None, NOW)
    assert c.labels == ["billing"]


def test_an_empty_or_huge_reply_is_refused():
    with pytest.raises(MessageBodyInvalidError):
        conversation().send(uuid4(), "   ", None, "transactional", NOW)
    with pytest.raises(MessageBodyInvalidError):
        conversation().send(uuid4(), "x" * 20_001, None, "transactional", NOW)


def test_a_consent_expiry_without_a_time_zone_is_refused():
    contact = Contact.create(contact_id=CONTACT, workspace_id=WORKSPACE, name="Ann", phone="+447911123456",
                             email=None, time_zone=None, custom_fields={}, actor_id=None, now=NOW)
    with pytest.raises(ConsentExpiryInvalidError):
        contact.grant_consent(Channel.SMS, Purpose.MARKETING, source="form", wording="Offers", actor_id=None,
                              ip_address=None, expires_at=datetime(2030, 1, 1), now=NOW)
