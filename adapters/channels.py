"""Outbound channel adapters: the port every channel implements, and the sandbox channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboundMessage:
    message_id: UUID
    workspace_id: UUID
    conversation_id: UUID
    contact_id: UUID
    channel: str
    body: str | None
    attempt: int


@dataclass(frozen=True)
class DeliveryResult:
    status: str  # a Conversation delivery status: sent, delivered, captured, failed…
    provider_message_id: str | None = None
    error_code: str | None = None
    retry: bool = False  # a transient failure: try again later


class ChannelSender(Protocol):
    def send(self, message: OutboundMessage) -> DeliveryResult: ...


class SandboxChannel:
    """Without provider credentials, outbound messages are captured, not sent: they show in the
    thread with status ``captured``."""

    def send(self, message: OutboundMessage) -> DeliveryResult:
        log.info("sandbox captured an outbound message", extra={"message_id": str(message.message_id)})
        return DeliveryResult(status="captured", provider_message_id=f"sandbox-{message.message_id}")
