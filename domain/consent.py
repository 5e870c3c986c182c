"""Consent records and the one decision every channel asks before sending: may we send this now?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from domain.identifiers import Channel, Purpose
from domain.minors import MinorsGuard, is_minor

ADDRESSED_BY = {
    Channel.SMS: "phone",
    Channel.VOICE: "phone",
    Channel.EMAIL: "email",
}


class Refusal(StrEnum):
    """Why a send was refused; recorded on the refused-send event and shown to the agent."""

    ERASED = "erased"
    MERGED = "merged"
    RESTRICTED = "processing_restricted"
    OBJECTED = "objected_to_marketing"
    WITHDRAWN = "consent_withdrawn"
    EXPIRED = "consent_expired"
    NO_CONSENT = "no_marketing_consent"
    NO_ADDRESS = "no_address_for_channel"
    QUIET_HOURS = "quiet_hours"
    MINOR = "under_minimum_age_for_marketing"
    OUTSIDE_WINDOW = "outside_customer_service_window"  # WhatsApp free text 24 h after their last message
    OUTSIDE_HUMAN_AGENT_WINDOW = "outside_human_agent_window"  # Messenger/Instagram 7 days after it


@dataclass(frozen=True)
class ConsentRecord:
    """The latest consent fact for one channel and purpose, with its evidence."""

    granted: bool
    at: datetime
    source: str
    wording: str
    actor_id: UUID | None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class SendDecision:
    allowed: bool
    reason: Refusal | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class ConsentSubject:
    """Plain values about one contact that the decision needs."""

    consents: dict[tuple[str, str], ConsentRecord]
    restricted: bool = False
    objected_to_marketing: bool = False
    erased: bool = False
    merged: bool = False
    addresses: frozenset[str] = frozenset()
    date_of_birth: date | None = None
    time_zone: str | None = None  # the contact's, else the workspace's: where birthdays are counted
    minors_guard: MinorsGuard = MinorsGuard()


ALLOWED = SendDecision(True)


def may_send(subject: ConsentSubject, channel: Channel, purpose: Purpose, now: datetime) -> SendDecision:
    """Decide whether a message on ``channel`` for ``purpose`` may go to this contact at ``now``.

    Transactional messages (reminders, replies) need no prior grant but stop on withdrawal;
    marketing needs an explicit, unexpired grant and no objection, and never goes to a contact the
    workspace's under-age guard flags as a minor. Erasure and restriction of processing stop everything.
    """
    if subject.erased:
        return SendDecision(False, Refusal.ERASED)
    if subject.merged:
        return SendDecision(False, Refusal.MERGED)
    if subject.restricted:
        return SendDecision(False, Refusal.RESTRICTED)
    if purpose is Purpose.MARKETING and subject.objected_to_marketing:
        return SendDecision(False, Refusal.OBJECTED)
    if purpose is Purpose.MARKETING and is_minor(subject.date_of_birth, now, subject.time_zone, subject.minors_guard):
        return SendDecision(False, Refusal.MINOR)
    needed = ADDRESSED_BY.get(channel)
    if needed is not None and needed not in subject.addresses:
        return SendDecision(False, Refusal.NO_ADDRESS)
    record = subject.consents.get((channel.value, purpose.value))
    if record is not None and not record.granted:
        return SendDecision(False, Refusal.WITHDRAWN)
    if record is not None and record.expires_at is not None and record.expires_at <= now:
        return SendDecision(False, Refusal.EXPIRED)
    if purpose is Purpose.MARKETING and record is None:
        return SendDecision(False, Refusal.NO_CONSENT)
    return ALLOWED
