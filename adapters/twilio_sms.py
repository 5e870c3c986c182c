"""The Twilio SMS channel: sends outbound messages with the official ``twilio`` client.

The client's HTTP layer is pointed at ``api_url`` (Twilio itself, or a fake on loopback in tests)
by rewriting the scheme and host of every request; everything else is the real client.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from uuid import UUID

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from adapters.channels import DeliveryResult, OutboundMessage

log = logging.getLogger(__name__)
TWILIO_API = "https://api.twilio.com"
quiet_logger = logging.getLogger("commhub.twilio_http")
quiet_logger.setLevel(logging.WARNING)  # the client logs request URLs and headers at INFO


class RoutedHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that sends every request to ``base_url`` instead of *.twilio.com."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=quiet_logger)
        self.base = urlsplit(base_url.rstrip("/"))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        routed = urlunsplit((self.base.scheme, self.base.netloc, self.base.path + parts.path, parts.query, ""))
        return super().request(method, routed, *args, **kwargs)


def classify(error: Exception) -> DeliveryResult:
    """429, 5xx and network trouble are worth another try; any other 4xx will fail again."""
    if isinstance(error, TwilioRestException):
        code = str(error.code or error.status)
        retry = error.status == 429 or error.status >= 500
        return DeliveryResult("failed", error_code=code, retry=retry)
    if isinstance(error, requests.RequestException):
        return DeliveryResult("failed", error_code=type(error).__name__, retry=True)
    raise error


class TwilioSmsChannel:
    """ChannelSender for SMS through Twilio's Messages API."""

    def __init__(
        self, *, account_sid: str, auth_token: str, sender: str | None, status_callback: str | None,
        numbers: Any, api_url: str = TWILIO_API, timeout: float = 10.0,
    ) -> None:
        self.client = Client(account_sid, auth_token, http_client=RoutedHttpClient(api_url, timeout))
        _ = self.client.api.v2010  # the client imports its API modules on first use (~1 s): not on the first send
        self.sender = sender
        self.status_callback = status_callback
        self.numbers = numbers  # message → (from number, to number)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if message.body is None:
            return DeliveryResult("failed", error_code="erased")
        addresses = self.numbers(message)
        if addresses is None:
            return DeliveryResult("failed", error_code="no_number")
        from_number, to_number = addresses
        if not (from_number or self.sender):
            return DeliveryResult("failed", error_code="no_sender_number")
        options: dict[str, Any] = {"to": to_number, "body": message.body, "from_": from_number or self.sender}
        if self.status_callback:
            options["status_callback"] = self.callback_url(message)
        try:
            created = self.client.messages.create(**options)
        except (TwilioRestException, requests.RequestException) as error:
            result = classify(error)
            log.warning("twilio refused a message", extra={"message_id": str(message.message_id),
                                                          "code": result.error_code, "retry": result.retry})
            return result
        # Twilio has it: recorded as "sent" so the outcome is an event (a rebuilt outbox never resends it);
        # its callbacks then move it on to delivered/undelivered/failed.
        status = "failed" if created.status == "failed" else "sent"
        return DeliveryResult(status=status, provider_message_id=created.sid)

    def callback_url(self, message: OutboundMessage) -> str:
        ids: dict[str, UUID] = {"workspace_id": message.workspace_id, "conversation_id": message.conversation_id,
                                "message_id": message.message_id}
        return f"{self.status_callback}?{urlencode({k: str(v) for k, v in ids.items()})}"
