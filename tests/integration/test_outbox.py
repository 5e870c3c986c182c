"""The outbox: delivered once, never again after a rebuild, and stopped by consent at the last moment."""

from __future__ import annotations

import uuid
from datetime import timedelta

from adapters.channels import DeliveryResult, OutboundMessage
from adapters.outbox_worker import OutboxWorker
from tests.integration.helpers import NOW, new_person, new_workspace


class Recorder:
    """A channel that records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        return DeliveryResult(status="delivered", provider_message_id=f"fake-{len(self.sent)}")


def worker_for(hub, channel) -> OutboxWorker:
    return OutboxWorker(hub.app, hub.database, {"sms": channel}, clock=lambda: NOW)


def queued_reply(hub, body: str):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Olive")
    conversation_id = app.start_conversation(workspace_id, person.contact_id, "sms", NOW)
    message_id, decision = app.reply(workspace_id, conversation_id, body=body, author_id=None, now=NOW)
    assert decision.allowed
    hub.projections.catch_up()
    return workspace_id, person, conversation_id, message_id


def test_a_queued_reply_is_sent_once_and_its_delivery_recorded(hub):
    channel = Recorder()
    workspace_id, _, conversation_id, message_id = queued_reply(hub, "See you Tuesday")
    worker = worker_for(hub, channel)
    worker.run_once()
    worker.run_once()
    assert [m.body for m in channel.sent] == ["See you Tuesday"]
    delivered = [e for e in hub.app.events.get(conversation_id) if type(e).__name__ == "MessageDeliveryUpdated"]
    assert [(e.message_id, e.status) for e in delivered] == [(message_id, "delivered")]


def test_rebuilding_the_outbox_never_sends_a_delivered_message_again(hub):
    channel = Recorder()
    queued_reply(hub, "Reply one")
    worker = worker_for(hub, channel)
    worker.run_once()
    hub.projections.catch_up()

    hub.projections.rebuild("outbox")
    worker.run_once()

    assert [m.body for m in channel.sent] == ["Reply one"]


def test_consent_withdrawn_while_a_message_waits_cancels_it(hub):
    channel = Recorder()
    workspace_id, person, conversation_id, message_id = queued_reply(hub, "Offer ends soon")
    hub.app.withdraw_consent(workspace_id, person.contact_id, channel="sms", purpose="transactional",
                             source="STOP keyword", wording="STOP", actor_id=None, now=NOW)

    worker_for(hub, channel).run_once()

    assert channel.sent == []
    outcome = [e for e in hub.app.events.get(conversation_id) if type(e).__name__ == "MessageDeliveryUpdated"]
    assert [(e.status, e.error_code) for e in outcome] == [("cancelled", "consent_withdrawn")]


def test_erasure_cancels_what_is_still_queued_and_nothing_is_sent(hub):
    channel = Recorder()
    workspace_id, person, _, _ = queued_reply(hub, "Your results are ready")
    hub.app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    hub.projections.catch_up()

    worker_for(hub, channel).run_once()

    assert channel.sent == []
    with hub.database.connect() as conn:
        assert conn.execute("SELECT status, body FROM commhub_outbox WHERE contact_id = %s",
                            (person.contact_id,)).fetchall() == [("cancelled", None)]


class ProcessDied(BaseException):
    """The worker process died (SIGKILL) while this send was in flight."""


class AcceptsThenDies(Recorder):
    """The provider takes the message, then the worker dies before it records the outcome."""

    def send(self, message: OutboundMessage) -> DeliveryResult:
        super().send(message)
        raise ProcessDied


def test_a_message_whose_worker_died_after_the_provider_took_it_is_not_sent_again_by_the_next_worker(hub):
    workspace_id, _, conversation_id, message_id = queued_reply(hub, "Your parcel is ready")
    dying = AcceptsThenDies()
    try:
        worker_for(hub, dying).run_once()
    except ProcessDied:
        pass
    # The provider's status callback records the send; the outbox read model has not caught up yet.
    hub.app.record_delivery(workspace_id, conversation_id, message_id, "sent", None, NOW)

    after_the_lease = NOW + timedelta(minutes=2)
    survivor = Recorder()
    OutboxWorker(hub.app, hub.database, {"sms": survivor}, clock=lambda: after_the_lease).run_once()
    hub.projections.catch_up()
    later = after_the_lease + timedelta(minutes=2)
    OutboxWorker(hub.app, hub.database, {"sms": survivor}, clock=lambda: later).run_once()

    assert [m.body for m in dying.sent] == ["Your parcel is ready"] and survivor.sent == []
    with hub.database.connect() as conn:
        row = conn.execute("SELECT status FROM commhub_outbox WHERE message_id = %s", (message_id,)).fetchone()
    assert row == ("sent",)


class CallsBackFirst(Recorder):
    """A provider whose status callback ("sent") is recorded before its answer to the send call arrives."""

    def __init__(self, hub, workspace_id, conversation_id, at) -> None:
        super().__init__()
        self.hub, self.workspace_id, self.conversation_id, self.at = hub, workspace_id, conversation_id, at

    def send(self, message: OutboundMessage) -> DeliveryResult:
        super().send(message)
        self.hub.app.record_delivery(self.workspace_id, self.conversation_id, message.message_id, "sent", None, self.at)
        return DeliveryResult(status="sent", provider_message_id="SM1")


def test_when_the_status_callback_beats_the_send_call_the_outbox_row_equals_its_rebuild(hub):
    workspace_id, _, conversation_id, message_id = queued_reply(hub, "Table for two at eight")
    channel = CallsBackFirst(hub, workspace_id, conversation_id, NOW + timedelta(seconds=1))
    OutboxWorker(hub.app, hub.database, {"sms": channel}, clock=lambda: NOW + timedelta(seconds=2)).run_once()
    hub.projections.catch_up()

    def row() -> tuple:
        with hub.database.connect() as conn:
            return conn.execute("SELECT status, body, finished_at FROM commhub_outbox WHERE message_id = %s",
                                (message_id,)).fetchone()

    live = row()
    hub.projections.rebuild("outbox")
    assert live == row() == ("sent", None, NOW + timedelta(seconds=1))
    assert len(channel.sent) == 1


def test_an_sms_still_waiting_when_the_quiet_hours_begin_goes_when_they_end(hub):
    channel = Recorder()
    workspace_id, _, conversation_id, message_id = queued_reply(hub, "Your results are ready")  # queued at 09:30
    hub.app.change_sms_settings(workspace_id, {"quiet_hours_start": "21:00", "quiet_hours_end": "08:00"}, NOW)
    evening = NOW.replace(hour=21, minute=30)
    morning = (NOW + timedelta(days=1)).replace(hour=8, minute=0)

    OutboxWorker(hub.app, hub.database, {"sms": channel}, clock=lambda: evening).run_once()
    OutboxWorker(hub.app, hub.database, {"sms": channel}, clock=lambda: morning - timedelta(minutes=1)).run_once()
    assert channel.sent == []
    with hub.database.connection() as conn:
        held = conn.execute("SELECT status, attempts, next_attempt_at, last_error FROM commhub_outbox"
                            " WHERE message_id = %s", (message_id,)).fetchone()
    assert held == ("pending", 0, morning, "quiet_hours")  # London is on GMT in November

    OutboxWorker(hub.app, hub.database, {"sms": channel}, clock=lambda: morning).run_once()
    assert [m.body for m in channel.sent] == ["Your results are ready"]
    delivered = [e.status for e in hub.app.events.get(conversation_id) if type(e).__name__ == "MessageDeliveryUpdated"]
    assert delivered == ["delivered"]
