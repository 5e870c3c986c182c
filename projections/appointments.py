"""Appointments as staff see them: one row each, for lists, the contact panel and calendar feeds.

``service`` and ``notes`` are personal (sealed in the events); rows are keyed by their contact and
blanked when that contact is erased, while times, status and staff stay.
"""

from __future__ import annotations

from typing import Any

from domain.appointment import Appointment
from domain.contact import Contact
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_appointments (
    appointment_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    staff_id uuid,
    service text,
    location text NOT NULL DEFAULT '',
    notes text,
    starts_at timestamptz NOT NULL,
    ends_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    status text NOT NULL,
    source text NOT NULL,
    external_id text,
    confirmed_via text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_appointments_by_time ON commhub_appointments (workspace_id, starts_at, appointment_id);
CREATE INDEX IF NOT EXISTS commhub_appointments_by_staff ON commhub_appointments (staff_id, starts_at);
CREATE INDEX IF NOT EXISTS commhub_appointments_by_contact ON commhub_appointments (contact_id, starts_at);
"""

STATUS = {
    Appointment.Cancelled: "cancelled", Appointment.Confirmed: "confirmed", Appointment.CheckedIn: "checked_in",
    Appointment.Completed: "completed", Appointment.MarkedNoShow: "no_show",
}


class Appointments(View):
    name = "appointments"
    ddl = DDL
    tables = ("commhub_appointments",)
    handlers = {
        Appointment.Booked: "booked",
        Appointment.Rescheduled: "rescheduled",
        **{kind: "status" for kind in STATUS},
        Contact.Erased: "erased",
    }

    def booked(self, conn: Any, e: Appointment.Booked, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_appointments (appointment_id, workspace_id, contact_id, staff_id, service, location,"
            " notes, starts_at, ends_at, time_zone, status, source, external_id, created_at, updated_at, position)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'booked', %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.workspace_id, e.contact_id, e.staff_id, clear(e.service), e.location, clear(e.notes),
             e.starts_at, e.ends_at, e.time_zone, e.source, e.external_id, e.timestamp, e.timestamp, position),
        )

    def rescheduled(self, conn: Any, e: Appointment.Rescheduled, position: int) -> None:
        self._set(conn, e, position, "starts_at = %s, ends_at = %s, time_zone = %s, staff_id = %s, location = %s,"
                  " status = 'booked', confirmed_via = NULL", e.starts_at, e.ends_at, e.time_zone, e.staff_id,
                  e.location)

    def status(self, conn: Any, e: Any, position: int) -> None:
        via = e.via if isinstance(e, Appointment.Confirmed) else None
        self._set(conn, e, position, "status = %s, confirmed_via = COALESCE(%s, confirmed_via)", STATUS[type(e)], via)

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("UPDATE commhub_appointments SET service = NULL, notes = NULL WHERE contact_id = ANY(%s)",
                     (list(e.subject_ids),))

    @staticmethod
    def _set(conn: Any, e: Any, position: int, assignment: str, *values: Any) -> None:
        conn.execute(
            f"UPDATE commhub_appointments SET {assignment}, updated_at = %s, position = %s"
            " WHERE appointment_id = %s AND position < %s",
            (*values, e.timestamp, position, e.originator_id, position),
        )
