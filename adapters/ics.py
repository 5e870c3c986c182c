"""iCalendar (RFC 5545): a staff member's appointments as a feed, and .ics files read as bookings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event

from domain.calendar_sync import CalendarEvent

PRODUCT = "-//commhub//appointments//EN"
STATUS_TO_ICS = {"cancelled": "CANCELLED", "confirmed": "CONFIRMED", "checked_in": "CONFIRMED",
                 "completed": "CONFIRMED", "booked": "TENTATIVE", "no_show": "CANCELLED"}
ICS_TO_STATUS = {"CANCELLED": "cancelled", "CONFIRMED": "confirmed", "TENTATIVE": "booked"}
MAX_EVENTS = 1_000


class CalendarInvalidError(ValueError):
    """The uploaded calendar cannot be read as appointments."""


@dataclass(frozen=True)
class CalendarEntry:
    uid: str
    service: str
    location: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    status: str
    email: str | None
    phone: str | None
    name: str | None


def feed(name: str, appointments: Iterable[dict[str, Any]], now: datetime) -> bytes:
    """One VEVENT per appointment; the summary names the service only, never the patient."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    for row in appointments:
        event = Event()
        event.add("uid", f"{row['appointment_id']}@commhub")
        event.add("dtstamp", now.astimezone(timezone.utc))
        event.add("dtstart", row["starts_at"].astimezone(ZoneInfo(row["time_zone"])))
        event.add("dtend", row["ends_at"].astimezone(ZoneInfo(row["time_zone"])))
        event.add("summary", row["service"] or "Appointment")
        if row["location"]:
            event.add("location", row["location"])
        event.add("status", STATUS_TO_ICS.get(row["status"], "TENTATIVE"))
        event.add("last-modified", row["updated_at"].astimezone(timezone.utc))
        calendar.add_component(event)
    return calendar.to_ical()  # type: ignore[no-any-return]


def read(data: bytes, default_zone: str) -> list[CalendarEntry]:
    try:
        calendar = Calendar.from_ical(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError) as error:
        raise CalendarInvalidError(f"not an iCalendar file ({type(error).__name__})") from None
    zone = str(calendar.get("x-wr-timezone") or default_zone)
    events = list(calendar.walk("VEVENT"))
    if not events or len(events) > MAX_EVENTS:
        raise CalendarInvalidError(f"the calendar must hold 1-{MAX_EVENTS} events")
    return [_entry(event, zone, index) for index, event in enumerate(events, 1)]


def _entry(event: Any, default_zone: str, index: int) -> CalendarEntry:
    try:
        start, end = event.decoded("dtstart"), event.decoded("dtend")
    except (KeyError, ValueError, TypeError):
        raise CalendarInvalidError(f"event {index} needs DTSTART and DTEND") from None
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise CalendarInvalidError(f"event {index} is all-day; appointments need a start and end time")
    zone = _zone(start, default_zone)
    if start.tzinfo is None:
        start, end = start.replace(tzinfo=ZoneInfo(zone)), end.replace(tzinfo=ZoneInfo(zone))
    uid = str(event.get("uid") or "").strip()
    if not uid or len(uid) > 200:
        raise CalendarInvalidError(f"event {index} needs a UID of at most 200 characters")
    email, phone, name = _attendee(event)
    if email is None and phone is None:
        raise CalendarInvalidError(f"event {index} needs an ATTENDEE with a mailto: or tel: address")
    return CalendarEntry(
        uid=uid, service=str(event.get("summary") or "Appointment")[:200], location=str(event.get("location") or "")[:200],
        starts_at=start, ends_at=end, time_zone=zone,
        status=ICS_TO_STATUS.get(str(event.get("status") or "").upper(), "booked"), email=email, phone=phone,
        name=name,
    )


def _zone(start: datetime, default_zone: str) -> str:
    key = getattr(start.tzinfo, "key", None) or getattr(start.tzinfo, "zone", None)
    if key:
        try:
            ZoneInfo(str(key))
            return str(key)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return default_zone


def _attendee(event: Any) -> tuple[str | None, str | None, str | None]:
    attendees = event.get("attendee")
    for attendee in attendees if isinstance(attendees, list) else [attendees] if attendees else []:
        address, name = str(attendee), attendee.params.get("CN") if hasattr(attendee, "params") else None
        lowered = address.lower()
        if lowered.startswith("mailto:"):
            return address[7:].strip(), None, name
        if lowered.startswith("tel:"):
            return None, address[4:].strip(), name
    return None, None, None




# One event for a staff member's own calendar (CalDAV) -------------------------------------------

OWNED_PROPERTIES = ("dtstamp", "dtstart", "dtend", "duration", "summary", "location", "status", "sequence",
                    "description", "last-modified")
"""What commhub writes in an event it pushed; everything else (alarms, categories, a colour the
staff member chose) belongs to the calendar and is kept when commhub updates the event."""


def calendar_object(event: CalendarEvent, now: datetime) -> bytes:
    """A VCALENDAR holding one VEVENT, as PUT to ``{collection}/{name}.ics``. Times are in UTC."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT)
    calendar.add("version", "2.0")
    vevent = Event()
    vevent.add("uid", event.uid)
    _set_owned(vevent, event, now, 0)
    calendar.add_component(vevent)
    return calendar.to_ical()  # type: ignore[no-any-return]


def merged_object(remote: bytes, event: CalendarEvent, now: datetime) -> bytes:
    """Our event written over the calendar's current copy: our properties replaced, the rest kept.
    A copy that is not one VEVENT with our UID is replaced whole."""
    try:
        calendar = Calendar.from_ical(remote.decode("utf-8"))
        [vevent] = [c for c in calendar.subcomponents if c.name == "VEVENT"]
        if str(vevent.get("uid")) != event.uid:
            raise ValueError("another event")
        sequence = int(vevent.get("sequence", 0))
    except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return calendar_object(event, now)
    _set_owned(vevent, event, now, sequence)
    return calendar.to_ical()  # type: ignore[no-any-return]


def _set_owned(vevent: Any, event: CalendarEvent, now: datetime, their_sequence: int) -> None:
    for name in OWNED_PROPERTIES:
        vevent.pop(name, None)
    stamp = now.astimezone(timezone.utc)
    vevent.add("dtstamp", stamp)
    vevent.add("last-modified", stamp)
    vevent.add("dtstart", event.starts_at.astimezone(timezone.utc))
    vevent.add("dtend", event.ends_at.astimezone(timezone.utc))
    vevent.add("summary", event.summary)
    if event.location:
        vevent.add("location", event.location)
    vevent.add("status", STATUS_TO_ICS.get(event.status, "TENTATIVE"))
    vevent.add("sequence", max(event.sequence, their_sequence))
    vevent.add("description", event.description)
