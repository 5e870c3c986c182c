"""The web chat channel's sender: a reply reaches the visitor through the widget websocket (which
follows the event log), so the outbox has nothing to call: once stored in the thread, the reply is
delivered to the chat (open widgets show it at once, a returning visitor on reconnect)."""

from __future__ import annotations

from adapters.channels import DeliveryResult, OutboundMessage


class WebchatChannel:
    def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(status="delivered", provider_message_id=f"webchat-{message.message_id}")
