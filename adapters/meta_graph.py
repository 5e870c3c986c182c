"""The Meta channel: sends outbound social messages through the Graph API with httpx.

Messenger and Instagram: ``POST /{page-or-ig-id}/messages``; WhatsApp: ``POST /{phone_number_id}/messages``
with free text or an approved template. Throttling (HTTP 429 and Graph codes 4, 17, 32, 613, 80007,
130429), 5xx and network trouble are retried by the outbox; any other error is final and recorded
with the Graph code and a title of ours (Meta's own message text can quote the person).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

import httpx

from adapters.channels import DeliveryResult, OutboundMessage
from adapters.meta_accounts import MetaAccounts
from domain.application import CommHub
from domain.errors import NotFoundError
from domain.personal import readable
from domain.social import Mode, Platform, last_wrote, platform_of, recipient, window

log = logging.getLogger(__name__)
GRAPH_API = "https://graph.facebook.com/v21.0"
THROTTLING = frozenset({4, 17, 32, 613, 80007, 130429})
TITLES = {
    4: "Rate limited by Meta (application)", 17: "Rate limited by Meta (user)", 32: "Rate limited by Meta (page)",
    613: "Rate limited by Meta", 80007: "Rate limited by Meta (WhatsApp Business account)",
    130429: "Rate limited by Meta (WhatsApp throughput)",
    10: "Permission denied: the page or account has not granted messaging", 100: "Meta refused a parameter",
    190: "The access token has expired or is invalid: connect the account again",
    200: "Permission denied by Meta", 230: "The person must message the page first",
    551: "This person is not available",
    2018278: "Outside the allowed messaging window", 2018108: "This person cannot receive messages from the page",
    131026: "The message could not be delivered to this WhatsApp user",
    131047: "Outside the 24-hour window: send an approved template",
    131051: "Unsupported message type", 131056: "Too many messages to this WhatsApp user: wait before retrying",
    132000: "The template's parameters do not match it", 132001: "This template does not exist in this language",
    132005: "The template's text is too long once filled in", 132007: "The template's content breaks Meta's policy",
    132012: "The template's parameters are of the wrong format", 133010: "This WhatsApp number is not registered",
}
Clock = Callable[[], datetime]


def error_text(code: int | None) -> str:
    """What the agent sees for a Graph error: its code and our own title, never Meta's message."""
    if code is None:
        return "meta: the Graph API refused the message"
    return f"meta {code}: {TITLES.get(code, 'the Graph API refused the message')}"


def classify(status: int, body: Any) -> DeliveryResult:
    error = body.get("error") if isinstance(body, dict) else None
    raw = error.get("code") if isinstance(error, dict) else None
    code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    retry = status == 429 or status >= 500 or code in THROTTLING
    return DeliveryResult("failed", error_code=error_text(code), retry=retry)


def provider_id(platform: Platform, body: Any) -> str | None:
    """Meta's id of the message it accepted."""
    if not isinstance(body, dict):
        return None
    if platform is Platform.WHATSAPP:
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        value = first.get("id") if isinstance(first, dict) else None
    else:
        value = body.get("message_id")
    return value if isinstance(value, str) and 0 < len(value) <= 256 else None


class MetaChannel:
    """ChannelSender for the ``social`` channel."""

    def __init__(self, app: CommHub, accounts: MetaAccounts, *, graph_url: str = GRAPH_API, timeout: float = 10.0,
                 clock: Clock | None = None) -> None:
        self.app = app
        self.accounts = accounts
        self.graph_url = graph_url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if message.body is None:
            return DeliveryResult("failed", error_code="erased")
        try:
            conversation = self.app.get_conversation(message.workspace_id, message.conversation_id)
        except NotFoundError:
            return DeliveryResult("failed", error_code="no_conversation")
        found = platform_of(conversation.thread)
        to = readable(recipient(conversation))
        if found is None or not to:
            return DeliveryResult("failed", error_code="no_recipient")
        platform, account_id = found
        token = self.accounts.token(message.workspace_id, platform.value, account_id)
        if token is None:
            return DeliveryResult("failed", error_code="meta: the account is not connected")
        template = self.app.social_template(message.message_id)
        if template is not None:
            payload = template_payload(to, template.name, template.language, readable(template.parameters, []) or [])
        else:
            verdict = window(platform, last_wrote(conversation), self.clock())
            if verdict.mode is None:
                return DeliveryResult("failed", error_code=str(verdict.refusal))
            payload = text_payload(platform, to, message.body, verdict.mode)
        return self._post(message, platform, account_id, token, payload)

    def _post(self, message: OutboundMessage, platform: Platform, account_id: str, token: str,
              payload: dict[str, Any]) -> DeliveryResult:
        try:
            response = self.client.post(f"{self.graph_url}/{account_id}/messages", json=payload,
                                        headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            log.warning("meta send failed", extra={"message_id": str(message.message_id),
                                                   "error": type(error).__name__})
            return DeliveryResult("failed", error_code=type(error).__name__, retry=True)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            result = classify(response.status_code, body)
            log.warning("meta refused a message", extra={"message_id": str(message.message_id),
                                                         "code": result.error_code, "retry": result.retry})
            return result
        sent_id = provider_id(platform, body)
        if sent_id is None:
            return DeliveryResult("failed", error_code="meta: the answer had no message id", retry=True)
        self.app.record_social_send(message.workspace_id, message.conversation_id, message.message_id, platform,
                                    sent_id, self.clock())
        return DeliveryResult("sent", provider_message_id=sent_id)

    def close(self) -> None:
        self.client.close()


def text_payload(platform: Platform, to: str, body: str, mode: Mode) -> dict[str, Any]:
    if platform is Platform.WHATSAPP:
        return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
                "text": {"preview_url": False, "body": body}}
    payload: dict[str, Any] = {"recipient": {"id": to}, "message": {"text": body}}
    if mode is Mode.HUMAN_AGENT:  # after 24 h, a person's reply is allowed for 7 days with this tag
        payload.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    else:
        payload["messaging_type"] = "RESPONSE"
    return payload


def template_payload(to: str, name: str, language: str, parameters: list[str]) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        template["components"] = [{"type": "body",
                                   "parameters": [{"type": "text", "text": p} for p in parameters]}]
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template",
            "template": template}
