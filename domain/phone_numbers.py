"""A workspace's Twilio numbers and its SMS and voice settings.

A number is routed by a reservation whose id is uuid5 of the E.164 number (like ``WorkspaceSlug``),
so two workspaces can never own the same number. The numbers and the settings belong to the
business, not to a data subject, so they are not sealed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.quiet_hours import QuietHours
from domain.sms_keywords import DEFAULT_HELP_TEXT

NUMBER_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/phone-number")
SETTINGS_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/sms-settings")
DEFAULT_GREETING = "Thank you for calling. Please hold while we connect you."
DEFAULT_VOICEMAIL = "Sorry, nobody can take your call right now. Please leave a message after the tone."
SETTING_FIELDS = ("help_text", "quiet_hours_start", "quiet_hours_end", "missed_call_text", "forward_to",
                  "greeting", "voicemail_greeting", "ring_seconds")


class PhoneNumber(Aggregate):
    """Which workspace a phone number belongs to; released numbers can be attached again."""

    class Attached(Aggregate.Created):
        number: str
        workspace_id: UUID | None

    class Reattached(Aggregate.Event):
        workspace_id: UUID | None

        def apply(self, number: PhoneNumber) -> None:
            number.workspace_id = self.workspace_id

    def __init__(self, number: str, workspace_id: UUID | None) -> None:
        self.number = number
        self.workspace_id = workspace_id

    @staticmethod
    def id_for(number: str) -> UUID:
        return uuid5(NUMBER_NAMESPACE, number)

    @classmethod
    def attach(cls, number: str, workspace_id: UUID, now: datetime) -> PhoneNumber:
        return cls._create(cls.Attached, id=cls.id_for(number), number=number, workspace_id=workspace_id,
                           timestamp=now)

    def reattach(self, workspace_id: UUID | None, now: datetime) -> None:
        if workspace_id != self.workspace_id:
            self.trigger_event(self.Reattached, workspace_id=workspace_id, timestamp=now)


class SmsSettings(Aggregate):
    """Per-workspace SMS and voice settings: HELP text, quiet hours, missed-call text-back, call forwarding."""

    class Created(Aggregate.Created):
        workspace_id: UUID

    class Changed(Aggregate.Event):
        changes: dict[str, Any]

        def apply(self, settings: SmsSettings) -> None:
            for name, value in self.changes.items():
                setattr(settings, name, value)

    class NumbersChanged(Aggregate.Event):
        numbers: list[str]

        def apply(self, settings: SmsSettings) -> None:
            settings.numbers = list(self.numbers)

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id
        self.help_text = DEFAULT_HELP_TEXT
        self.quiet_hours_start: str | None = None
        self.quiet_hours_end: str | None = None
        self.missed_call_text: str | None = None
        self.forward_to: str | None = None
        self.greeting = DEFAULT_GREETING
        self.voicemail_greeting = DEFAULT_VOICEMAIL
        self.ring_seconds = 20
        self.numbers: list[str] = []

    @staticmethod
    def id_for(workspace_id: UUID) -> UUID:
        return uuid5(SETTINGS_NAMESPACE, str(workspace_id))

    @classmethod
    def create(cls, workspace_id: UUID, now: datetime) -> SmsSettings:
        return cls._create(cls.Created, id=cls.id_for(workspace_id), workspace_id=workspace_id, timestamp=now)

    @property
    def quiet_hours(self) -> QuietHours | None:
        if not self.quiet_hours_start or not self.quiet_hours_end:
            return None
        return QuietHours.parse(self.quiet_hours_start, self.quiet_hours_end)

    def change(self, changes: dict[str, Any], now: datetime) -> None:
        different = {k: v for k, v in changes.items() if k in SETTING_FIELDS and getattr(self, k) != v}
        if different:
            self.trigger_event(self.Changed, changes=different, timestamp=now)

    def set_numbers(self, numbers: list[str], now: datetime) -> None:
        if sorted(numbers) != sorted(self.numbers):
            self.trigger_event(self.NumbersChanged, numbers=sorted(numbers), timestamp=now)

    def view(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in SETTING_FIELDS}, "numbers": list(self.numbers)}
