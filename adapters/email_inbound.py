"""Inbound email, whichever way it arrives (signed webhook or the built-in SMTP listener):
route to a workspace by recipient, find the contact by sender, thread the conversation, store
attachments sealed, and turn bounces into delivery failures instead of messages."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid5

from adapters.email_parse import ParsedEmail, parse_email
from adapters.identifiers import normalise_email
from adapters.postgres import Database
from adapters.sealed_files import SealedFiles
from domain.application import CommHub
from domain.conversation import InboundReceipt
from domain.email import thread_ids
from domain.errors import ConversationNotFoundError, EmailNotRoutedError
from domain.identifiers import Channel

log = logging.getLogger(__name__)

OUR_MESSAGE_ID = re.compile(r"^<([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@[^>]+>$")


@dataclass(frozen=True)
class InboundOutcome:
    """What became of one delivery: ``stored``, ``duplicate``, ``bounce`` or ``ignored``."""

    outcome: str
    workspace_id: UUID | None = None
    conversation_id: UUID | None = None
    message_id: UUID | None = None

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, **{k: str(v) for k, v in (
            ("conversation_id", self.conversation_id), ("message_id", self.message_id)) if v is not None}}


def provider_id(parsed: ParsedEmail, raw: bytes) -> str:
    """The idempotency key: a digest of the Message-ID (or of the whole message when it has none)."""
    basis = parsed.message_id.encode() if parsed.message_id else b"raw:" + raw
    return "sha256:" + hashlib.sha256(basis).hexdigest()


def our_message_id(rfc_message_id: str) -> UUID | None:
    match = OUR_MESSAGE_ID.match(rfc_message_id.strip().lower())
    return UUID(match.group(1)) if match else None


class InboundEmail:
    def __init__(
        self, app: CommHub, database: Database, files: SealedFiles,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.files = files
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def workspaces_for(self, recipients: list[str]) -> list[UUID]:
        found: list[UUID] = []
        for address in recipients:
            workspace_id = self.app.workspace_for_inbound_address(address)
            if workspace_id is not None and workspace_id not in found:
                found.append(workspace_id)
        return found

    def handle(self, raw: bytes, envelope_recipients: list[str] | None = None) -> list[InboundOutcome]:
        """Store one raw message; recipients come from the SMTP envelope when there is one, else the headers."""
        parsed = parse_email(raw)
        if parsed.bounce is not None:
            return [self._bounce(parsed)]
        workspaces = self.workspaces_for(envelope_recipients or parsed.recipients)
        if not workspaces:
            raise EmailNotRoutedError("no workspace receives mail at the recipient address; attach it first")
        return [self._store(workspace_id, parsed, raw) for workspace_id in workspaces]

    def _store(self, workspace_id: UUID, parsed: ParsedEmail, raw: bytes) -> InboundOutcome:
        now = self.clock()
        key = provider_id(parsed, raw)
        receipt = self.app.inbound_receipt(workspace_id, key)
        if receipt is not None:  # a retried delivery: nothing to do, not even the attachments
            return InboundOutcome("duplicate", workspace_id, receipt.conversation_id, receipt.message_id)
        contact_id = self.app.find_or_create_contact(
            workspace_id, kind="email", value=normalise_email(parsed.sender), name=parsed.sender_name, now=now)
        references = thread_ids(parsed.in_reply_to, parsed.references)
        receipt_id = InboundReceipt.id_for(workspace_id, Channel.EMAIL.value, key)
        attachments = []
        for index, attachment in enumerate(parsed.attachments):
            file_id = uuid5(receipt_id, str(index))  # the same on a retry: stored once
            self.files.put(file_id, workspace_id, contact_id, attachment.content_type, attachment.data)
            attachments.append({"attachment_id": str(file_id), "filename": attachment.filename,
                                "content_type": attachment.content_type, "size": len(attachment.data)})
        conversation_id, message_id, new = self.app.receive_email(
            workspace_id=workspace_id, contact_id=contact_id, body=parsed.text, attachments=attachments,
            provider_message_id=key, subject=parsed.subject, rfc_message_id=parsed.message_id or "",
            references=references, auto_reply=parsed.auto_reply,
            thread=self._thread(workspace_id, contact_id, references), now=now,
        )
        return InboundOutcome("stored" if new else "duplicate", workspace_id, conversation_id, message_id)

    def _thread(self, workspace_id: UUID, contact_id: UUID, references: list[str]) -> str:
        """The thread of the newest referenced message that belongs to this contact, else the
        contact's usual email conversation (threading by sender)."""
        for reference in reversed(references):
            conversation_id = self._conversation_of(workspace_id, reference)
            if conversation_id is None:
                continue
            try:
                conversation = self.app.get_conversation(workspace_id, conversation_id)
            except ConversationNotFoundError:
                continue
            if conversation.contact_id == contact_id and conversation.channel == Channel.EMAIL.value:
                return conversation.thread
        return "default"

    def _conversation_of(self, workspace_id: UUID, rfc_message_id: str) -> UUID | None:
        ours = our_message_id(rfc_message_id)
        if ours is not None:
            with self.database.connection() as conn:
                row = conn.execute(
                    "SELECT conversation_id FROM commhub_messages WHERE message_id = %s AND workspace_id = %s",
                    (ours, workspace_id),
                ).fetchone()
            if row is not None:
                return row[0]
        digest = "sha256:" + hashlib.sha256(rfc_message_id.encode()).hexdigest()
        receipt = self.app.inbound_receipt(workspace_id, digest)
        return None if receipt is None else receipt.conversation_id

    def _bounce(self, parsed: ParsedEmail) -> InboundOutcome:
        """A failed delivery report marks our original message failed; nothing else is stored."""
        assert parsed.bounce is not None
        if not parsed.bounce.failed:
            return InboundOutcome("ignored")  # "delayed" or "relayed": not a failure yet
        for original in parsed.bounce.original_message_ids:
            message_id = our_message_id(original)
            if message_id is None:
                continue
            with self.database.connection() as conn:
                row = conn.execute(
                    "SELECT workspace_id, conversation_id FROM commhub_messages WHERE message_id = %s AND kind = 'out'",
                    (message_id,),
                ).fetchone()
            if row is None:
                continue
            status = (parsed.bounce.status or "5.0.0")[:16]
            self.app.record_delivery(row[0], row[1], message_id, "failed", f"bounced_{status}", self.clock())
            return InboundOutcome("bounce", row[0], row[1], message_id)
        log.info("bounce for an unknown message ignored")
        return InboundOutcome("ignored")
