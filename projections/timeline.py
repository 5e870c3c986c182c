"""Contact timelines: every message, note, consent change and privacy event for a contact, in order.

``detail`` may hold personal data (note text, message preview, tag); it is set to NULL when the
contact is erased, while the kind and time of each entry stay.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from domain.appointment import Appointment
from domain.contact import Contact
from domain.conversation import Conversation
from domain.privacy import RetentionPolicy
from domain.voice import CallLogged
from projections.base import View, clear
from projections.inbox import preview

DDL = """
CREATE TABLE IF NOT EXISTS commhub_timeline (
    contact_id uuid NOT NULL,
    position bigint NOT NULL,
    workspace_id uuid NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    actor_id uuid,
    conversation_id uuid,
    detail jsonb,
    PRIMARY KEY (contact_id, position)
);
"""

KINDS: dict[type, str] = {
    Contact.Created: "contact.created",
    Contact.Rectified: "contact.rectified",
    Contact.Tagged: "contact.tagged",
    Contact.Untagged: "contact.untagged",
    Contact.NoteAdded: "contact.note",
    Contact.ConsentGranted: "consent.granted",
    Contact.ConsentWithdrawn: "consent.withdrawn",
    Contact.ProcessingRestricted: "privacy.restricted",
    Contact.RestrictionLifted: "privacy.restriction_lifted",
    Contact.MarketingObjected: "privacy.objected",
    Contact.ObjectionWithdrawn: "privacy.objection_withdrawn",
    Contact.Merged: "contact.merged",
    Contact.MergedInto: "contact.merged_into",
    Contact.LegalHoldPlaced: "privacy.legal_hold_placed",
    Contact.LegalHoldLifted: "privacy.legal_hold_lifted",
    Contact.Erased: "privacy.erased",
    Conversation.MessageReceived: "message.received",
    Conversation.MessageSent: "message.sent",
    Conversation.MessageRefused: "message.refused",
    Conversation.NoteAdded: "conversation.note",
    Appointment.Booked: "appointment.booked",
    Appointment.Rescheduled: "appointment.rescheduled",
    Appointment.Cancelled: "appointment.cancelled",
    Appointment.Confirmed: "appointment.confirmed",
    Appointment.CheckedIn: "appointment.checked_in",
    Appointment.Completed: "appointment.completed",
    Appointment.MarkedNoShow: "appointment.no_show",
    Appointment.ReminderSent: "appointment.reminder_sent",
    Appointment.ReminderSkipped: "appointment.reminder_skipped",
    Appointment.WrittenBack: "appointment.written_back",
    Appointment.WriteBackFailed: "appointment.write_back_failed",
    CallLogged: "call",
}


def detail(e: Any) -> dict[str, Any] | None:
    kind = type(e)
    if kind is Contact.Rectified:
        return {"fields": sorted(clear(e.changes) or [])} if clear(e.changes) is not None else None
    if kind in (Conversation.Labelled, Conversation.Unlabelled):
        return {"label": clear(e.label)}
    if kind in (Contact.Tagged, Contact.Untagged):
        return {"tag": clear(e.tag)}
    if kind is Contact.NoteAdded:
        return {"note_id": str(e.note_id), "text": clear(e.text)}
    if kind in (Contact.ConsentGranted, Contact.ConsentWithdrawn):
        return {"channel": e.channel, "purpose": e.purpose, "source": clear(e.source), "wording": clear(e.wording)}
    if kind is Contact.ProcessingRestricted:
        return {"reason": clear(e.reason)}
    if kind is Contact.Merged:
        return {"duplicate_id": str(e.duplicate_id)}
    if kind is Contact.MergedInto:
        return {"survivor_id": str(e.survivor_id)}
    if kind is Contact.LegalHoldPlaced:
        return {"reference": clear(e.reference)}
    if kind is Contact.Erased:
        return {"request_id": str(e.request_id)}
    if kind in (Conversation.MessageReceived, Conversation.MessageSent):
        return {"message_id": str(e.message_id), "preview": preview(e.body)}
    if kind is Conversation.MessageRefused:
        return {"message_id": str(e.message_id), "reason": e.reason}
    if kind is CallLogged:
        return {"message_id": str(e.message_id), "call": e.kind, "duration": e.duration, "preview": preview(e.body)}
    if kind is Conversation.NoteAdded:
        return {"note_id": str(e.note_id), "preview": preview(e.text)}
    if isinstance(e, (Appointment.Event, Appointment.Booked)):
        return appointment_detail(e)
    return None


def appointment_detail(e: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"appointment_id": str(e.originator_id)}
    for field in ("starts_at", "time_zone", "location", "via", "channel", "reason", "planned_at", "status",
                  "fhir_status", "http_status"):
        if field in e.__dict__:
            value = clear(e.__dict__[field])
            info[field] = value.isoformat() if hasattr(value, "isoformat") else value
    if isinstance(e, Appointment.Booked):
        info["service"] = clear(e.service)
    return info


class Timeline(View):
    name = "timeline"
    ddl = DDL
    tables = ("commhub_timeline",)
    handlers = {**{kind: "entry" for kind in KINDS}, RetentionPolicy.BodiesExpired: "expired"}

    def entry(self, conn: Any, e: Any, position: int) -> None:
        is_conversation = isinstance(e, Conversation.Event)
        contact_id = getattr(e, "contact_id", e.originator_id)
        actor = getattr(e, "actor_id", None) or getattr(e, "author_id", None)
        info = detail(e)
        conn.execute(
            "INSERT INTO commhub_timeline VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (contact_id, position, e.workspace_id, KINDS[type(e)], e.timestamp, actor,
             e.originator_id if is_conversation else None, Jsonb(info) if info is not None else None),
        )
        if type(e) is Contact.Erased:
            conn.execute("UPDATE commhub_timeline SET detail = NULL WHERE contact_id = ANY(%s) AND kind <> 'privacy.erased'",
                         (list(e.subject_ids),))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        """Message previews older than the expiry go; the entries themselves stay."""
        conn.execute(
            "UPDATE commhub_timeline SET detail = detail - 'preview' WHERE workspace_id = %s AND at < %s"
            " AND kind IN ('message.received', 'message.sent') AND detail ? 'preview'",
            (e.workspace_id, e.before),
        )
