"""Conversations: one thread per contact and channel, holding messages, notes and its inbox state."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import ConversationClosedError, LabelInvalidError, MessageBodyInvalidError, SnoozeTimeInvalidError
from domain.personal import is_erased

CONVERSATION_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/conversation")
RECEIPT_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/inbound-receipt")
MAX_BODY = 20_000
DELIVERY_STATUSES = ("queued", "sent", "delivered", "undelivered", "failed", "captured", "cancelled", "read")
FINAL_STATUSES = ("delivered", "undelivered", "failed", "captured", "cancelled", "read")


def conversation_id_for(contact_id: UUID, channel: str, thread: str = "default") -> UUID:
    """Conversation ids derive from ids only (never from personal data), so a thread has one id."""
    return uuid5(CONVERSATION_NAMESPACE, f"{contact_id}/{channel}/{thread}")


def check_body(body: str) -> str:
    if not isinstance(body, str) or not body.strip():
        raise MessageBodyInvalidError("message body must not be empty")
    if len(body) > MAX_BODY:
        raise MessageBodyInvalidError(f"message body must be at most {MAX_BODY} characters")
    return body


def check_label(label: str) -> str:
    label = label.strip() if isinstance(label, str) else ""
    if not label or len(label) > 40:
        raise LabelInvalidError("label must be 1-40 characters")
    return label


class Conversation(Aggregate):
    """A thread with one contact on one channel; message bodies are sealed under the contact's key."""

    personal_state: ClassVar[tuple[str, ...]] = ("labels", "social_recipient")
    personal_subject: ClassVar[str] = "contact_id"  # snapshots seal labels under the contact's key

    class Event(Aggregate.Event):
        workspace_id: UUID
        contact_id: UUID

    class Started(Aggregate.Created):
        workspace_id: UUID
        contact_id: UUID
        channel: str
        thread: str

    class MessageReceived(Event):
        message_id: UUID
        body: str
        attachments: list[dict[str, Any]]
        provider_message_id: str | None
        personal: ClassVar[dict[str, str]] = {"body": "contact_id", "attachments": "contact_id"}

        def apply(self, conversation: Conversation) -> None:
            conversation.status = "open"
            conversation.snoozed_until = None
            conversation.unread += 1
            conversation.last_activity = self.timestamp

    class MessageSent(Event):
        """An outbound message was queued for delivery (the outbox delivers it)."""

        message_id: UUID
        channel: str
        body: str
        author_id: UUID | None
        purpose: str
        personal: ClassVar[dict[str, str]] = {"body": "contact_id"}

        def apply(self, conversation: Conversation) -> None:
            conversation.unread = 0
            conversation.last_activity = self.timestamp
            conversation.outbound[str(self.message_id)] = "queued"

    class MessageRefused(Event):
        """An outbound message was not sent: consent, restriction or erasure forbade it."""

        message_id: UUID
        body: str
        author_id: UUID | None
        purpose: str
        reason: str
        personal: ClassVar[dict[str, str]] = {"body": "contact_id"}

        def apply(self, conversation: Conversation) -> None:
            conversation.last_activity = self.timestamp

    class MessageDeliveryUpdated(Event):
        message_id: UUID
        status: str
        error_code: str | None

        def apply(self, conversation: Conversation) -> None:
            if self.status in FINAL_STATUSES:
                conversation.outbound.pop(str(self.message_id), None)
            else:
                conversation.outbound[str(self.message_id)] = self.status

    class Assigned(Event):
        assignee_id: UUID | None
        actor_id: UUID | None

        def apply(self, conversation: Conversation) -> None:
            conversation.assignee_id = self.assignee_id

    class Closed(Event):
        actor_id: UUID | None

        def apply(self, conversation: Conversation) -> None:
            conversation.status = "closed"

    class Reopened(Event):
        actor_id: UUID | None

        def apply(self, conversation: Conversation) -> None:
            conversation.status = "open"

    class Labelled(Event):
        """Labels are free text about one person ("diabetes", "IVF"): sealed like other personal data."""

        label: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"label": "contact_id"}

        def apply(self, conversation: Conversation) -> None:
            labels = conversation.current_labels
            if not is_erased(self.label) and self.label not in labels:
                labels.append(self.label)

    class Unlabelled(Event):
        label: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"label": "contact_id"}

        def apply(self, conversation: Conversation) -> None:
            labels = conversation.current_labels
            if self.label in labels:
                labels.remove(self.label)

    class Snoozed(Event):
        until: datetime
        actor_id: UUID | None

        def apply(self, conversation: Conversation) -> None:
            conversation.snoozed_until = self.until

    class NoteAdded(Event):
        """An internal note: visible to staff only, never sent."""

        note_id: UUID
        text: str
        author_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"text": "contact_id"}

    class Read(Event):
        reader_id: UUID | None

        def apply(self, conversation: Conversation) -> None:
            conversation.unread = 0

    def __init__(self, workspace_id: UUID, contact_id: UUID, channel: str, thread: str) -> None:
        self.workspace_id = workspace_id
        self.contact_id = contact_id
        self.channel = channel
        self.thread = thread
        self.status = "open"
        self.assignee_id: UUID | None = None
        self.labels: list[str] = []
        self.snoozed_until: datetime | None = None
        self.unread = 0
        self.last_activity: datetime | None = None
        self.outbound: dict[str, str] = {}  # message id → status, while delivery is still pending

    @classmethod
    def start(cls, *, workspace_id: UUID, contact_id: UUID, channel: str, thread: str, now: datetime) -> Conversation:
        return cls._create(
            cls.Started, id=conversation_id_for(contact_id, channel, thread), workspace_id=workspace_id,
            contact_id=contact_id, channel=channel, thread=thread, timestamp=now,
        )

    def receive(
        self, message_id: UUID, body: str, attachments: list[dict[str, Any]], provider_message_id: str | None,
        now: datetime,
    ) -> None:
        self._trigger(self.MessageReceived, message_id=message_id, body=body, attachments=attachments,
                      provider_message_id=provider_message_id, timestamp=now)

    def send(self, message_id: UUID, body: str, author_id: UUID | None, purpose: str, now: datetime) -> None:
        self._trigger(self.MessageSent, message_id=message_id, channel=self.channel, body=check_body(body),
                      author_id=author_id,
                      purpose=purpose, timestamp=now)

    def refuse(self, message_id: UUID, body: str, author_id: UUID | None, purpose: str, reason: str, now: datetime) -> None:
        self._trigger(self.MessageRefused, message_id=message_id, body=body, author_id=author_id, purpose=purpose,
                      reason=reason, timestamp=now)

    def update_delivery(self, message_id: UUID, status: str, error_code: str | None, now: datetime) -> bool:
        """Record a delivery status once; repeats and unknown messages are ignored (webhooks retry)."""
        current = self.outbound.get(str(message_id))
        if current is None or current == status or status not in DELIVERY_STATUSES:
            return False
        if status == "queued" and current == "sent":  # a late callback never moves a status back
            return False
        self._trigger(self.MessageDeliveryUpdated, message_id=message_id, status=status, error_code=error_code,
                      timestamp=now)
        return True

    def assign(self, assignee_id: UUID | None, actor_id: UUID | None, now: datetime) -> None:
        if assignee_id != self.assignee_id:
            self._trigger(self.Assigned, assignee_id=assignee_id, actor_id=actor_id, timestamp=now)

    def close(self, actor_id: UUID | None, now: datetime) -> None:
        if self.status != "closed":
            self._trigger(self.Closed, actor_id=actor_id, timestamp=now)

    def reopen(self, actor_id: UUID | None, now: datetime) -> None:
        if self.status != "open":
            self._trigger(self.Reopened, actor_id=actor_id, timestamp=now)

    @property
    def current_labels(self) -> list[str]:
        """The labels, as a list even when a snapshot of an erased contact's conversation left them erased."""
        if is_erased(self.labels):
            self.labels = []
        return self.labels

    def label(self, label: str, actor_id: UUID | None, now: datetime) -> None:
        label = check_label(label)
        if label not in self.current_labels:
            self._trigger(self.Labelled, label=label, actor_id=actor_id, timestamp=now)

    def unlabel(self, label: str, actor_id: UUID | None, now: datetime) -> None:
        if label in self.current_labels:
            self._trigger(self.Unlabelled, label=label, actor_id=actor_id, timestamp=now)

    def snooze(self, until: datetime, actor_id: UUID | None, now: datetime) -> None:
        if until.tzinfo is None:
            raise SnoozeTimeInvalidError("until must include a time zone offset")
        if self.status == "closed":
            raise ConversationClosedError("a closed conversation cannot be snoozed")
        self._trigger(self.Snoozed, until=until, actor_id=actor_id, timestamp=now)

    def add_note(self, note_id: UUID, text: str, author_id: UUID | None, now: datetime) -> None:
        self._trigger(self.NoteAdded, note_id=note_id, text=check_body(text), author_id=author_id, timestamp=now)

    def mark_read(self, reader_id: UUID | None, now: datetime) -> None:
        if self.unread:
            self._trigger(self.Read, reader_id=reader_id, timestamp=now)

    def _trigger(self, event_class: type[Aggregate.Event], **kwargs: Any) -> None:
        self.trigger_event(event_class, workspace_id=self.workspace_id, contact_id=self.contact_id, **kwargs)


class InboundReceipt(Aggregate):
    """Proof that a provider message was stored; its id derives from the provider's message id,
    so saving it with the message makes a retried webhook fail atomically instead of duplicating."""

    class Recorded(Aggregate.Created):
        workspace_id: UUID
        message_id: UUID
        conversation_id: UUID

    def __init__(self, workspace_id: UUID, message_id: UUID, conversation_id: UUID) -> None:
        self.workspace_id = workspace_id
        self.message_id = message_id
        self.conversation_id = conversation_id

    @staticmethod
    def id_for(workspace_id: UUID, channel: str, provider_message_id: str) -> UUID:
        return uuid5(RECEIPT_NAMESPACE, f"{workspace_id}/{channel}/{provider_message_id}")

    @classmethod
    def record(
        cls, *, workspace_id: UUID, channel: str, provider_message_id: str, message_id: UUID,
        conversation_id: UUID, now: datetime,
    ) -> InboundReceipt:
        return cls._create(
            cls.Recorded, id=cls.id_for(workspace_id, channel, provider_message_id), workspace_id=workspace_id,
            message_id=message_id, conversation_id=conversation_id, timestamp=now,
        )
