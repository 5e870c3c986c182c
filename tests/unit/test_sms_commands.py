"""SMS commands on an in-memory application: given a contact, when an SMS arrives or a send is
asked for, then these events (no I/O: eventsourcing's in-memory store)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from domain.application import CommHub
from domain.conversation import Conversation
from domain.errors import PhoneNumberNotAttachedError, PhoneNumberTakenError, QuietHoursInvalidError
from domain.sms import COMPLIANCE, reply_id_for
from domain.sms_keywords import OPT_OUT_CONFIRMATION

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
NIGHT = datetime(2026, 11, 25, 23, 0, tzinfo=timezone.utc)


@pytest.fixture
def app():
    application = CommHub({})
    yield application
    application.close()


def workspace(app: CommHub) -> uuid.UUID:
    return app.create_workspace(workspace_id=uuid.uuid4(), name="Clinic", slug=f"ws-{uuid.uuid4().hex[:8]}",
                                time_zone="Europe/London", now=NOW)


def contact(app: CommHub, workspace_id: uuid.UUID) -> uuid.UUID:
    return app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Ada", phone="+447700900123",
                              now=NOW)


def events(app: CommHub, aggregate_id: uuid.UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(aggregate_id)]


def test_stop_withdraws_consent_cancels_what_is_queued_and_queues_only_the_confirmation(app):
    ws = workspace(app)
    person = contact(app, ws)
    conversation_id = app.start_conversation(ws, person, "sms", NOW)
    queued, _ = app.reply(ws, conversation_id, body="Reminder", author_id=None, now=NOW)

    result = app.receive_sms(workspace_id=ws, contact_id=person, body="Stop.", provider_message_id="SM1",
                             attachments=[], now=NOW)

    conversation = list(app.events.get(conversation_id))
    updates = [(e.message_id, e.status, e.error_code) for e in conversation
               if isinstance(e, Conversation.MessageDeliveryUpdated)]
    assert updates == [(queued, "cancelled", "consent_withdrawn")]
    sent = [(e.message_id, e.body, e.purpose) for e in conversation if isinstance(e, Conversation.MessageSent)]
    assert sent[-1] == (reply_id_for(result.message_id), OPT_OUT_CONFIRMATION, COMPLIANCE)
    assert not app.may_send(ws, person, "sms", "transactional", NOW).allowed
    assert app.may_send(ws, person, "sms", COMPLIANCE, NOW).allowed


def test_a_second_stop_sends_no_second_confirmation_and_a_repeated_message_sid_nothing_at_all(app):
    ws = workspace(app)
    person = contact(app, ws)
    first = app.receive_sms(workspace_id=ws, contact_id=person, body="STOP", provider_message_id="SM1",
                            attachments=[], now=NOW)
    again = app.receive_sms(workspace_id=ws, contact_id=person, body="STOP", provider_message_id="SM1",
                            attachments=[], now=NOW)
    second = app.receive_sms(workspace_id=ws, contact_id=person, body="quit", provider_message_id="SM2",
                             attachments=[], now=NOW)

    assert first.reply_id is not None and not again.new and again.message_id == first.message_id
    assert second.new and second.reply_id is None
    assert events(app, first.conversation_id).count("MessageSent") == 1
    assert events(app, person).count("ConsentWithdrawn") == 1


def test_start_restores_only_what_the_keyword_took_away(app):
    ws = workspace(app)
    person = contact(app, ws)
    app.grant_consent(ws, person, channel="sms", purpose="marketing", source="form", wording="Offers by SMS",
                      actor_id=None, now=NOW)
    app.receive_sms(workspace_id=ws, contact_id=person, body="STOP", provider_message_id="SM1", attachments=[], now=NOW)
    assert not app.may_send(ws, person, "sms", "marketing", NOW).allowed
    app.receive_sms(workspace_id=ws, contact_id=person, body="unstop", provider_message_id="SM2", attachments=[],
                    now=NOW)
    assert app.may_send(ws, person, "sms", "marketing", NOW).allowed
    assert app.may_send(ws, person, "sms", "transactional", NOW).allowed


def test_start_without_a_prior_opt_out_grants_nothing_and_sends_nothing(app):
    ws = workspace(app)
    person = contact(app, ws)
    result = app.receive_sms(workspace_id=ws, contact_id=person, body="YES", provider_message_id="SM1",
                             attachments=[], now=NOW)
    assert result.reply_id is None
    assert "ConsentGranted" not in events(app, person)
    assert not app.may_send(ws, person, "sms", "marketing", NOW).allowed


def test_quiet_hours_refuse_a_send_and_record_why(app):
    ws = workspace(app)
    person = contact(app, ws)
    app.change_sms_settings(ws, {"quiet_hours_start": "21:00", "quiet_hours_end": "08:00"}, NOW)
    message_id, decision = app.send_sms(ws, person, body="Your appointment is tomorrow", now=NIGHT)
    assert str(decision.reason) == "quiet_hours"
    [refused] = [e for e in app.events.get(app.start_conversation(ws, person, "sms", NOW))
                 if isinstance(e, Conversation.MessageRefused)]
    assert (refused.message_id, refused.reason) == (message_id, "quiet_hours")
    assert app.send_sms(ws, person, body="Your appointment is tomorrow", now=NOW)[1].allowed


def test_quiet_hours_need_both_ends(app):
    ws = workspace(app)
    with pytest.raises(QuietHoursInvalidError):
        app.change_sms_settings(ws, {"quiet_hours_start": "21:00"}, NOW)


def test_a_number_routes_to_the_one_workspace_that_attached_it_until_released(app):
    first, second = workspace(app), workspace(app)
    app.attach_number(first, "+15005550006", NOW)
    assert app.workspace_for_number("+15005550006") == first
    with pytest.raises(PhoneNumberTakenError):
        app.attach_number(second, "+15005550006", NOW)
    app.release_number(first, "+15005550006", NOW)
    with pytest.raises(PhoneNumberNotAttachedError):
        app.workspace_for_number("+15005550006")
    app.attach_number(second, "+15005550006", NOW)
    assert app.workspace_for_number("+15005550006") == second
    assert app.sms_settings(first).numbers == [] and app.sms_settings(second).numbers == ["+15005550006"]


def test_a_missed_call_is_logged_once_and_texts_back_once(app):
    ws = workspace(app)
    person = contact(app, ws)
    app.change_sms_settings(ws, {"missed_call_text": "Sorry we missed you"}, NOW)
    assert app.log_call(ws, person, call_sid="CA1", kind="missed", now=NOW, to_number="+15005550006")[1].allowed
    assert app.log_call(ws, person, call_sid="CA1", kind="missed", now=NOW) == (False, None)
    sms = app.start_conversation(ws, person, "sms", NOW)
    assert [e.body for e in app.events.get(sms) if isinstance(e, Conversation.MessageSent)] == ["Sorry we missed you"]
    assert "CallLogged" in events(app, app.start_conversation(ws, person, "voice", NOW))


def test_stop_from_a_merged_duplicates_number_opts_out_the_surviving_contact(app):
    ws = workspace(app)
    survivor, duplicate = contact(app, ws), contact(app, ws)
    app.merge_contacts(ws, survivor, duplicate, None, NOW)
    result = app.receive_sms(workspace_id=ws, contact_id=duplicate, body="STOP", provider_message_id="SM1",
                             attachments=[], now=NOW)
    assert result.reply_id is not None
    assert app.get_conversation(ws, result.conversation_id).contact_id == survivor
    assert str(app.may_send(ws, survivor, "sms", "transactional", NOW).reason) == "consent_withdrawn"
