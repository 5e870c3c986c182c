"""Email commands on an in-memory CommHub: inbound addresses, storing an email once, composing one."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID, uuid4

import pytest

from domain.application import CommHub
from domain.email import EmailComposed, EmailReceived
from domain.errors import ChannelInvalidError, InboundAddressTakenError
from domain.personal import personal_fields

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def app() -> CommHub:
    return CommHub({})


def workspace(app: CommHub) -> UUID:
    return app.create_workspace(workspace_id=uuid4(), name="Harbour Physio", slug=f"w-{uuid4().hex[:8]}",
                                time_zone="Europe/London", now=NOW)


def contact(app: CommHub, workspace_id: UUID) -> UUID:
    return app.create_contact(workspace_id=workspace_id, contact_id=uuid4(), name="Maria",
                              email="maria@example.net", now=NOW)


def receive(app: CommHub, workspace_id: UUID, contact_id: UUID, key: str = "sha256:1") -> tuple[UUID, UUID, bool]:
    return app.receive_email(workspace_id=workspace_id, contact_id=contact_id, body="Hello", attachments=[],
                             provider_message_id=key, subject="Appointment", rfc_message_id="<a@x.example>",
                             references=[], auto_reply=False, thread="default", now=NOW)


def test_an_inbound_address_belongs_to_one_workspace_and_attaching_it_again_is_harmless(app):
    first, second = workspace(app), workspace(app)
    app.attach_inbound_address(first, "Help@Harbour.example", NOW)
    app.attach_inbound_address(first, "help@harbour.example", NOW)
    with pytest.raises(InboundAddressTakenError):
        app.attach_inbound_address(second, "HELP@harbour.example", NOW)
    assert app.workspace_for_inbound_address("help@HARBOUR.example") == first
    assert app.workspace_for_inbound_address("other@harbour.example") is None


def test_an_email_is_stored_once_with_its_headers_beside_the_message(app):
    workspace_id = workspace(app)
    contact_id = contact(app, workspace_id)
    conversation_id, message_id, new = receive(app, workspace_id, contact_id)
    again = receive(app, workspace_id, contact_id)
    assert new and again == (conversation_id, message_id, False)
    kinds = [type(e).__name__ for e in app.events.get(conversation_id)]
    assert kinds == ["Started", "MessageReceived", "EmailReceived"]


def test_subjects_message_ids_and_attachment_names_are_sealed_under_the_contact():
    assert set(personal_fields(EmailReceived)) == {"subject", "rfc_message_id", "references"}
    assert set(personal_fields(EmailComposed)) == {"subject", "attachments"}
    assert set(personal_fields(EmailReceived).values()) == {"contact_id"}


def test_a_composed_email_records_its_subject_before_the_message_it_belongs_to(app):
    workspace_id = workspace(app)
    conversation_id, _, _ = receive(app, workspace_id, contact(app, workspace_id))
    message_id, decision = app.compose_email(workspace_id, conversation_id, body="See you", subject="  Friday ",
                                             attachments=[], author_id=None, purpose="transactional", now=NOW)
    events = list(app.events.get(conversation_id))[-2:]
    assert decision.allowed
    assert [type(e).__name__ for e in events] == ["EmailComposed", "MessageSent"]
    assert events[0].subject == "Friday" and events[0].message_id == events[1].message_id == message_id


def test_marketing_email_without_consent_is_refused_and_nothing_is_composed(app):
    workspace_id = workspace(app)
    conversation_id, _, _ = receive(app, workspace_id, contact(app, workspace_id))
    _, decision = app.compose_email(workspace_id, conversation_id, body="Offer", subject="Offer", attachments=[],
                                    author_id=None, purpose="marketing", now=NOW)
    assert not decision.allowed and str(decision.reason) == "no_marketing_consent"
    assert type(list(app.events.get(conversation_id))[-1]).__name__ == "MessageRefused"


def test_composing_an_email_in_an_sms_conversation_is_refused(app):
    workspace_id = workspace(app)
    contact_id = contact(app, workspace_id)
    sms = app.start_conversation(workspace_id, contact_id, "sms", NOW)
    with pytest.raises(ChannelInvalidError):
        app.compose_email(workspace_id, sms, body="Hi", subject=None, attachments=[], author_id=None,
                          purpose="transactional", now=NOW)
