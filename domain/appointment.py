"""Appointments: a contact booked with a staff member for a service, at a time in a time zone.

Its life: booked → (confirmed) → checked in → completed, or cancelled, or a no-show; a reschedule
moves it and asks for confirmation again. Reminders sent or skipped for it are recorded here too,
so a retried reminder finds its earlier outcome and never sends twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from domain import identifiers
from domain.errors import (
    AppointmentFieldInvalidError,
    AppointmentTimeInvalidError,
    AppointmentTransitionInvalidError,
)

APPOINTMENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/appointment")
STATUSES = ("booked", "confirmed", "checked_in", "completed", "cancelled", "no_show")
UPCOMING = ("booked", "confirmed")
SOURCES = ("api", "import", "ics", "fhir")
MAX_LENGTH = {"service": 200, "location": 200, "notes": 5_000, "reason": 500}
LONGEST = timedelta(days=7)


def appointment_id_for(workspace_id: UUID, source: str, external_id: str) -> UUID:
    """An appointment imported from another system has one id per source record, so a re-import updates it."""
    return uuid5(APPOINTMENT_NAMESPACE, f"{workspace_id}/{source}/{external_id}")


def check_times(starts_at: datetime, ends_at: datetime, time_zone: str) -> tuple[datetime, datetime, str]:
    if not isinstance(starts_at, datetime) or not isinstance(ends_at, datetime):
        raise AppointmentTimeInvalidError("starts_at and ends_at must be date-times")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise AppointmentTimeInvalidError("starts_at and ends_at must include a time zone offset")
    if not starts_at < ends_at <= starts_at + LONGEST:
        raise AppointmentTimeInvalidError("ends_at must be after starts_at, and at most 7 days later")
    return starts_at.astimezone(timezone.utc), ends_at.astimezone(timezone.utc), identifiers.time_zone(time_zone)


def check_text(field: str, value: str | None, *, required: bool = False) -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None or len(text) > MAX_LENGTH[field] or (required and not text) or "\x00" in text:
        raise AppointmentFieldInvalidError(
            f"{field} must be {'1' if required else '0'}-{MAX_LENGTH[field]} characters of text")
    return text


class Appointment(Aggregate):
    """One booking. Service, notes and a cancellation reason may reveal health details: they are
    sealed under the contact's key (a service name such as "IVF consultation" is personal)."""

    personal_state: ClassVar[tuple[str, ...]] = ("service", "notes")
    personal_subject: ClassVar[str] = "contact_id"

    class Event(Aggregate.Event):
        workspace_id: UUID
        contact_id: UUID

    class Booked(Aggregate.Created):
        workspace_id: UUID
        contact_id: UUID
        staff_id: UUID | None
        service: str
        location: str
        starts_at: datetime
        ends_at: datetime
        time_zone: str
        notes: str
        source: str
        external_id: str | None
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"service": "contact_id", "notes": "contact_id"}

    class Rescheduled(Event):
        starts_at: datetime
        ends_at: datetime
        time_zone: str
        staff_id: UUID | None
        location: str
        actor_id: UUID | None

        def apply(self, appointment: Appointment) -> None:
            appointment.starts_at = self.starts_at
            appointment.ends_at = self.ends_at
            appointment.time_zone = self.time_zone
            appointment.staff_id = self.staff_id
            appointment.location = self.location
            appointment.status = "booked"
            appointment.revision += 1

    class Cancelled(Event):
        reason: str
        actor_id: UUID | None
        via: str = "staff"  # staff or source (the system it came from said so: nothing to write back)
        personal: ClassVar[dict[str, str]] = {"reason": "contact_id"}

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "cancelled"

    class Confirmed(Event):
        via: str  # staff, reply or source
        message_id: UUID | None
        actor_id: UUID | None

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "confirmed"

    class CheckedIn(Event):
        actor_id: UUID | None
        via: str = "staff"

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "checked_in"

    class Completed(Event):
        actor_id: UUID | None
        via: str = "staff"

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "completed"
            appointment.finished_at = self.timestamp

    class MarkedNoShow(Event):
        actor_id: UUID | None
        via: str = "staff"

        def apply(self, appointment: Appointment) -> None:
            appointment.status = "no_show"
            appointment.finished_at = self.timestamp

    class ReminderSent(Event):
        """A reminder or follow-up was queued in the contact's conversation (the outbox delivers it)."""

        job_key: str
        policy_id: UUID
        planned_at: datetime
        message_id: UUID
        conversation_id: UUID
        channel: str

        def apply(self, appointment: Appointment) -> None:
            appointment.reminders[self.job_key] = "sent"
            appointment.reminded_conversation_id = self.conversation_id

    class ReminderSkipped(Event):
        """A planned reminder was not sent (too late, no consent, cancelled…): said once, for the record."""

        job_key: str
        policy_id: UUID
        planned_at: datetime
        reason: str

        def apply(self, appointment: Appointment) -> None:
            appointment.reminders[self.job_key] = f"skipped:{self.reason}"

    class WrittenBack(Event):
        """The source system (an EHR over FHIR) accepted the status change ``change_key``."""

        change_key: str
        status: str
        fhir_status: str
        http_status: int

        def apply(self, appointment: Appointment) -> None:
            appointment.write_backs[self.change_key] = "written"

    class WriteBackFailed(Event):
        """Writing the status change back to the source system failed for good (after retries)."""

        change_key: str
        status: str
        fhir_status: str
        http_status: int | None  # None: the source never answered
        attempts: int

        def apply(self, appointment: Appointment) -> None:
            appointment.write_backs[self.change_key] = "failed"

    def __init__(
        self, workspace_id: UUID, contact_id: UUID, staff_id: UUID | None, service: str, location: str,
        starts_at: datetime, ends_at: datetime, time_zone: str, notes: str, source: str, external_id: str | None,
    ) -> None:
        self.workspace_id = workspace_id
        self.contact_id = contact_id
        self.staff_id = staff_id
        self.service = service
        self.location = location
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.time_zone = time_zone
        self.notes = notes
        self.source = source
        self.external_id = external_id
        self.status = "booked"
        self.revision = 0
        self.finished_at: datetime | None = None
        self.reminders: dict[str, str] = {}
        self.reminded_conversation_id: UUID | None = None
        self.write_backs: dict[str, str] = {}

    @classmethod
    def book(
        cls, *, appointment_id: UUID, workspace_id: UUID, contact_id: UUID, staff_id: UUID | None, service: str,
        location: str | None, starts_at: datetime, ends_at: datetime, time_zone: str, notes: str | None = None,
        source: str = "api", external_id: str | None = None, actor_id: UUID | None, now: datetime,
    ) -> Appointment:
        starts, ends, zone = check_times(starts_at, ends_at, time_zone)
        if source not in SOURCES:
            raise AppointmentFieldInvalidError(f"source must be one of {', '.join(SOURCES)}")
        return cls._create(
            cls.Booked, id=appointment_id, workspace_id=workspace_id, contact_id=contact_id, staff_id=staff_id,
            service=check_text("service", service, required=True), location=check_text("location", location),
            starts_at=starts, ends_at=ends, time_zone=zone, notes=check_text("notes", notes), source=source,
            external_id=external_id, actor_id=actor_id, timestamp=now,
        )

    # Commands -----------------------------------------------------------------------------

    def reschedule(
        self, starts_at: datetime, ends_at: datetime, time_zone: str, staff_id: UUID | None, location: str | None,
        actor_id: UUID | None, now: datetime,
    ) -> bool:
        starts, ends, zone = check_times(starts_at, ends_at, time_zone)
        place = check_text("location", location if location is not None else self.location)
        self._require(UPCOMING, "reschedule")
        if (starts, ends, zone, staff_id, place) == (self.starts_at, self.ends_at, self.time_zone, self.staff_id,
                                                     self.location):
            return False  # the same booking again (a re-sent import): nothing changed
        self._trigger(self.Rescheduled, starts_at=starts, ends_at=ends, time_zone=zone, staff_id=staff_id,
                      location=place, actor_id=actor_id, timestamp=now)
        return True

    def cancel(self, reason: str | None, actor_id: UUID | None, now: datetime, via: str = "staff") -> bool:
        if self.status == "cancelled":
            return False
        self._require(UPCOMING, "cancel")
        self._trigger(self.Cancelled, reason=check_text("reason", reason), actor_id=actor_id, via=via, timestamp=now)
        return True

    def confirm(self, via: str, message_id: UUID | None, actor_id: UUID | None, now: datetime) -> bool:
        if self.status == "confirmed":
            return False
        self._require(("booked",), "confirm")
        self._trigger(self.Confirmed, via=via, message_id=message_id, actor_id=actor_id, timestamp=now)
        return True

    def check_in(self, actor_id: UUID | None, now: datetime, via: str = "staff") -> bool:
        if self.status == "checked_in":
            return False
        self._require(UPCOMING, "check in")
        self._trigger(self.CheckedIn, actor_id=actor_id, via=via, timestamp=now)
        return True

    def complete(self, actor_id: UUID | None, now: datetime, via: str = "staff") -> bool:
        if self.status == "completed":
            return False
        self._require((*UPCOMING, "checked_in"), "complete")
        self._trigger(self.Completed, actor_id=actor_id, via=via, timestamp=now)
        return True

    def mark_no_show(self, actor_id: UUID | None, now: datetime, via: str = "staff") -> bool:
        if self.status == "no_show":
            return False
        self._require(UPCOMING, "mark as a no-show")
        self._trigger(self.MarkedNoShow, actor_id=actor_id, via=via, timestamp=now)
        return True

    def record_reminder_sent(
        self, job_key: str, policy_id: UUID, planned_at: datetime, message_id: UUID, conversation_id: UUID,
        channel: str, now: datetime,
    ) -> None:
        self._trigger(self.ReminderSent, job_key=job_key, policy_id=policy_id, planned_at=planned_at,
                      message_id=message_id, conversation_id=conversation_id, channel=channel, timestamp=now)

    def record_reminder_skipped(self, job_key: str, policy_id: UUID, planned_at: datetime, reason: str,
                                now: datetime) -> None:
        self._trigger(self.ReminderSkipped, job_key=job_key, policy_id=policy_id, planned_at=planned_at,
                      reason=reason, timestamp=now)

    def record_write_back(self, change_key: str, status: str, fhir_status: str, http_status: int | None,
                          attempts: int, now: datetime) -> bool:
        """Record once how writing ``change_key`` back to the source ended (2xx: written)."""
        if change_key in self.write_backs:
            return False
        if http_status is not None and 200 <= http_status < 300:
            self._trigger(self.WrittenBack, change_key=change_key, status=status, fhir_status=fhir_status,
                          http_status=http_status, timestamp=now)
        else:
            self._trigger(self.WriteBackFailed, change_key=change_key, status=status, fhir_status=fhir_status,
                          http_status=http_status, attempts=attempts, timestamp=now)
        return True

    # Queries ------------------------------------------------------------------------------

    def local_start(self) -> datetime:
        return self.starts_at.astimezone(ZoneInfo(self.time_zone))

    def _require(self, allowed: tuple[str, ...], action: str) -> None:
        if self.status not in allowed:
            raise AppointmentTransitionInvalidError(f"cannot {action} an appointment that is {self.status}")

    def _trigger(self, event_class: type[Aggregate.Event], **kwargs: Any) -> None:
        self.trigger_event(event_class, workspace_id=self.workspace_id, contact_id=self.contact_id, **kwargs)
