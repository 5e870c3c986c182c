"""Email headers of each message (subject, Message-ID, references, auto-reply flag, attachments):
what threading a reply and showing an email need. Rows are keyed by the contact and blanked, and
their sealed attachment files deleted, when the contact is erased."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from domain.contact import Contact
from domain.email import EmailComposed, EmailReceived
from domain.privacy import RetentionPolicy
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_email_messages (
    message_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    direction text NOT NULL,
    subject text,
    rfc_message_id text,
    refs text[] NOT NULL DEFAULT '{}',
    auto_reply boolean NOT NULL DEFAULT false,
    attachments jsonb,
    at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_email_messages_by_conversation
    ON commhub_email_messages (conversation_id, direction, position);
CREATE INDEX IF NOT EXISTS commhub_email_messages_by_contact ON commhub_email_messages (contact_id);
"""


class EmailMessages(View):
    name = "email"
    ddl = DDL
    tables = ("commhub_email_messages",)
    handlers = {EmailReceived: "received", EmailComposed: "composed", Contact.Erased: "erased",
                RetentionPolicy.BodiesExpired: "expired"}

    def __init__(self, files_sql: str) -> None:
        self.ddl = DDL + files_sql  # type: ignore[misc]  # erasure deletes sealed files: their table must exist

    def received(self, conn: Any, e: EmailReceived, position: int) -> None:
        self._insert(conn, e, position, "in", clear(e.subject), clear(e.rfc_message_id), clear(e.references) or [],
                     e.auto_reply, None)

    def composed(self, conn: Any, e: EmailComposed, position: int) -> None:
        attachments = clear(e.attachments)
        self._insert(conn, e, position, "out", clear(e.subject), None, [], False,
                     Jsonb(attachments) if attachments else None)

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        subjects = list(e.subject_ids)
        conn.execute("UPDATE commhub_email_messages SET subject = NULL, rfc_message_id = NULL, refs = '{}',"
                     " attachments = NULL WHERE contact_id = ANY(%s)", (subjects,))
        conn.execute("DELETE FROM commhub_sealed_files WHERE subject_id = ANY(%s)", (subjects,))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        """Subjects and attachment lists go with the bodies a retention policy expires."""
        conn.execute("UPDATE commhub_email_messages SET subject = NULL, attachments = NULL"
                     " WHERE workspace_id = %s AND at < %s", (e.workspace_id, e.before))

    @staticmethod
    def _insert(conn: Any, e: Any, position: int, direction: str, subject: Any, rfc_message_id: Any, refs: Any,
                auto_reply: bool, attachments: Any) -> None:
        conn.execute(
            "INSERT INTO commhub_email_messages (message_id, workspace_id, conversation_id, contact_id, direction,"
            " subject, rfc_message_id, refs, auto_reply, attachments, at, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING",
            (e.message_id, e.workspace_id, e.originator_id, e.contact_id, direction, subject, rfc_message_id,
             list(refs), auto_reply, attachments, e.timestamp, position),
        )
