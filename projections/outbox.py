"""The outbox: each queued outbound message waits here until a worker delivers it.

Rows hold the body (personal, keyed by the contact) until delivery; erasure cancels what is
still pending and blanks every body of that contact.
"""

from __future__ import annotations

from typing import Any

from domain.contact import Contact
from domain.conversation import Conversation
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_outbox (
    message_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel text NOT NULL,
    purpose text NOT NULL DEFAULT 'transactional',
    body text,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS commhub_outbox_due ON commhub_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS commhub_outbox_by_contact ON commhub_outbox (contact_id);
"""


class Outbox(View):
    name = "outbox"
    ddl = DDL
    tables = ("commhub_outbox",)
    handlers = {
        Conversation.MessageSent: "queued",
        Conversation.MessageDeliveryUpdated: "delivered",
        Contact.Erased: "erased",
    }

    def queued(self, conn: Any, e: Conversation.MessageSent, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_outbox (message_id, workspace_id, conversation_id, contact_id, channel, purpose, body,"
            " next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
            (e.message_id, e.workspace_id, e.originator_id, e.contact_id, e.channel, e.purpose, clear(e.body),
             e.timestamp, e.timestamp),
        )

    def delivered(self, conn: Any, e: Conversation.MessageDeliveryUpdated, position: int) -> None:
        """A recorded outcome ends the row: rebuilding the outbox never sends a message again."""
        status = {"failed": "failed", "cancelled": "cancelled"}.get(e.status, "sent")
        conn.execute(
            "UPDATE commhub_outbox SET status = %s, body = NULL, last_error = COALESCE(%s, last_error),"
            " finished_at = COALESCE(finished_at, %s) WHERE message_id = %s AND status = 'pending'",
            (status, e.error_code, e.timestamp, e.message_id),
        )

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute(
            "UPDATE commhub_outbox SET body = NULL, status = CASE WHEN status = 'pending' THEN 'cancelled'"
            " ELSE status END, finished_at = COALESCE(finished_at, %s) WHERE contact_id = ANY(%s)",
            (e.timestamp, list(e.subject_ids)),
        )
