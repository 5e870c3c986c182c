"""Outbound webhooks, the pure parts: which events become which webhook types, their payloads
(ids, channel and times only — never personal data), the signature, and the retry schedule."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.appointment import Appointment
from domain.contact import Contact
from domain.conversation import Conversation
from domain.errors import WebhookEventTypeInvalidError, WebhookUrlInvalidError

EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/webhook-event")
EVENT_TYPES = (
    "message.received", "message.sent", "contact.created", "appointment.booked", "appointment.rescheduled",
    "appointment.cancelled", "consent.changed", "subject.erased",
)
SIGNATURE_HEADER = "Commhub-Signature"
TOLERANCE_SECONDS = 300
MAX_URL = 2000


@dataclass(frozen=True)
class WebhookEvent:
    """One event as receivers see it: a type, the contact it is about, and ids-only data."""

    type: str
    subject_id: UUID
    data: dict[str, Any] = field(default_factory=dict)


def event_id(originator_id: UUID, version: int) -> UUID:
    """A stable id per stored event: the same on every delivery and every rebuild."""
    return uuid5(EVENT_NAMESPACE, f"{originator_id}:{version}")


def _time(value: datetime) -> str:
    return value.isoformat()


def _message(e: Any, direction: str) -> dict[str, Any]:
    return {"conversation_id": str(e.originator_id), "contact_id": str(e.contact_id),
            "message_id": str(e.message_id), "direction": direction}


def webhook_event(e: Any) -> WebhookEvent | None:
    """The webhook form of a domain event, or None for events no webhook carries."""
    match e:
        case Conversation.MessageReceived():
            return WebhookEvent("message.received", e.contact_id, _message(e, "in"))
        case Conversation.MessageSent():
            return WebhookEvent("message.sent", e.contact_id, {**_message(e, "out"), "channel": e.channel,
                                                               "purpose": e.purpose})
        case Contact.Created():
            return WebhookEvent("contact.created", e.originator_id, {"contact_id": str(e.originator_id)})
        case Contact.ConsentGranted() | Contact.ConsentWithdrawn():
            return WebhookEvent("consent.changed", e.originator_id, {
                "contact_id": str(e.originator_id), "channel": e.channel, "purpose": e.purpose,
                "granted": isinstance(e, Contact.ConsentGranted)})
        case Contact.Erased():
            return WebhookEvent("subject.erased", e.originator_id, {
                "contact_id": str(e.originator_id), "subject_ids": sorted(str(s) for s in e.subject_ids),
                "erasure_id": str(e.request_id)})
        case Appointment.Booked() | Appointment.Rescheduled():
            kind = "appointment.booked" if isinstance(e, Appointment.Booked) else "appointment.rescheduled"
            return WebhookEvent(kind, e.contact_id, {
                "appointment_id": str(e.originator_id), "contact_id": str(e.contact_id),
                "staff_id": str(e.staff_id) if e.staff_id else None, "starts_at": _time(e.starts_at),
                "ends_at": _time(e.ends_at), "time_zone": e.time_zone})
        case Appointment.Cancelled():
            return WebhookEvent("appointment.cancelled", e.contact_id, {
                "appointment_id": str(e.originator_id), "contact_id": str(e.contact_id)})
    return None


def envelope(event: WebhookEvent, originator_id: UUID, version: int, workspace_id: UUID,
             occurred_at: datetime) -> dict[str, Any]:
    """The JSON body of a delivery (the same for every subscription that receives the event)."""
    return {"id": str(event_id(originator_id, version)), "type": event.type, "workspace_id": str(workspace_id),
            "occurred_at": _time(occurred_at), "data": event.data}


def check_event_types(values: list[str]) -> list[str]:
    chosen = sorted(set(values))
    unknown = [v for v in chosen if v not in EVENT_TYPES]
    if not chosen or unknown:
        raise WebhookEventTypeInvalidError(f"event types must be one or more of: {', '.join(EVENT_TYPES)}")
    return chosen


def check_url(value: str) -> str:
    """An absolute http(s) URL without credentials in it (secrets go in the signing secret)."""
    try:
        parts = urlsplit(value) if isinstance(value, str) and len(value) <= MAX_URL else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)
    except ValueError:
        parts, port_ok = None, False
    if (parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.username is not None or parts.password is not None or re.search(r"[\s<>\"'\\]", value)):
        raise WebhookUrlInvalidError(f"the URL must be an absolute http(s) URL of at most {MAX_URL} characters,"
                                     " without a user name or password")
    return value


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: a v1 signature of this body under the secret, made within the tolerance."""
    try:
        items = [part.split("=", 1) for part in header.split(",")]
        timestamp = int(next(v for k, v in items if k == "t"))
    except (ValueError, StopIteration):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in items)


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Seconds before the next try after ``attempt`` failed ones: base·2^(attempt-1), capped, times
    ``jitter`` (a random factor the caller draws from [0.5, 1.5])."""
    return float(min(cap, base * 2.0 ** max(0, attempt - 1)) * jitter)
