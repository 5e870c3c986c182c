"""The Meta channels against PostgreSQL and the fake Graph API on loopback: inbound messages find
or create their contact once, replies go out through the outbox within the 24-hour window,
statuses only move forward, merges are followed, and tokens are sealed at rest."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from adapters.outbox_worker import OutboxWorker
from api.bootstrap import channel_senders
from api.meta_settings import MetaSettings
from api.meta_setup import wire_meta
from api.settings import Settings
from domain.conversation import conversation_id_for
from domain.social import SOCIAL, Platform, thread_for
from domain.social_errors import MetaAccountNotConnectedError, MetaAccountTakenError
from tests.fake_meta import FakeMeta
from tests.integration.helpers import NOW, new_person, new_workspace


@pytest.fixture
def fake():
    meta = FakeMeta().start()
    yield meta
    meta.stop()


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def meta_worker(hub, settings: Settings, fake: FakeMeta):
    """Outbox workers whose social channel talks to the fake Graph API on ``clock``'s time."""
    channels = []

    def make(clock: Clock) -> OutboxWorker:
        configured = replace(settings, meta=MetaSettings(app_secret=fake.app_secret, graph_url=fake.graph_url,
                                                         timeout=2))
        wired = wire_meta(configured, hub.app, hub.handles, hub.database)
        senders = {**channel_senders(configured, hub.app), **wired.senders}
        senders[SOCIAL].clock = clock
        channels.append(senders[SOCIAL])
        return OutboxWorker(hub.app, hub.database, senders, clock=clock, base_delay=0.0, max_attempts=3)

    yield make
    for channel in channels:
        channel.close()  # its keep-alive connection to the fake


def connected(hub, fake: FakeMeta, platform: str) -> tuple[uuid.UUID, str]:
    workspace_id = new_workspace(hub.app)
    account_id, token = fake.account(platform)
    hub.app.connect_meta_account(workspace_id, platform, account_id, NOW)
    hub.extras["meta"].accounts.save(workspace_id, platform, account_id, token, NOW)
    return workspace_id, account_id


def inbound(app, workspace_id, platform: Platform, account_id: str, sender: str, text: str, *, mid: str | None = None,
            name: str | None = None, at: datetime = NOW):
    contact_id = app.social_contact(workspace_id, platform, account_id, sender, name, at)
    return app.receive_social(workspace_id=workspace_id, contact_id=contact_id, platform=platform,
                              account_id=account_id, sender_id=sender, provider_message_id=mid or uuid.uuid4().hex,
                              body=text, attachments=[], now=at)


def messages(hub, conversation_id) -> dict[str, tuple[str, str | None]]:
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        rows = conn.execute("SELECT message_id, status, error_code FROM commhub_messages WHERE conversation_id = %s",
                            (conversation_id,)).fetchall()
    return {str(row[0]): (row[1], row[2]) for row in rows}


def test_a_retried_messenger_message_is_stored_once_on_one_new_contact(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    first = inbound(app, workspace_id, Platform.MESSENGER, "1001", "2002", "Hello", mid="m_same")
    again = inbound(app, workspace_id, Platform.MESSENGER, "1001", "2002", "Hello", mid="m_same")
    assert first.new and not again.new
    assert (again.contact_id, again.conversation_id, again.message_id) == (
        first.contact_id, first.conversation_id, first.message_id)
    next_one = inbound(app, workspace_id, Platform.MESSENGER, "1001", "2002", "Still there?")
    assert next_one.contact_id == first.contact_id and next_one.conversation_id == first.conversation_id
    assert set(messages(hub, first.conversation_id)) == {str(first.message_id), str(next_one.message_id)}
    contact = app.get_contact(workspace_id, first.contact_id)
    assert contact.name == "Messenger contact" and contact.phone is None
    other_page = inbound(app, workspace_id, Platform.MESSENGER, "1009", "2002", "Other page, other PSID scope")
    assert other_page.contact_id != first.contact_id


def test_a_whatsapp_sender_is_the_existing_contact_with_that_phone(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Wendy")
    hub.projections.catch_up()  # the phone handle is indexed
    received = inbound(app, workspace_id, Platform.WHATSAPP, "3003", person.phone.lstrip("+"), "Hi", name="W")
    assert received.contact_id == person.contact_id
    stranger = inbound(app, workspace_id, Platform.WHATSAPP, "3003", "447700900777", "Hi", name="Kerry Stranger")
    created = app.get_contact(workspace_id, stranger.contact_id)
    assert created.phone == "+447700900777" and created.name == "Kerry Stranger"


def test_accounts_route_to_one_workspace_only_and_can_be_released(hub):
    app = hub.app
    first, second = new_workspace(app), new_workspace(app)
    app.connect_meta_account(first, "instagram", "5005", NOW)
    app.connect_meta_account(first, "instagram", "5005", NOW)  # again: no change, no error
    with pytest.raises(MetaAccountTakenError):
        app.connect_meta_account(second, "instagram", "5005", NOW)
    assert app.workspace_for_meta_account(Platform.INSTAGRAM, "5005") == first
    with pytest.raises(MetaAccountNotConnectedError):
        app.disconnect_meta_account(second, "instagram", "5005", NOW)
    app.disconnect_meta_account(first, "instagram", "5005", NOW)
    assert app.workspace_for_meta_account(Platform.INSTAGRAM, "5005") is None
    app.connect_meta_account(second, "instagram", "5005", NOW)
    assert app.workspace_for_meta_account(Platform.INSTAGRAM, "5005") == second


def test_access_tokens_are_sealed_at_rest_and_bound_to_their_workspace(hub, fake):
    workspace_id, account_id = connected(hub, fake, "messenger")
    accounts = hub.extras["meta"].accounts
    token = fake.tokens[account_id]
    assert accounts.token(workspace_id, "messenger", account_id) == token
    assert accounts.token(new_workspace(hub.app), "messenger", account_id) is None
    with hub.database.connection() as conn:
        stored = conn.execute("SELECT sealed_token::text FROM commhub_meta_accounts WHERE account_id = %s",
                              (account_id,)).fetchone()[0]
    assert token not in stored and token.encode().hex() not in stored


def test_a_messenger_reply_goes_to_the_graph_api_then_delivery_and_read_move_it_forward_only(hub, fake, meta_worker):
    app = hub.app
    workspace_id, page = connected(hub, fake, "messenger")
    received = inbound(app, workspace_id, Platform.MESSENGER, page, "7007", "Are you open?")
    message_id, decision = app.reply(workspace_id, received.conversation_id, body="Until 6pm", author_id=None,
                                     now=NOW + timedelta(minutes=5))
    assert decision.allowed
    hub.projections.catch_up()
    meta_worker(Clock(NOW + timedelta(minutes=5))).run_once()
    [sent] = fake.accepted(page)
    assert sent.body == {"recipient": {"id": "7007"}, "messaging_type": "RESPONSE", "message": {"text": "Until 6pm"}}
    assert messages(hub, received.conversation_id)[str(message_id)] == ("sent", None)

    assert app.record_social_status(workspace_id, Platform.MESSENGER, [sent.message_id], "delivered", None, NOW) == 1
    assert app.record_social_status(workspace_id, Platform.MESSENGER, [sent.message_id], "sent", None, NOW) == 0
    assert messages(hub, received.conversation_id)[str(message_id)] == ("delivered", None)
    watermark = NOW + timedelta(minutes=6)
    assert app.record_social_watermark(workspace_id, Platform.MESSENGER, page, "7007", watermark, "read", NOW) == 1
    assert app.record_social_status(workspace_id, Platform.MESSENGER, [sent.message_id], "delivered", None, NOW) == 0
    assert messages(hub, received.conversation_id)[str(message_id)] == ("read", None)
    other = new_workspace(app)  # another workspace cannot move our messages by naming their ids
    assert app.record_social_status(other, Platform.MESSENGER, [sent.message_id], "failed", None, NOW) == 0


def test_whatsapp_free_text_outside_the_window_is_refused_and_a_template_goes_instead(hub, fake, meta_worker):
    app = hub.app
    workspace_id, number = connected(hub, fake, "whatsapp")
    received = inbound(app, workspace_id, Platform.WHATSAPP, number, "447700900321", "Book me in", name="Tam")
    later = NOW + timedelta(hours=25)
    refused_id, refused = app.reply(workspace_id, received.conversation_id, body="Free text", author_id=None, now=later)
    assert not refused.allowed and str(refused.reason) == "outside_customer_service_window"
    template_id, decision = app.send_social_template(workspace_id, received.conversation_id, name="booking_update",
                                                     language="en_GB", parameters=["Tam", "Friday 3pm"],
                                                     author_id=None, now=later)
    assert decision.allowed
    hub.projections.catch_up()
    meta_worker(Clock(later)).run_once()
    [sent] = fake.accepted(number)
    assert sent.body["type"] == "template" and sent.body["to"] == "447700900321"
    assert sent.body["template"]["name"] == "booking_update"
    assert sent.body["template"]["components"][0]["parameters"][1] == {"type": "text", "text": "Friday 3pm"}
    rows = messages(hub, received.conversation_id)
    assert rows[str(refused_id)][0] == "refused" and rows[str(template_id)][0] == "sent"


def test_throttling_is_retried_and_a_final_graph_error_is_recorded_with_our_title(hub, fake, meta_worker):
    app = hub.app
    workspace_id, number = connected(hub, fake, "whatsapp")
    received = inbound(app, workspace_id, Platform.WHATSAPP, number, "447700900654", "Hello")
    clock = Clock(NOW + timedelta(minutes=1))
    worker = meta_worker(clock)
    retried, _ = app.reply(workspace_id, received.conversation_id, body="First", author_id=None, now=clock.at)
    hub.projections.catch_up()
    fake.answer_next("429", "400:130429")
    for _ in range(3):
        worker.run_once()
        clock.at += timedelta(seconds=1)
    assert [s.answered for s in fake.attempts(number)] == [429, 400, 200]
    assert messages(hub, received.conversation_id)[str(retried)] == ("sent", None)

    final, _ = app.reply(workspace_id, received.conversation_id, body="Second", author_id=None, now=clock.at)
    hub.projections.catch_up()
    fake.answer_next("400:131026")
    worker.run_once()
    worker.run_once()
    status, error = messages(hub, received.conversation_id)[str(final)]
    assert status == "failed" and error == "meta 131026: The message could not be delivered to this WhatsApp user"
    assert len(fake.attempts(number)) == 4  # not retried


def test_a_new_message_from_a_merged_away_identity_lands_on_the_surviving_contact(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Maya")
    messenger = inbound(app, workspace_id, Platform.MESSENGER, "1001", "8008", "Hi on Messenger")
    app.merge_contacts(workspace_id, person.contact_id, messenger.contact_id, None, NOW)
    # Before the handle index catches up it still names the duplicate: the merge is followed anyway.
    before = inbound(app, workspace_id, Platform.MESSENGER, "1001", "8008", "Again")
    assert before.contact_id == person.contact_id
    assert before.conversation_id == conversation_id_for(person.contact_id, SOCIAL, thread_for(Platform.MESSENGER,
                                                                                                 "1001"))
    hub.projections.catch_up()
    assert hub.extras["meta"].handles.find(workspace_id, "messenger", "1001:8008") == person.contact_id
    after = inbound(app, workspace_id, Platform.MESSENGER, "1001", "8008", "Once more")
    assert after.contact_id == person.contact_id and after.conversation_id == before.conversation_id


def test_the_social_handle_index_is_rebuilt_from_events_and_emptied_by_erasure(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    received = inbound(app, workspace_id, Platform.INSTAGRAM, "4004", "9009", "Hi from Instagram")
    index = hub.extras["meta"].handles
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        conn.execute("DELETE FROM commhub_social_handles WHERE contact_id = %s", (received.contact_id,))
    view = hub.extras["meta"].view
    with hub.database.connection() as conn:
        for event in app.events.get(received.contact_id):
            view.process(conn, event, 0)
    assert index.find(workspace_id, "instagram", "4004:9009") == received.contact_id
    app.erase_contact(workspace_id, received.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    hub.projections.catch_up()
    assert index.find(workspace_id, "instagram", "4004:9009") is None


def test_the_window_counts_from_when_the_person_wrote_not_from_a_late_webhook(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    contact_id = app.social_contact(workspace_id, Platform.WHATSAPP, "3003", "447700900888", None, NOW)
    received = app.receive_social(workspace_id=workspace_id, contact_id=contact_id, platform=Platform.WHATSAPP,
                                  account_id="3003", sender_id="447700900888", provider_message_id="wamid.LATE",
                                  body="Sent yesterday, delivered now", attachments=[], now=NOW,
                                  sent_at=NOW - timedelta(hours=30))
    _, decision = app.reply(workspace_id, received.conversation_id, body="Hello", author_id=None, now=NOW)
    assert str(decision.reason) == "outside_customer_service_window"


def test_without_meta_credentials_social_replies_are_captured_by_the_sandbox(hub, settings):
    app = hub.app
    workspace_id = new_workspace(app)
    received = inbound(app, workspace_id, Platform.INSTAGRAM, "4004", "9119", "Hello")
    message_id, _ = app.reply(workspace_id, received.conversation_id, body="Hi", author_id=None, now=NOW)
    hub.projections.catch_up()
    OutboxWorker(hub.app, hub.database, channel_senders(settings, hub.app), clock=lambda: NOW).run_once()
    assert messages(hub, received.conversation_id)[str(message_id)] == ("captured", None)


def test_a_whatsapp_reply_still_queued_when_the_window_closes_fails_without_calling_meta(hub, fake, meta_worker):
    app = hub.app
    workspace_id, number = connected(hub, fake, "whatsapp")
    received = inbound(app, workspace_id, Platform.WHATSAPP, number, "447700900432", "Hello")
    message_id, decision = app.reply(workspace_id, received.conversation_id, body="Late", author_id=None,
                                     now=NOW + timedelta(hours=23, minutes=59))
    assert decision.allowed
    hub.projections.catch_up()
    meta_worker(Clock(NOW + timedelta(hours=24, minutes=1))).run_once()
    assert messages(hub, received.conversation_id)[str(message_id)] == ("failed", "outside_customer_service_window")
    assert fake.attempts(number) == []
