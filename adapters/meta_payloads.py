"""Meta webhook payloads (Messenger ``page``, ``instagram``, ``whatsapp_business_account``) parsed
into the few facts commhub acts on. Pure: no I/O. Anything of the wrong shape or type raises
``PayloadInvalidError`` (a 4xx); events we do not handle (postbacks, reactions…) are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from domain.conversation import MAX_BODY
from domain.social import ACCOUNT_ID, Platform

PROVIDER_ID = re.compile(r"^[A-Za-z0-9_.:=+/-]{1,256}$")
MEDIA_TYPE = re.compile(r"^[a-z_]{1,40}$")
OBJECTS = {"page": Platform.MESSENGER, "instagram": Platform.INSTAGRAM, "whatsapp_business_account": Platform.WHATSAPP}
WHATSAPP_STATUSES = ("sent", "delivered", "read", "failed")
WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")
MAX_ENTRIES = 1000
MAX_ITEMS = 1000
MAX_ATTACHMENTS = 10


class PayloadInvalidError(ValueError):
    """The webhook payload does not have the shape Meta documents."""


@dataclass(frozen=True)
class InboundMessage:
    platform: Platform
    account_id: str
    sender_id: str
    provider_message_id: str
    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    profile_name: str | None = None
    sent_at: datetime | None = None  # when the person sent it, by Meta's clock


@dataclass(frozen=True)
class StatusUpdate:
    """Statuses of messages we sent, named by Meta's ids."""

    platform: Platform
    account_id: str
    provider_message_ids: list[str]
    status: str
    error_code: int | None = None


@dataclass(frozen=True)
class Watermark:
    """Messenger/Instagram: everything we sent this person up to ``at`` was delivered or read."""

    platform: Platform
    account_id: str
    sender_id: str
    at: datetime
    status: str


@dataclass(frozen=True)
class ReadUpTo:
    """Instagram: the person read our message with this id (and so everything before it)."""

    platform: Platform
    account_id: str
    provider_message_id: str


Event = InboundMessage | StatusUpdate | Watermark | ReadUpTo


def parse(payload: Any) -> list[Event]:
    """The events of one webhook delivery; an ``object`` we do not handle gives none."""
    data = _dict(payload, "payload")
    kind = _str(data.get("object"), "object")
    platform = OBJECTS.get(kind)
    entries = _list(data.get("entry"), "entry", MAX_ENTRIES)
    if platform is None:
        return []
    events: list[Event] = []
    for entry in entries:
        entry = _dict(entry, "entry[]")
        if platform is Platform.WHATSAPP:
            for change in _list(entry.get("changes", []), "changes", MAX_ITEMS):
                events.extend(_whatsapp_change(_dict(change, "changes[]")))
        else:
            account_id = _account(entry.get("id"), "entry[].id")
            for item in _list(entry.get("messaging", []), "messaging", MAX_ITEMS):
                events.extend(_messaging(platform, account_id, _dict(item, "messaging[]")))
    return events


# Messenger and Instagram ----------------------------------------------------------------------

def _messaging(platform: Platform, account_id: str, item: dict[str, Any]) -> list[Event]:
    if "message" in item:
        message = _dict(item["message"], "message")
        if message.get("is_echo") is True:
            return []  # our own send, echoed back: already in the thread
        sender = _account(_dict(item.get("sender"), "sender").get("id"), "sender.id")
        mid = _provider_id(message.get("mid"), "message.mid")
        text = _text(message.get("text", ""), "message.text")
        attachments = [_attachment(a) for a in _list(message.get("attachments", []), "attachments", MAX_ATTACHMENTS)]
        if not text.strip() and not attachments:
            return []  # nothing we can show (a reaction, an unsupported message)
        sent_at = _millis(item["timestamp"]) if item.get("timestamp") is not None else None
        return [InboundMessage(platform, account_id, sender, mid, text, attachments, None, sent_at)]
    if "delivery" in item:
        delivery = _dict(item["delivery"], "delivery")
        mids = [_provider_id(m, "delivery.mids[]") for m in _list(delivery.get("mids", []), "mids", MAX_ITEMS)]
        events: list[Event] = []
        if mids:
            events.append(StatusUpdate(platform, account_id, mids, "delivered"))
        if delivery.get("watermark") is not None:
            sender = _account(_dict(item.get("sender"), "sender").get("id"), "sender.id")
            events.append(Watermark(platform, account_id, sender, _millis(delivery["watermark"]), "delivered"))
        return events
    if "read" in item:
        read = _dict(item["read"], "read")
        if read.get("mid") is not None:
            return [ReadUpTo(platform, account_id, _provider_id(read["mid"], "read.mid"))]
        sender = _account(_dict(item.get("sender"), "sender").get("id"), "sender.id")
        return [Watermark(platform, account_id, sender, _millis(read.get("watermark")), "read")]
    return []


def _attachment(value: Any) -> dict[str, Any]:
    attachment = _dict(value, "attachments[]")
    kind = _str(attachment.get("type"), "attachments[].type")
    if not MEDIA_TYPE.fullmatch(kind):
        raise PayloadInvalidError("attachments[].type must be a media type such as image")
    payload = _dict(attachment.get("payload", {}), "attachments[].payload")
    url = payload.get("url")
    if url is not None:
        url = _str(url, "attachments[].payload.url")
        if not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise PayloadInvalidError("attachments[].payload.url must be an http(s) URL")
    return {"url": url, "content_type": kind}


# WhatsApp -------------------------------------------------------------------------------------

def _whatsapp_change(change: dict[str, Any]) -> list[Event]:
    if _str(change.get("field"), "changes[].field") != "messages":
        return []
    value = _dict(change.get("value"), "changes[].value")
    messages = _list(value.get("messages", []), "messages", MAX_ITEMS)
    statuses = _list(value.get("statuses", []), "statuses", MAX_ITEMS)
    if not messages and not statuses:
        return []
    account_id = _account(_dict(value.get("metadata"), "metadata").get("phone_number_id"), "metadata.phone_number_id")
    names: dict[str, str] = {}
    for contact in _list(value.get("contacts", []), "contacts", MAX_ITEMS):
        contact = _dict(contact, "contacts[]")
        profile = _dict(contact.get("profile", {}), "contacts[].profile")
        name = profile.get("name")
        if name is not None:
            names[_account(contact.get("wa_id"), "contacts[].wa_id")] = _text(name, "contacts[].profile.name")[:200]
    events: list[Event] = []
    for message in messages:
        found = _whatsapp_message(account_id, _dict(message, "messages[]"), names)
        if found is not None:
            events.append(found)
    for status in statuses:
        status = _dict(status, "statuses[]")
        wamid = _provider_id(status.get("id"), "statuses[].id")
        name = _str(status.get("status"), "statuses[].status")
        if name not in WHATSAPP_STATUSES:
            continue  # "deleted", "warning": nothing to show
        errors = _list(status.get("errors", []), "statuses[].errors", 10)
        code = _dict(errors[0], "errors[]").get("code") if errors else None
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise PayloadInvalidError("statuses[].errors[].code must be a number")
        events.append(StatusUpdate(Platform.WHATSAPP, account_id, [wamid], name, code))
    return events


def _whatsapp_message(account_id: str, message: dict[str, Any], names: dict[str, str]) -> InboundMessage | None:
    sender = _account(message.get("from"), "messages[].from")
    wamid = _provider_id(message.get("id"), "messages[].id")
    kind = _str(message.get("type"), "messages[].type")
    if not MEDIA_TYPE.fullmatch(kind):
        raise PayloadInvalidError("messages[].type must be a message type such as text")
    text, attachments = "", []
    if kind == "text":
        text = _text(_dict(message.get("text"), "messages[].text").get("body"), "messages[].text.body")
    elif kind in WHATSAPP_MEDIA:
        media = _dict(message.get(kind), f"messages[].{kind}")
        media_id = _provider_id(media.get("id"), f"messages[].{kind}.id")
        mime = media.get("mime_type")
        content_type = _str(mime, "mime_type")[:100] if mime is not None else kind
        attachments.append({"url": None, "content_type": content_type, "media_id": media_id})
        text = _text(media.get("caption", ""), f"messages[].{kind}.caption")
    elif kind == "button":
        text = _text(_dict(message.get("button"), "messages[].button").get("text"), "messages[].button.text")
    elif kind == "reaction":
        return None  # a reaction to a message is not a message
    else:
        text = f"[{kind} message]"  # location, contacts, interactive…: shown, content not kept
    if not text.strip() and not attachments:
        return None
    return InboundMessage(Platform.WHATSAPP, account_id, sender, wamid, text, attachments, names.get(sender),
                          _seconds(message.get("timestamp")))


# Checks ---------------------------------------------------------------------------------------

def _dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadInvalidError(f"{name} must be an object")
    return value


def _list(value: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadInvalidError(f"{name} must be a list")
    if len(value) > limit:
        raise PayloadInvalidError(f"{name} has more than {limit} items")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise PayloadInvalidError(f"{name} must be a string")
    return value


def _text(value: Any, name: str) -> str:
    text = _str(value, name)
    if len(text) > MAX_BODY or "\x00" in text:
        raise PayloadInvalidError(f"{name} must be at most {MAX_BODY} characters of text")
    return text


def _account(value: Any, name: str) -> str:
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise PayloadInvalidError(f"{name} must be a numeric id")
    return value


def _provider_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not PROVIDER_ID.fullmatch(value):
        raise PayloadInvalidError(f"{name} must be a message id")
    return value


def _seconds(value: Any) -> datetime | None:
    """WhatsApp's message time: epoch seconds, as a string of digits."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or not 0 < int(value) < 10**11:
        raise PayloadInvalidError("timestamp must be a time in seconds")
    return datetime.fromtimestamp(int(value), tz=timezone.utc)


def _millis(value: Any) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 10**14:
        raise PayloadInvalidError("watermark and timestamp must be times in milliseconds")
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
