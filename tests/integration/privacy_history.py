"""A person with a bit of everything recorded about them, for the erasure and export tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from api.bootstrap import Hub
from domain.appointments_app import Booking
from tests.integration.helpers import NOW, Person, new_person


@dataclass
class RichPerson:
    person: Person
    conversation_id: uuid.UUID
    queued_message_id: uuid.UUID
    file_id: uuid.UUID
    attachment: bytes
    texts: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        return [*self.person.secrets, *self.texts]


def rich_person(hub: Hub, workspace_id: uuid.UUID, label: str) -> RichPerson:
    """Profile, tags, custom fields, consent with evidence, an inbound message with an attachment,
    a queued reply, a conversation note and label, an appointment, a rectification and a restriction
    reason. Add here whatever a new feature records about a person, and the erasure tests cover it."""
    app = hub.app
    assert hub.privacy is not None
    person = new_person(app, workspace_id, label)
    token = uuid.uuid4().hex[:8]
    texts = {
        "tag": f"tag-{label}-{token}", "field": f"allergy-{label}-{token}", "wording": f"Texts for {label} {token}",
        "message": f"{label} says my wrist hurts {token}", "reply": f"Reply for {label} {token}",
        "conversation_note": f"{label} internal note {token}", "label": f"lbl-{token}",
        "renamed": f"{label} Renamed-{token}", "reason": f"{label} disputes data {token}",
        "filename": f"scan-{label}-{token}.pdf", "service": f"Physio for {label} {token}",
        "appointment_note": f"{label} bring x-rays {token}",
    }
    app.tag_contact(workspace_id, person.contact_id, texts["tag"], None, NOW)
    app.rectify_contact(workspace_id, person.contact_id, {"custom_fields": {"allergy": texts["field"]}}, None, NOW)
    app.grant_consent(workspace_id, person.contact_id, channel="sms", purpose="marketing", source="web form",
                      wording=texts["wording"], actor_id=None, ip_address="203.0.113.9", now=NOW)
    attachment = f"%PDF-1.4 x-ray of {label} {token}".encode()
    file_id = uuid.uuid4()
    hub.privacy.files.put(file_id, workspace_id, person.contact_id, "application/pdf", attachment)
    conversation_id, _, _ = app.receive_message(
        workspace_id=workspace_id, contact_id=person.contact_id, channel="sms", body=texts["message"], now=NOW,
        attachments=[{"attachment_id": str(file_id), "filename": texts["filename"], "content_type": "application/pdf",
                      "size": len(attachment)}],
    )
    queued_message_id, decision = app.reply(workspace_id, conversation_id, body=texts["reply"], author_id=None, now=NOW)
    assert decision.allowed
    app.add_conversation_note(workspace_id, conversation_id, note_id=uuid.uuid4(), text=texts["conversation_note"],
                              author_id=None, now=NOW)
    app.label_conversation(workspace_id, conversation_id, texts["label"], None, NOW)
    app.rectify_contact(workspace_id, person.contact_id, {"name": texts["renamed"]}, None, NOW)
    app.book_appointment(workspace_id, uuid.uuid4(), Booking(
        contact_id=person.contact_id, service=texts["service"], notes=texts["appointment_note"],
        starts_at=NOW + timedelta(days=2), ends_at=NOW + timedelta(days=2, hours=1), time_zone="Europe/London",
    ), actor_id=None, now=NOW)
    app.restrict_processing(workspace_id, person.contact_id, texts["reason"], None, NOW)
    app.lift_restriction(workspace_id, person.contact_id, None, NOW)
    return RichPerson(person, conversation_id, queued_message_id, file_id, attachment, list(texts.values()))
