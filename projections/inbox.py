"""The inbox: one row per conversation with status, assignee, unread count and a preview.

Built for tens of thousands of open conversations: the list is read by keyset pagination on
(last_activity, conversation_id) over indexes that match each filter.
"""

from __future__ import annotations

from typing import Any

from domain.contact import Contact
from domain.conversation import Conversation
from domain.email import strip_quoted
from domain.privacy import RetentionPolicy
from domain.voice import CallLogged
from projections.base import View, clear

PREVIEW_LENGTH = 140
CALL_PREVIEWS = {"started": "Incoming call", "answered": "Call answered", "missed": "Missed call",
                 "voicemail": "Voicemail", "transcription": "Voicemail transcription"}

DDL = """
CREATE TABLE IF NOT EXISTS commhub_inbox (
    conversation_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel text NOT NULL,
    status text NOT NULL DEFAULT 'open',
    assignee_id uuid,
    labels text[] NOT NULL DEFAULT '{}',
    unread integer NOT NULL DEFAULT 0,
    snoozed_until timestamptz,
    last_activity timestamptz NOT NULL,
    last_direction text,
    preview text,
    message_count integer NOT NULL DEFAULT 0,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_inbox_all ON commhub_inbox (workspace_id, last_activity DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS commhub_inbox_status ON commhub_inbox (workspace_id, status, last_activity DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS commhub_inbox_assignee ON commhub_inbox (workspace_id, assignee_id, status, last_activity DESC, conversation_id DESC);
CREATE INDEX IF NOT EXISTS commhub_inbox_contact ON commhub_inbox (contact_id);
CREATE INDEX IF NOT EXISTS commhub_inbox_labels ON commhub_inbox USING gin (labels);
"""


def preview(body: Any) -> str | None:
    text = clear(body)
    if not isinstance(text, str):
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


class Inbox(View):
    name = "inbox"
    ddl = DDL
    tables = ("commhub_inbox",)
    handlers = {
        Conversation.Started: "started",
        Conversation.MessageReceived: "received",
        Conversation.MessageSent: "sent",
        Conversation.MessageRefused: "refused",
        Conversation.Assigned: "assigned",
        Conversation.Closed: "closed",
        Conversation.Reopened: "reopened",
        Conversation.Labelled: "labelled",
        Conversation.Unlabelled: "unlabelled",
        Conversation.Snoozed: "snoozed",
        Conversation.Read: "read",
        CallLogged: "call",
        Contact.Erased: "erased",
        RetentionPolicy.BodiesExpired: "expired",
    }

    def started(self, conn: Any, e: Conversation.Started, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_inbox (conversation_id, workspace_id, contact_id, channel, last_activity, position)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.workspace_id, e.contact_id, e.channel, e.timestamp, position),
        )

    def received(self, conn: Any, e: Conversation.MessageReceived, position: int) -> None:
        self._set(conn, e, position, "status = 'open', snoozed_until = NULL, unread = unread + 1,"
                  " last_activity = %s, last_direction = 'in', preview = %s, message_count = message_count + 1",
                  e.timestamp, preview(strip_quoted(e.body) if isinstance(e.body, str) else e.body))

    def sent(self, conn: Any, e: Conversation.MessageSent, position: int) -> None:
        self._set(conn, e, position, "unread = 0, last_activity = %s, last_direction = 'out', preview = %s,"
                  " message_count = message_count + 1", e.timestamp, preview(e.body))

    def refused(self, conn: Any, e: Conversation.MessageRefused, position: int) -> None:
        self._set(conn, e, position, "last_activity = %s", e.timestamp)

    def call(self, conn: Any, e: CallLogged, position: int) -> None:
        wakes = e.kind in ("missed", "voicemail")
        text = preview(e.body) or CALL_PREVIEWS.get(e.kind)
        self._set(conn, e, position, "last_activity = %s, last_direction = 'in', preview = %s,"
                  " message_count = message_count + 1, unread = unread + %s"
                  + (", status = 'open', snoozed_until = NULL" if wakes else ""), e.timestamp, text, int(wakes))

    def assigned(self, conn: Any, e: Conversation.Assigned, position: int) -> None:
        self._set(conn, e, position, "assignee_id = %s", e.assignee_id)

    def closed(self, conn: Any, e: Any, position: int) -> None:
        self._set(conn, e, position, "status = 'closed'")

    def reopened(self, conn: Any, e: Any, position: int) -> None:
        self._set(conn, e, position, "status = 'open'")

    def labelled(self, conn: Any, e: Conversation.Labelled, position: int) -> None:
        label = clear(e.label)
        if label is not None:
            self._set(conn, e, position, "labels = array_append(array_remove(labels, %s), %s)", label, label)

    def unlabelled(self, conn: Any, e: Conversation.Unlabelled, position: int) -> None:
        label = clear(e.label)
        if label is not None:
            self._set(conn, e, position, "labels = array_remove(labels, %s)", label)

    def snoozed(self, conn: Any, e: Conversation.Snoozed, position: int) -> None:
        self._set(conn, e, position, "snoozed_until = %s", e.until)

    def read(self, conn: Any, e: Any, position: int) -> None:
        self._set(conn, e, position, "unread = 0")

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("UPDATE commhub_inbox SET preview = NULL, labels = '{}' WHERE contact_id = ANY(%s)",
                     (list(e.subject_ids),))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        conn.execute("UPDATE commhub_inbox SET preview = NULL WHERE workspace_id = %s AND last_activity < %s"
                     " AND preview IS NOT NULL", (e.workspace_id, e.before))

    @staticmethod
    def _set(conn: Any, e: Any, position: int, assignment: str, *values: Any) -> None:
        conn.execute(
            f"UPDATE commhub_inbox SET {assignment}, position = %s WHERE conversation_id = %s AND position < %s",
            (*values, position, e.originator_id, position),
        )
