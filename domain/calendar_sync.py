"""What a staff member's own calendar (CalDAV) should hold for one appointment: an event with the
least data that lets them plan their day, or nothing at all. Pure functions over plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

SUMMARY = "Appointment"
FORMAT = 1  # bump when the pushed content changes shape, so every synced event is pushed again


@dataclass(frozen=True)
class CalendarEvent:
    """The VEVENT commhub owns in someone's calendar. No service (it may reveal health details), no
    notes, no phone: the contact's display name only when the workspace chose to include it."""

    uid: str
    summary: str
    location: str
    starts_at: datetime
    ends_at: datetime
    status: str  # the appointment's status (booked, confirmed, …)
    sequence: int
    description: str


@dataclass(frozen=True)
class AppointmentState:
    """The appointment as it is now (not as some event once said): the latest state always wins."""

    appointment_id: UUID
    staff_id: UUID | None
    status: str
    starts_at: datetime
    ends_at: datetime
    location: str
    revision: int


def resource_name(appointment_id: UUID, staff_id: UUID) -> str:
    """The event's stable name in a calendar, used as its UID and file name (``{name}.ics``). It names
    the staff member too, so moving an appointment between two people who share one calendar is a
    delete and a create of two different events, in any order."""
    return f"{appointment_id}-{staff_id}"


def desired_event(appointment: AppointmentState, staff_id: UUID, *, contact_erased: bool,
                  contact_name: str | None) -> CalendarEvent | None:
    """The event ``staff_id``'s calendar should hold for this appointment, or None: it is someone
    else's now, cancelled, or its contact was erased."""
    if appointment.staff_id != staff_id or appointment.status == "cancelled" or contact_erased:
        return None
    name = (contact_name or "").strip()
    return CalendarEvent(
        uid=f"{resource_name(appointment.appointment_id, staff_id)}@commhub",
        summary=f"{SUMMARY}: {name}" if name else SUMMARY,
        location=appointment.location,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        status=appointment.status,
        sequence=appointment.revision,
        description=f"commhub appointment {appointment.appointment_id}",
    )


def pushed_key(appointment_version: int, contact_version: int | None) -> str:
    """What the calendar was last given, in versions (no content): equal keys need no push."""
    return f"{FORMAT}/{appointment_version}/{contact_version if contact_version is not None else '-'}"


def worth_creating(event: CalendarEvent, now: datetime) -> bool:
    """An appointment that ended before its calendar was connected is not added to it afterwards."""
    return event.ends_at > now
