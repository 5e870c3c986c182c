"""Social channel commands on an in-memory application (no I/O: eventsourcing's in-memory store and
a dictionary for the handle index port): given a thread, when a message, reply or status comes, then
these events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from domain.application import CommHub
from domain.social import Platform
from domain.social_errors import MetaAccountInvalidError, SocialTemplateInvalidError, SocialThreadInvalidError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


class Handles:
    """The handle index port, as a dictionary."""

    def __init__(self) -> None:
        self.rows: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}

    def find(self, workspace_id, kind, value):
        return self.rows.get((workspace_id, kind, value))

    def claim(self, workspace_id, kind, value, contact_id):
        return self.rows.setdefault((workspace_id, kind, value), contact_id)


@pytest.fixture
def app():
    application = CommHub({}, handles=Handles())
    application.social_handles = Handles()
    yield application
    application.close()


def workspace(app: CommHub) -> uuid.UUID:
    return app.create_workspace(workspace_id=uuid.uuid4(), name="Clinic", slug=f"ws-{uuid.uuid4().hex[:8]}",
                                time_zone="Europe/London", now=NOW)


def write_in(app, ws, platform=Platform.MESSENGER, sender="2002", mid="m_1", at=NOW, sent_at=None):
    contact_id = app.social_contact(ws, platform, "1001", sender, None, at)
    return app.receive_social(workspace_id=ws, contact_id=contact_id, platform=platform, account_id="1001",
                              sender_id=sender, provider_message_id=mid, body="Hello", attachments=[], now=at,
                              sent_at=sent_at)


def events(app: CommHub, aggregate_id: uuid.UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(aggregate_id)]


def test_a_first_message_starts_the_thread_records_the_address_and_when_they_wrote(app):
    ws = workspace(app)
    received = write_in(app, ws)
    assert events(app, received.conversation_id) == ["Started", "SocialAddressUsed", "CustomerWrote",
                                                     "MessageReceived"]
    assert events(app, received.contact_id) == ["Created", "SocialIdentityLinked"]
    again = write_in(app, ws)
    assert not again.new and again.message_id == received.message_id
    write_in(app, ws, mid="m_2")
    assert events(app, received.conversation_id)[-2:] == ["CustomerWrote", "MessageReceived"]  # same address


def test_replies_follow_the_window_of_each_platform(app):
    ws = workspace(app)
    whatsapp = write_in(app, ws, Platform.WHATSAPP, sender="447700900123", mid="wamid.1")
    messenger = write_in(app, ws, Platform.MESSENGER, mid="m_9")
    _, inside = app.reply(ws, whatsapp.conversation_id, body="Hi", author_id=None, now=NOW + timedelta(hours=2))
    _, late_whatsapp = app.reply(ws, whatsapp.conversation_id, body="Hi", author_id=None, now=NOW + timedelta(days=2))
    _, late_messenger = app.reply(ws, messenger.conversation_id, body="Hi", author_id=None, now=NOW + timedelta(days=2))
    _, too_late = app.reply(ws, messenger.conversation_id, body="Hi", author_id=None, now=NOW + timedelta(days=8))
    assert inside.allowed and late_messenger.allowed
    assert str(late_whatsapp.reason) == "outside_customer_service_window"
    assert str(too_late.reason) == "outside_human_agent_window"
    assert events(app, whatsapp.conversation_id)[-1] == "MessageRefused"


def test_restriction_of_processing_stops_social_replies_and_templates(app):
    ws = workspace(app)
    received = write_in(app, ws, Platform.WHATSAPP, sender="447700900123", mid="wamid.1")
    app.restrict_processing(ws, received.contact_id, "disputes accuracy", None, NOW)
    _, reply = app.reply(ws, received.conversation_id, body="Hi", author_id=None, now=NOW)
    _, template = app.send_social_template(ws, received.conversation_id, name="hello", language="en",
                                           parameters=[], author_id=None, now=NOW)
    assert str(reply.reason) == str(template.reason) == "processing_restricted"


def test_templates_are_for_whatsapp_threads_with_a_valid_name_and_language(app):
    ws = workspace(app)
    messenger = write_in(app, ws)
    whatsapp = write_in(app, ws, Platform.WHATSAPP, sender="447700900123", mid="wamid.1")
    with pytest.raises(SocialThreadInvalidError):
        app.send_social_template(ws, messenger.conversation_id, name="hello", language="en", parameters=[],
                                 author_id=None, now=NOW)
    for name, language, parameters in [("Hello World", "en", []), ("hello", "english", []), ("hello", "en", [" "])]:
        with pytest.raises(SocialTemplateInvalidError):
            app.send_social_template(ws, whatsapp.conversation_id, name=name, language=language,
                                     parameters=parameters, author_id=None, now=NOW)
    message_id, decision = app.send_social_template(ws, whatsapp.conversation_id, name="hello", language="en_US",
                                                    parameters=["Ada"], author_id=None, now=NOW + timedelta(days=3))
    assert decision.allowed and app.social_template(message_id).parameters == ["Ada"]


def test_statuses_of_a_sent_message_move_forward_once_each(app):
    ws = workspace(app)
    received = write_in(app, ws, Platform.WHATSAPP, sender="447700900123", mid="wamid.1")
    message_id, _ = app.reply(ws, received.conversation_id, body="Hi", author_id=None, now=NOW)
    app.record_delivery(ws, received.conversation_id, message_id, "sent", None, NOW)
    app.record_social_send(ws, received.conversation_id, message_id, Platform.WHATSAPP, "wamid.OUT", NOW)
    app.record_social_send(ws, received.conversation_id, message_id, Platform.WHATSAPP, "wamid.OUT", NOW)  # again
    moved = [app.record_social_status(ws, Platform.WHATSAPP, ["wamid.OUT"], status, None, NOW)
             for status in ("sent", "read", "delivered", "failed", "read")]
    assert moved == [0, 1, 0, 0, 0]
    updates = [e.status for e in app.events.get(received.conversation_id) if type(e).__name__ == "MessageDeliveryUpdated"]
    assert updates == ["sent", "read"]
    assert events(app, received.conversation_id).count("SocialMessageSent") == 1


def test_a_message_from_a_merged_away_identity_lands_on_the_survivor(app):
    ws = workspace(app)
    survivor = app.create_contact(workspace_id=ws, contact_id=uuid.uuid4(), name="Ada", phone="+447700900123",
                                  now=NOW)
    first = write_in(app, ws)
    app.merge_contacts(ws, survivor, first.contact_id, None, NOW)
    later = write_in(app, ws, mid="m_after")
    assert later.contact_id == survivor and later.conversation_id != first.conversation_id


def test_accounts_are_checked_before_anything_is_stored(app):
    ws = workspace(app)
    for platform, account_id in [("telegram", "123"), ("messenger", "12ab"), ("whatsapp", ""), ("instagram", "1" * 33)]:
        with pytest.raises(MetaAccountInvalidError):
            app.connect_meta_account(ws, platform, account_id, NOW)
