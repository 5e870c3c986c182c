"""Messages of each conversation, in order: inbound, outbound (with delivery status), refused
sends and internal notes. Bodies are blanked when the contact is erased."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from domain.contact import Contact
from domain.conversation import Conversation
from domain.privacy import RetentionPolicy
from domain.voice import CallLogged
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_messages (
    message_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    kind text NOT NULL,
    body text,
    attachments jsonb,
    author_id uuid,
    status text,
    error_code text,
    reason text,
    at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_messages_by_conversation ON commhub_messages (conversation_id, position);
CREATE INDEX IF NOT EXISTS commhub_messages_by_contact ON commhub_messages (contact_id);
"""


class Messages(View):
    name = "messages"
    ddl = DDL
    tables = ("commhub_messages",)
    handlers = {
        Conversation.MessageReceived: "received",
        Conversation.MessageSent: "sent",
        Conversation.MessageRefused: "refused",
        Conversation.NoteAdded: "note",
        Conversation.MessageDeliveryUpdated: "delivery",
        CallLogged: "call",
        Contact.Erased: "erased",
        RetentionPolicy.BodiesExpired: "expired",
    }

    def received(self, conn: Any, e: Conversation.MessageReceived, position: int) -> None:
        attachments = clear(e.attachments)
        self._insert(conn, e, position, e.message_id, "in", e.body, Jsonb(attachments) if attachments else None,
                     None, "received", None)

    def sent(self, conn: Any, e: Conversation.MessageSent, position: int) -> None:
        self._insert(conn, e, position, e.message_id, "out", e.body, None, e.author_id, "queued", None)

    def refused(self, conn: Any, e: Conversation.MessageRefused, position: int) -> None:
        self._insert(conn, e, position, e.message_id, "refused", e.body, None, e.author_id, "refused", e.reason)

    def note(self, conn: Any, e: Conversation.NoteAdded, position: int) -> None:
        self._insert(conn, e, position, e.note_id, "note", e.text, None, e.author_id, None, None)

    def call(self, conn: Any, e: CallLogged, position: int) -> None:
        """A call event shows in the voice thread; its status is the kind (missed, voicemail…)."""
        attachments = clear(e.attachments)
        self._insert(conn, e, position, e.message_id, "call", e.body, Jsonb(attachments) if attachments else None,
                     None, e.kind, None)

    def delivery(self, conn: Any, e: Conversation.MessageDeliveryUpdated, position: int) -> None:
        conn.execute("UPDATE commhub_messages SET status = %s, error_code = %s WHERE message_id = %s",
                     (e.status, e.error_code, e.message_id))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("UPDATE commhub_messages SET body = NULL, attachments = NULL WHERE contact_id = ANY(%s)",
                     (list(e.subject_ids),))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        conn.execute("UPDATE commhub_messages SET body = NULL, attachments = NULL WHERE workspace_id = %s AND at < %s"
                     " AND kind <> 'note' AND (body IS NOT NULL OR attachments IS NOT NULL)", (e.workspace_id, e.before))

    @staticmethod
    def _insert(conn: Any, e: Any, position: int, message_id: Any, kind: str, body: Any, attachments: Any,
                author_id: Any, status: str | None, reason: str | None) -> None:
        conn.execute(
            "INSERT INTO commhub_messages (message_id, workspace_id, conversation_id, contact_id, kind, body,"
            " attachments, author_id, status, reason, at, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
            (message_id, e.workspace_id, e.originator_id, e.contact_id, kind, clear(body), attachments, author_id,
             status, reason, e.timestamp, position),
        )
