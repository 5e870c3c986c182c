"""Social direct messages (Meta: Messenger, Instagram, WhatsApp): the pure rules and the events.

A social conversation is the contact's ``social`` conversation on the thread ``{platform}:{account}``
(the business's page, Instagram account or WhatsApp number: ids of the business, never of the
person). The person's own id on that platform (PSID, IGSID, wa_id) is personal: it is sealed in the
events that carry it and in snapshots of the conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.consent import Refusal
from domain.contact import Contact
from domain.conversation import Conversation
from domain.personal import SUBJECT

SOCIAL = "social"
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/meta-account")
SEND_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/social-send")
TEMPLATE_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/social-template")
ACCOUNT_ID = re.compile(r"^[0-9]{1,32}$")
TRACKED = 200  # outbound messages per conversation whose read/delivery state is remembered
RANK = {"sent": 1, "delivered": 2, "read": 3}


class Platform(StrEnum):
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    WHATSAPP = "whatsapp"


class Mode(StrEnum):
    """How a free-text message may go at a given moment."""

    RESPONSE = "RESPONSE"  # inside the 24-hour customer-service window
    HUMAN_AGENT = "HUMAN_AGENT"  # Messenger/Instagram message tag, up to 7 days after their last message


@dataclass(frozen=True)
class WindowDecision:
    mode: Mode | None
    refusal: Refusal | None = None


def thread_for(platform: Platform, account_id: str) -> str:
    return f"{platform.value}:{account_id}"


def platform_of(thread: str) -> tuple[Platform, str] | None:
    """(platform, business account id) of a social conversation's thread, None for other threads."""
    name, _, account_id = thread.partition(":")
    if name not in Platform.__members__.values() or not ACCOUNT_ID.fullmatch(account_id):
        return None
    return Platform(name), account_id


def window(platform: Platform, last_inbound_at: datetime | None, now: datetime) -> WindowDecision:
    """May free text go now? Inside 24 h of their last message: yes. After that, WhatsApp needs an
    approved template; Messenger and Instagram allow a human agent's reply (HUMAN_AGENT tag) for 7 days."""
    since = now - last_inbound_at if last_inbound_at is not None else None
    if since is not None and since <= WINDOW:
        return WindowDecision(Mode.RESPONSE)
    if platform is Platform.WHATSAPP:
        return WindowDecision(None, Refusal.OUTSIDE_WINDOW)
    if since is not None and since <= HUMAN_AGENT_WINDOW:
        return WindowDecision(Mode.HUMAN_AGENT)
    return WindowDecision(None, Refusal.OUTSIDE_HUMAN_AGENT_WINDOW)


def advances(current: str | None, status: str) -> bool:
    """Whether a provider status moves a message on: sent → delivered → read, never back (a late
    ``sent`` never overwrites ``delivered`` or ``read``); ``failed`` only before delivery."""
    if current is None:
        return False
    if status == "failed":
        return RANK.get(current, 0) < RANK["delivered"]
    return RANK.get(status, 0) > RANK.get(current, 0)


# Events on the conversation ----------------------------------------------------------------------

class SocialAddressUsed(Conversation.Event):
    """The person wrote from this id to this business account: replies go back the same way."""

    platform: str
    account_id: str
    recipient_id: str
    personal: ClassVar[dict[str, str]] = {"recipient_id": "contact_id"}

    def apply(self, conversation: Conversation) -> None:
        conversation.social_recipient = self.recipient_id  # type: ignore[attr-defined]


class CustomerWrote(Conversation.Event):
    """The person sent a message at ``sent_at`` (Meta's time, not when its webhook reached us: a
    delivery retried hours later must not reopen the 24-hour window)."""

    sent_at: datetime

    def apply(self, conversation: Conversation) -> None:
        if last_wrote(conversation) is None or self.sent_at > last_wrote(conversation):  # type: ignore[operator]
            conversation.social_last_wrote = self.sent_at  # type: ignore[attr-defined]


def last_wrote(conversation: Conversation) -> datetime | None:
    """When the person last wrote on this thread: the start of the customer-service window."""
    return getattr(conversation, "social_last_wrote", None)


class SocialMessageSent(Conversation.Event):
    """Meta accepted one of our messages under this provider id (its statuses refer to it)."""

    message_id: UUID
    provider_message_id: str

    def apply(self, conversation: Conversation) -> None:
        tracked = social_outbound(conversation)
        tracked[str(self.message_id)] = [self.timestamp.timestamp(), "sent"]
        while len(tracked) > TRACKED:
            tracked.pop(next(iter(tracked)))


class SocialStatusChanged(Conversation.Event):
    """Meta reported delivery, reading or failure of our messages (the inbox sees the matching
    ``MessageDeliveryUpdated``; this keeps the order of statuses on the conversation)."""

    message_ids: list[UUID]
    status: str

    def apply(self, conversation: Conversation) -> None:
        tracked = social_outbound(conversation)
        for message_id in self.message_ids:
            entry = tracked.get(str(message_id))
            if entry is None:
                continue
            if self.status in ("read", "failed"):
                tracked.pop(str(message_id))
            else:
                entry[1] = self.status


def social_outbound(conversation: Conversation) -> dict[str, list[Any]]:
    """Message id → [sent at (epoch seconds), status] of our recent messages still awaiting a read."""
    tracked = getattr(conversation, "social_tracked", None)
    if tracked is None:
        tracked = {}
        conversation.social_tracked = tracked  # type: ignore[attr-defined]
    return tracked  # type: ignore[no-any-return]


def recipient(conversation: Conversation) -> Any:
    return getattr(conversation, "social_recipient", None)


def up_to(conversation: Conversation, watermark: datetime, below: str) -> list[UUID]:
    """Our tracked messages sent at or before ``watermark`` whose status is below ``below``."""
    limit = watermark.timestamp()
    return [UUID(message_id) for message_id, (at, status) in social_outbound(conversation).items()
            if at <= limit and RANK.get(status, 0) < RANK[below]]


class SocialIdentityLinked(Contact.Event):
    """This contact is the person behind a Messenger PSID or Instagram IGSID of a business account
    (kept so the social handle index can be rebuilt from events)."""

    platform: str
    account_id: str
    sender_id: str
    personal: ClassVar[dict[str, str]] = {"sender_id": SUBJECT}


# Aggregates -----------------------------------------------------------------------------------

class MetaAccount(Aggregate):
    """Which workspace a Facebook page, Instagram account or WhatsApp number belongs to (like
    ``PhoneNumber``: its id derives from platform and account id, so two workspaces never share one)."""

    class Connected(Aggregate.Created):
        platform: str
        account_id: str
        workspace_id: UUID | None

    class Reconnected(Aggregate.Event):
        workspace_id: UUID | None

        def apply(self, account: MetaAccount) -> None:
            account.workspace_id = self.workspace_id

    def __init__(self, platform: str, account_id: str, workspace_id: UUID | None) -> None:
        self.platform = platform
        self.account_id = account_id
        self.workspace_id = workspace_id

    @staticmethod
    def id_for(platform: Platform, account_id: str) -> UUID:
        return uuid5(ACCOUNT_NAMESPACE, f"{platform.value}:{account_id}")

    @classmethod
    def connect(cls, platform: Platform, account_id: str, workspace_id: UUID, now: datetime) -> MetaAccount:
        return cls._create(cls.Connected, id=cls.id_for(platform, account_id), platform=platform.value,
                           account_id=account_id, workspace_id=workspace_id, timestamp=now)

    def reconnect(self, workspace_id: UUID | None, now: datetime) -> None:
        if workspace_id != self.workspace_id:
            self.trigger_event(self.Reconnected, workspace_id=workspace_id, timestamp=now)


class SocialSendReceipt(Aggregate):
    """Maps Meta's id of a message we sent to our message, for its later statuses."""

    class Recorded(Aggregate.Created):
        workspace_id: UUID
        conversation_id: UUID
        message_id: UUID

    def __init__(self, workspace_id: UUID, conversation_id: UUID, message_id: UUID) -> None:
        self.workspace_id = workspace_id
        self.conversation_id = conversation_id
        self.message_id = message_id

    @staticmethod
    def id_for(platform: Platform, provider_message_id: str) -> UUID:
        return uuid5(SEND_NAMESPACE, f"{platform.value}/{provider_message_id}")

    @classmethod
    def record(cls, platform: Platform, provider_message_id: str, workspace_id: UUID, conversation_id: UUID,
               message_id: UUID, now: datetime) -> SocialSendReceipt:
        return cls._create(cls.Recorded, id=cls.id_for(platform, provider_message_id), workspace_id=workspace_id,
                           conversation_id=conversation_id, message_id=message_id, timestamp=now)


class SocialTemplate(Aggregate):
    """The WhatsApp template an outbound message is sent as (saved with its ``MessageSent``)."""

    class Chosen(Aggregate.Created):
        workspace_id: UUID
        contact_id: UUID
        name: str
        language: str
        parameters: list[str]
        personal: ClassVar[dict[str, str]] = {"parameters": "contact_id"}

    def __init__(self, workspace_id: UUID, contact_id: UUID, name: str, language: str, parameters: list[str]) -> None:
        self.workspace_id = workspace_id
        self.contact_id = contact_id
        self.name = name
        self.language = language
        self.parameters = parameters

    @staticmethod
    def id_for(message_id: UUID) -> UUID:
        return uuid5(TEMPLATE_NAMESPACE, str(message_id))

    @classmethod
    def choose(cls, message_id: UUID, workspace_id: UUID, contact_id: UUID, name: str, language: str,
               parameters: list[str], now: datetime) -> SocialTemplate:
        return cls._create(cls.Chosen, id=cls.id_for(message_id), workspace_id=workspace_id, contact_id=contact_id,
                           name=name, language=language, parameters=list(parameters), timestamp=now)
