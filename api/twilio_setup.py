"""Wiring of the Twilio channel: which numbers a message goes from and to, and where status callbacks land."""

from __future__ import annotations

from collections.abc import Callable

from adapters.channels import OutboundMessage
from adapters.twilio_sms import TwilioSmsChannel
from api.settings import Settings
from domain.application import CommHub
from domain.errors import NotFoundError
from domain.personal import readable
from domain.sms import business_number

STATUS_PATH = "/webhooks/twilio/status"


def sms_addresses(app: CommHub) -> Callable[[OutboundMessage], tuple[str | None, str] | None]:
    """(workspace's number, contact's phone) for a message, read from the aggregates at send time:
    the number the contact last wrote to if the workspace still has it, else its first number."""

    def lookup(message: OutboundMessage) -> tuple[str | None, str] | None:
        try:
            contact = app.get_contact(message.workspace_id, message.contact_id)
            conversation = app.get_conversation(message.workspace_id, message.conversation_id)
        except NotFoundError:
            return None
        phone = readable(contact.phone)
        if not phone:
            return None
        numbers = app.sms_settings(message.workspace_id).numbers
        used = business_number(conversation)
        return (used if used in numbers else numbers[0] if numbers else None), phone

    return lookup


def twilio_channel(settings: Settings, app: CommHub) -> TwilioSmsChannel:
    assert settings.twilio_account_sid and settings.twilio_auth_token
    return TwilioSmsChannel(
        account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token, sender=settings.twilio_from,
        status_callback=settings.public_base_url + STATUS_PATH, numbers=sms_addresses(app),
        api_url=settings.twilio_api_url, timeout=settings.twilio_timeout,
    )
