"""A varied history for projection tests: contacts, conversations, merges, consents, an erasure."""

from __future__ import annotations

import uuid
from datetime import timedelta

from domain.application import CommHub
from tests.integration.helpers import NOW, new_workspace


def seed_history(app: CommHub, conversations: int = 12) -> uuid.UUID:
    workspace_id = new_workspace(app)
    staff_id = app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Agent Smith",
                             email=f"agent.{uuid.uuid4().hex[:6]}@clinic.example", role="agent", password_hash="x", now=NOW)
    app.save_canned_response(workspace_id, uuid.uuid4(), "Opening hours", "We are open 9-5.", NOW)
    contacts = []
    for i in range(conversations):
        at = NOW + timedelta(minutes=i)
        contact_id = app.find_or_create_contact(workspace_id, kind="phone", value=f"+4479111{i:05d}", name=f"Patient {i}", now=at)
        contacts.append(contact_id)
        app.grant_consent(workspace_id, contact_id, channel="sms", purpose="marketing", source="form",
                          wording="Offers by text", actor_id=staff_id, now=at)
        conversation_id, _, _ = app.receive_message(workspace_id=workspace_id, contact_id=contact_id, channel="sms",
                                                    body=f"Question number {i}", now=at, provider_message_id=f"SM{i}")
        app.reply(workspace_id, conversation_id, body=f"Answer {i}", author_id=staff_id, now=at)
        if i % 3 == 0:
            app.assign_conversation(workspace_id, conversation_id, staff_id, staff_id, at)
            app.label_conversation(workspace_id, conversation_id, "billing", staff_id, at)
        if i % 4 == 0:
            app.close_conversation(workspace_id, conversation_id, staff_id, at)
        app.add_note(workspace_id, contact_id, note_id=uuid.uuid4(), text=f"Note about patient {i}", author_id=staff_id, now=at)
        app.tag_contact(workspace_id, contact_id, "vip" if i % 2 else "new", staff_id, at)
    app.merge_contacts(workspace_id, contacts[1], contacts[2], staff_id, NOW + timedelta(hours=1))
    app.withdraw_consent(workspace_id, contacts[3], channel="sms", purpose="marketing", source="STOP keyword",
                         wording="STOP", actor_id=None, now=NOW + timedelta(hours=1))
    app.rectify_contact(workspace_id, contacts[4], {"name": "Patient Four Renamed", "email": "four@example.org"},
                        staff_id, NOW + timedelta(hours=1))
    app.erase_contact(workspace_id, contacts[5], request_id=uuid.uuid4(), actor_id=staff_id, now=NOW + timedelta(hours=2))
    return workspace_id
