"""Email: inbound addresses routed to workspaces, email headers kept beside messages, and the pure
rules of the channel (reply subjects, quoted-reply stripping, auto-reply detection)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain import identifiers
from domain.consent import SendDecision, may_send
from domain.conversation import Conversation, InboundReceipt, check_body
from domain.errors import ChannelInvalidError, InboundAddressTakenError
from domain.identifiers import Channel

INBOUND_ADDRESS_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/inbound-email-address")
MAX_SUBJECT = 500
MAX_REFERENCES = 20


def normalised_address(address: str) -> str:
    """Addresses route case-insensitively (``Support@Clinic.example`` = ``support@clinic.example``)."""
    return address.strip().lower()


class InboundAddress(Aggregate):
    """Reserves an inbound email address for one workspace; its id derives from the address, so a
    second workspace cannot take it (the save fails atomically)."""

    class Attached(Aggregate.Created):
        workspace_id: UUID

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id

    @staticmethod
    def id_for(address: str) -> UUID:
        return uuid5(INBOUND_ADDRESS_NAMESPACE, normalised_address(address))

    @classmethod
    def attach(cls, address: str, workspace_id: UUID, now: datetime) -> InboundAddress:
        return cls._create(cls.Attached, id=cls.id_for(address), workspace_id=workspace_id, timestamp=now)


class EmailReceived(Conversation.Event):
    """The email headers of an inbound message, saved together with its ``MessageReceived``."""

    message_id: UUID
    subject: str
    rfc_message_id: str
    references: list[str]  # In-Reply-To and References, oldest first
    auto_reply: bool
    personal: ClassVar[dict[str, str]] = {
        "subject": "contact_id", "rfc_message_id": "contact_id", "references": "contact_id",
    }


class EmailComposed(Conversation.Event):
    """The subject and attachments of an outbound email, saved just before its ``MessageSent``."""

    message_id: UUID
    subject: str
    attachments: list[dict[str, Any]]  # attachment_id, filename, content_type, size
    personal: ClassVar[dict[str, str]] = {"subject": "contact_id", "attachments": "contact_id"}


# Pure rules -----------------------------------------------------------------------------------

_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fwd?)\s*:\s*)+", re.IGNORECASE)
_ATTRIBUTION = re.compile(r"^\s*(on\s.+wrote:|le\s.+a écrit\s?:|am\s.+schrieb.*:|-----\s*original message\s*-----)\s*$",
                          re.IGNORECASE)


def reply_subject(original: str | None, fallback: str) -> str:
    """``Re: <original>`` without piling up prefixes; ``fallback`` when there is no original."""
    if not original or not original.strip():
        return fallback
    return "Re: " + _REPLY_PREFIX.sub("", original.strip())


def strip_quoted(text: str) -> str:
    """The new part of a reply: quoted lines (``>``) and everything from an attribution line
    ("On … wrote:", "-----Original Message-----") on are dropped. Text that is all quote stays."""
    kept: list[str] = []
    for line in text.splitlines():
        if _ATTRIBUTION.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    stripped = "\n".join(kept).strip()
    return stripped or text


def is_auto_reply(headers: Mapping[str, str]) -> bool:
    """RFC 3834 and the common vendor markers: such mail is stored, never answered automatically."""
    lowered = {k.lower(): (v or "").strip().lower() for k, v in headers.items()}
    if lowered.get("auto-submitted", "no") not in ("", "no"):
        return True
    if lowered.get("precedence") in ("bulk", "auto_reply", "junk", "list"):
        return True
    return any(name in lowered for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"))


def thread_ids(in_reply_to: str | None, references: list[str]) -> list[str]:
    """The message ids a reply points at, oldest first, without repeats, at most ``MAX_REFERENCES``."""
    ordered: list[str] = []
    for value in [*references, *([in_reply_to] if in_reply_to else [])]:
        if value and value not in ordered:
            ordered.append(value)
    return ordered[-MAX_REFERENCES:]


# Commands ---------------------------------------------------------------------------------------


class EmailCommands:
    """Email commands of ``CommHub`` (a mixin: it uses the application's ``_get``, ``save`` and helpers)."""

    _get: Any
    save: Any
    _retrying: Any
    _conversation_for: Any
    _inbound_conversation: Any
    recent: Any
    get_contact: Any
    get_conversation: Any
    get_workspace: Any
    consent_subject_of: Any

    def attach_inbound_address(self, workspace_id: UUID, address: str, now: datetime) -> UUID:
        """Route mail for ``address`` to the workspace; attaching it again to the same workspace is a no-op."""
        self.get_workspace(workspace_id)
        checked = identifiers.email(normalised_address(address))
        existing = self.workspace_for_inbound_address(checked)
        if existing == workspace_id:
            return InboundAddress.id_for(checked)
        if existing is not None:
            raise InboundAddressTakenError("another workspace already receives mail at this address")
        try:
            self.save(InboundAddress.attach(checked, workspace_id, now))
        except IntegrityError:
            if self.workspace_for_inbound_address(checked) != workspace_id:
                raise InboundAddressTakenError("another workspace already receives mail at this address") from None
        return InboundAddress.id_for(checked)

    def workspace_for_inbound_address(self, address: str) -> UUID | None:
        reservation = self._get(InboundAddress.id_for(address), InboundAddress)
        return None if reservation is None else reservation.workspace_id

    def inbound_receipt(self, workspace_id: UUID, provider_message_id: str) -> InboundReceipt | None:
        return self._get(InboundReceipt.id_for(workspace_id, Channel.EMAIL.value, provider_message_id), InboundReceipt)

    def receive_email(
        self, *, workspace_id: UUID, contact_id: UUID, body: str, attachments: list[dict[str, Any]],
        provider_message_id: str, subject: str, rfc_message_id: str, references: list[str], auto_reply: bool,
        thread: str, now: datetime, message_id: UUID | None = None,
    ) -> tuple[UUID, UUID, bool]:
        """Store an inbound email with its headers and receipt in one save; a repeated
        ``provider_message_id`` stores nothing and returns the first message's ids."""
        self.get_contact(workspace_id, contact_id)
        message_id = message_id or uuid4()
        channel = Channel.EMAIL.value

        def attempt() -> tuple[UUID, UUID, bool]:
            receipt = self.inbound_receipt(workspace_id, provider_message_id)
            if receipt is not None:
                return receipt.conversation_id, receipt.message_id, False
            conversation, loan = self._inbound_conversation(workspace_id, contact_id, channel, thread, now)
            conversation.receive(message_id, body, attachments, provider_message_id, now)
            conversation.trigger_event(
                EmailReceived, workspace_id=workspace_id, contact_id=contact_id, message_id=message_id,
                subject=subject[:MAX_SUBJECT], rfc_message_id=rfc_message_id, references=references[-MAX_REFERENCES:],
                auto_reply=auto_reply, timestamp=now,
            )
            receipt = InboundReceipt.record(
                workspace_id=workspace_id, channel=channel, provider_message_id=provider_message_id,
                message_id=message_id, conversation_id=conversation.id, now=now,
            )
            self.save(conversation, receipt)
            self.recent.keep(conversation, loan)
            return conversation.id, message_id, True

        return self._retrying(attempt)

    def compose_email(
        self, workspace_id: UUID, conversation_id: UUID, *, body: str, subject: str | None,
        attachments: list[dict[str, Any]], author_id: UUID | None, purpose: str, now: datetime,
        message_id: UUID | None = None,
    ) -> tuple[UUID, SendDecision]:
        """Queue an email with its own subject and attachments, or record why it may not be sent."""
        message_id = message_id or uuid4()
        check_body(body)
        checked_purpose = identifiers.purpose(purpose)

        def attempt() -> tuple[UUID, SendDecision]:
            conversation = self.get_conversation(workspace_id, conversation_id)
            if conversation.channel != Channel.EMAIL.value:
                raise ChannelInvalidError("this conversation is not on the email channel")
            contact = self.get_contact(workspace_id, conversation.contact_id)
            decision = may_send(self.consent_subject_of(contact, checked_purpose), Channel(conversation.channel),
                                checked_purpose, now)
            if decision.allowed:
                conversation.trigger_event(
                    EmailComposed, workspace_id=workspace_id, contact_id=conversation.contact_id,
                    message_id=message_id, subject=(subject or "").strip()[:MAX_SUBJECT],
                    attachments=attachments, timestamp=now,
                )
                conversation.send(message_id, body, author_id, purpose, now)
            else:
                conversation.refuse(message_id, body if not contact.erased else "", author_id, purpose,
                                    str(decision.reason), now)
            self.save(conversation)
            return message_id, decision

        return self._retrying(attempt)

