"""Calls (a mixin of ``CommHub``): call started, answered, missed, voicemail and its transcription,
logged on the contact's voice conversation; a missed call may trigger an SMS text-back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.consent import SendDecision
from domain.conversation import Conversation, InboundReceipt
from domain.identifiers import Channel
from domain.sms import NumberUsed, business_number

CALL_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/call-event")
CALL_KINDS = ("started", "answered", "missed", "voicemail", "transcription")
VOICE = Channel.VOICE.value
SMS = Channel.SMS.value
T = TypeVar("T")


class CallLogged(Conversation.Event):
    """Something happened on a call; ``body`` (a transcription) and ``attachments`` (the recording) are personal."""

    message_id: UUID
    call_sid: str
    kind: str
    duration: int | None
    body: str
    attachments: list[dict[str, Any]]
    personal: ClassVar[dict[str, str]] = {"body": "contact_id", "attachments": "contact_id"}

    def apply(self, conversation: Conversation) -> None:
        conversation.last_activity = self.timestamp
        if self.kind in ("missed", "voicemail"):
            conversation.status = "open"
            conversation.snoozed_until = None
            conversation.unread += 1


def call_event_id(call_sid: str, kind: str) -> UUID:
    return uuid5(CALL_NAMESPACE, f"{call_sid}/{kind}")


def text_back_id(call_sid: str) -> UUID:
    return uuid5(CALL_NAMESPACE, f"{call_sid}/text-back")


class VoiceCommands:
    """Mixed into ``CommHub`` beside ``SmsCommands``."""

    _get: Any
    save: Any
    _conversation_for: Any
    get_contact: Any
    sms_settings: Any
    _send_or_refuse: Any

    if TYPE_CHECKING:
        @staticmethod
        def _retrying(attempt: Callable[[], T]) -> T: ...

    def log_call(
        self, workspace_id: UUID, contact_id: UUID, *, call_sid: str, kind: str, now: datetime,
        duration: int | None = None, body: str = "", attachments: list[dict[str, Any]] | None = None,
        to_number: str | None = None,
    ) -> tuple[bool, SendDecision | None]:
        """Log a call event once per call and kind (providers retry); a missed call also queues the
        workspace's text-back SMS, subject to consent and quiet hours, in the same save.

        Returns whether it was new, and the text-back decision if one was attempted."""
        if kind not in CALL_KINDS:
            raise ValueError(f"unknown call event {kind!r}")
        event_id = call_event_id(call_sid, kind)

        def attempt() -> tuple[bool, SendDecision | None]:
            receipt_id = InboundReceipt.id_for(workspace_id, VOICE, f"{call_sid}/{kind}")
            if self._get(receipt_id, InboundReceipt) is not None:
                return False, None
            contact = self.get_contact(workspace_id, contact_id)
            conversation = self._conversation_for(workspace_id, contact_id, VOICE, "default", now)
            conversation.trigger_event(
                CallLogged, workspace_id=workspace_id, contact_id=contact_id, message_id=event_id,
                call_sid=call_sid, kind=kind, duration=duration, body=body, attachments=list(attachments or []),
                timestamp=now)
            pending: list[Any] = [conversation, InboundReceipt.record(
                workspace_id=workspace_id, channel=VOICE, provider_message_id=f"{call_sid}/{kind}",
                message_id=event_id, conversation_id=conversation.id, now=now)]
            decision = None
            text = self.sms_settings(workspace_id).missed_call_text if kind == "missed" else None
            if text and not contact.erased:
                sms = self._conversation_for(workspace_id, contact_id, SMS, "default", now)
                if to_number and business_number(sms) != to_number:  # text back from the number they called
                    sms.trigger_event(NumberUsed, workspace_id=workspace_id, contact_id=contact_id, number=to_number,
                                      timestamp=now)
                decision = self._send_or_refuse(sms, contact, text_back_id(call_sid), text, "transactional", now)
                pending.append(sms)
            self.save(*pending)
            return True, decision

        return self._retrying(attempt)
