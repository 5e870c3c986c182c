"""SMS commands of the application (a mixin of ``CommHub``): numbers, settings, inbound SMS with
its compliance keywords, automated sends, and the SMS part of every send decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.persistence import IntegrityError

from domain import identifiers
from domain.consent import ALLOWED, ConsentSubject, Refusal, SendDecision, may_send
from domain.contact import Contact
from domain.conversation import Conversation, InboundReceipt, check_body
from domain.errors import (
    PhoneNumberNotAttachedError,
    PhoneNumberTakenError,
    QuietHoursInvalidError,
    SmsSettingsInvalidError,
)
from domain.identifiers import Channel, Purpose
from domain.personal import readable
from domain.phone_numbers import PhoneNumber, SmsSettings
from domain.quiet_hours import QuietHours, next_allowed
from domain.sms_keywords import OPT_IN_CONFIRMATION, OPT_OUT_CONFIRMATION, Keyword, keyword

COMPLIANCE = "compliance"
"""Purpose of the replies carriers require (STOP/START confirmations, HELP): sent even after an opt-out."""
KEYWORD_SOURCE = "sms keyword"
REPLY_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/keyword-reply")
SMS = Channel.SMS.value
T = TypeVar("T")
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def reply_id_for(message_id: UUID) -> UUID:
    """The automatic reply to an inbound message has an id derived from it: one reply per message."""
    return uuid5(REPLY_NAMESPACE, str(message_id))


def compliance_decision(subject: ConsentSubject) -> SendDecision:
    """Carrier-required replies go even to an opted-out contact, but never to an erased or merged one."""
    if subject.erased:
        return SendDecision(False, Refusal.ERASED)
    if subject.merged:
        return SendDecision(False, Refusal.MERGED)
    return ALLOWED


class NumberUsed(Conversation.Event):
    """The contact wrote to this number of the business: replies go out from it."""

    number: str

    def apply(self, conversation: Conversation) -> None:
        conversation.business_number = self.number  # type: ignore[attr-defined]


def business_number(conversation: Conversation) -> str | None:
    return getattr(conversation, "business_number", None)


@dataclass(frozen=True)
class InboundSms:
    conversation_id: UUID
    message_id: UUID
    new: bool
    keyword: Keyword | None = None
    reply_id: UUID | None = None


def _text(value: Any, name: str, limit: int, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise SmsSettingsInvalidError(f"{name} must be 1-{limit} characters")
    return value.strip()


def check_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate a change of SMS settings; ``None`` clears an optional setting."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("help_text", "greeting", "voicemail_greeting"):
            checked[name] = _text(value, name, 480)
        elif name == "missed_call_text":
            checked[name] = _text(value, name, 480, optional=True)
        elif name == "forward_to":
            checked[name] = identifiers.e164(value) if value is not None else None
        elif name == "ring_seconds":
            if not isinstance(value, int) or not 5 <= value <= 120:
                raise SmsSettingsInvalidError("ring_seconds must be 5-120")
            checked[name] = value
        elif name in ("quiet_hours_start", "quiet_hours_end"):
            checked[name] = value
    start, end = checked.get("quiet_hours_start"), checked.get("quiet_hours_end")
    if start is not None or end is not None:
        QuietHours.parse(start or "", end or "")
    return checked


class SmsCommands:
    """Mixed into ``CommHub``; uses its repository helpers (``_get``, ``save``, ``_retrying``…)."""

    _get: Any
    save: Any
    _conversation_for: Any
    _inbound_conversation: Any
    recent: Any
    get_contact: Any
    get_workspace: Any
    get_conversation: Any
    consent_subject_of: Any
    _send_or_refuse: Any

    if TYPE_CHECKING:
        @staticmethod
        def _retrying(attempt: Callable[[], T]) -> T: ...

    # Numbers and settings ---------------------------------------------------------------------

    def sms_settings(self, workspace_id: UUID) -> SmsSettings:
        """The workspace's settings (defaults until first changed)."""
        found: SmsSettings | None = self._get(SmsSettings.id_for(workspace_id), SmsSettings)
        return found if found is not None else SmsSettings.create(workspace_id, EPOCH)

    def _settings_for_change(self, workspace_id: UUID, now: datetime) -> SmsSettings:
        self.get_workspace(workspace_id)
        found: SmsSettings | None = self._get(SmsSettings.id_for(workspace_id), SmsSettings)
        return found if found is not None else SmsSettings.create(workspace_id, now)

    def change_sms_settings(self, workspace_id: UUID, changes: dict[str, Any], now: datetime) -> SmsSettings:
        checked = check_settings(changes)

        def attempt() -> SmsSettings:
            settings = self._settings_for_change(workspace_id, now)
            merged = {**settings.view(), **checked}
            if bool(merged["quiet_hours_start"]) != bool(merged["quiet_hours_end"]):
                raise QuietHoursInvalidError("quiet hours need both a start and an end (or neither)")
            settings.change(checked, now)
            self.save(settings)
            return settings

        return self._retrying(attempt)

    def attach_number(self, workspace_id: UUID, number: str, now: datetime) -> SmsSettings:
        """Route this Twilio number's messages and calls to the workspace."""
        number = identifiers.e164(number)

        def attempt() -> SmsSettings:
            settings = self._settings_for_change(workspace_id, now)
            reservation = self._get(PhoneNumber.id_for(number), PhoneNumber)
            if reservation is None:
                reservation = PhoneNumber.attach(number, workspace_id, now)
            elif reservation.workspace_id not in (None, workspace_id):
                raise PhoneNumberTakenError("another workspace already owns this number")
            reservation.reattach(workspace_id, now)
            settings.set_numbers(sorted({*settings.numbers, number}), now)
            self.save(reservation, settings)
            return settings

        try:
            return self._retrying(attempt)
        except IntegrityError:
            raise PhoneNumberTakenError("another workspace already owns this number") from None

    def release_number(self, workspace_id: UUID, number: str, now: datetime) -> SmsSettings:
        number = identifiers.e164(number)

        def attempt() -> SmsSettings:
            settings = self._settings_for_change(workspace_id, now)
            reservation = self._get(PhoneNumber.id_for(number), PhoneNumber)
            if reservation is None or reservation.workspace_id != workspace_id:
                raise PhoneNumberNotAttachedError("this workspace does not own this number")
            reservation.reattach(None, now)
            settings.set_numbers([n for n in settings.numbers if n != number], now)
            self.save(reservation, settings)
            return settings

        return self._retrying(attempt)

    def workspace_for_number(self, number: str) -> UUID:
        reservation: PhoneNumber | None = self._get(PhoneNumber.id_for(number), PhoneNumber)
        if reservation is None or reservation.workspace_id is None:
            raise PhoneNumberNotAttachedError("no workspace owns this number")
        return reservation.workspace_id

    # Sending ---------------------------------------------------------------------------------

    def channel_decision(self, contact: Contact, channel: str, purpose: str, now: datetime, *,
                         quiet_hours: bool = True) -> SendDecision:
        """The decision of every send: consent first, then (for SMS) the quiet hours of the contact's day.

        A message queued in the day that is still waiting (retries, a backlog) when the quiet hours
        begin is held by the outbox until they end: see `quiet_hours_end`."""
        subject = self.consent_subject_of(contact, purpose)  # with the workspace's under-age guard
        if purpose == COMPLIANCE:
            return compliance_decision(subject)
        decision = may_send(subject, Channel(channel), identifiers.purpose(purpose), now)
        if decision.allowed and quiet_hours and channel == SMS and self.quiet_hours_end(contact, now) is not None:
            return SendDecision(False, Refusal.QUIET_HOURS)
        return decision

    def quiet_hours_end(self, contact: Contact, now: datetime) -> datetime | None:
        """When the SMS quiet hours of the contact's day end, or None if ``now`` is not within them."""
        settings = self.sms_settings(contact.workspace_id)
        zone = readable(contact.time_zone) or self.get_workspace(contact.workspace_id).time_zone
        allowed = next_allowed(now, zone, settings.quiet_hours)
        return None if allowed == now else allowed

    def held_until(self, workspace_id: UUID, contact_id: UUID, channel: str, purpose: str,
                   now: datetime) -> datetime | None:
        """For the outbox, at the moment of sending: when a queued message that now falls in the
        contact's quiet hours may go (None: it may go now). Compliance answers are never held."""
        if channel != SMS or purpose == COMPLIANCE:
            return None
        return self.quiet_hours_end(self.get_contact(workspace_id, contact_id), now)

    # Inbound ---------------------------------------------------------------------------------

    def receive_sms(
        self, *, workspace_id: UUID, contact_id: UUID, body: str, provider_message_id: str,
        attachments: list[dict[str, Any]], now: datetime, message_id: UUID | None = None,
        to_number: str | None = None,
    ) -> InboundSms:
        """Store an inbound SMS once per provider id, acting on a compliance keyword in the same save:
        the message, the consent change, cancelled queued messages and the reply commit together,
        so a retried webhook neither repeats nor half-applies them."""
        message_id = message_id or uuid4()

        def attempt() -> InboundSms:
            contact = self.get_contact(workspace_id, contact_id)
            while contact.merged_into is not None:  # the handle still pointed at a merged duplicate
                contact = self.get_contact(workspace_id, contact.merged_into)
            conversation, loan = self._inbound_conversation(workspace_id, contact.id, SMS, "default", now)
            if to_number and business_number(conversation) != to_number:
                conversation.trigger_event(NumberUsed, workspace_id=workspace_id, contact_id=contact.id,
                                           number=to_number, timestamp=now)
            conversation.receive(message_id, body, attachments, provider_message_id, now)
            pending: list[Any] = [conversation, InboundReceipt.record(
                workspace_id=workspace_id, channel=SMS, provider_message_id=provider_message_id,
                message_id=message_id, conversation_id=conversation.id, now=now)]
            found = keyword(body)
            reply_id = self._act_on_keyword(found, contact, conversation, message_id, now)
            if reply_id is not None or found is Keyword.OPT_OUT:
                pending.append(contact)
            try:
                self.save(*pending)
                self.recent.keep(conversation, loan)
            except IntegrityError:  # a retried webhook (the receipt exists: nothing was saved), or a race
                receipt = self._get(InboundReceipt.id_for(workspace_id, SMS, provider_message_id), InboundReceipt)
                if receipt is not None:
                    return InboundSms(receipt.conversation_id, receipt.message_id, False)
                raise
            return InboundSms(conversation.id, message_id, True, found, reply_id)

        return self._retrying(attempt)

    def _act_on_keyword(self, found: Keyword | None, contact: Contact, conversation: Conversation,
                        message_id: UUID, now: datetime) -> UUID | None:
        if found is None or contact.erased or contact.merged_into is not None:
            return None
        consents = readable(contact.consents, {}) or {}
        reply_id = reply_id_for(message_id)
        wording = {Keyword.OPT_OUT: "STOP", Keyword.OPT_IN: "START", Keyword.HELP: "HELP"}[found]
        if found is Keyword.OPT_OUT:
            for pending_id, status in list(conversation.outbound.items()):
                if status == "queued":  # not yet handed to the provider: it must never go
                    conversation.update_delivery(UUID(pending_id), "cancelled", Refusal.WITHDRAWN.value, now)
            transactional = consents.get(f"{SMS}:{Purpose.TRANSACTIONAL}")
            if transactional is not None and not transactional["granted"]:
                return None  # already opted out: the single confirmation was sent then
            for purpose in Purpose:
                record = consents.get(f"{SMS}:{purpose}")
                if purpose is Purpose.TRANSACTIONAL or (record is not None and record["granted"]):
                    contact.withdraw_consent(Channel.SMS, purpose, source=KEYWORD_SOURCE, wording=wording,
                                             actor_id=None, ip_address=None, now=now)
            conversation.send(reply_id, OPT_OUT_CONFIRMATION, None, COMPLIANCE, now)
            return reply_id
        if found is Keyword.OPT_IN:
            restored = False
            for purpose in Purpose:
                record = consents.get(f"{SMS}:{purpose}")
                if record is not None and not record["granted"] and (
                        purpose is Purpose.TRANSACTIONAL or readable(record["source"]) == KEYWORD_SOURCE):
                    contact.grant_consent(Channel.SMS, purpose, source=KEYWORD_SOURCE, wording=wording,
                                          actor_id=None, ip_address=None, expires_at=None, now=now)
                    restored = True
            if not restored:
                return None
            conversation.send(reply_id, OPT_IN_CONFIRMATION, None, COMPLIANCE, now)
            return reply_id
        help_text = self.sms_settings(contact.workspace_id).help_text
        conversation.send(reply_id, check_body(help_text), None, COMPLIANCE, now)
        return reply_id

    # Automations -----------------------------------------------------------------------------

    def send_sms(self, workspace_id: UUID, contact_id: UUID, *, body: str, now: datetime,
                 message_id: UUID | None = None, purpose: str = "transactional") -> tuple[UUID, SendDecision]:
        """An automated SMS to a contact (reminders, text-backs): queued, or refused with its reason."""
        message_id = message_id or uuid4()
        check_body(body)

        def attempt() -> tuple[UUID, SendDecision]:
            contact = self.get_contact(workspace_id, contact_id)
            conversation = self._conversation_for(workspace_id, contact_id, SMS, "default", now)
            decision = self._send_or_refuse(conversation, contact, message_id, body, purpose, now)
            self.save(conversation)
            return message_id, decision

        return self._retrying(attempt)
