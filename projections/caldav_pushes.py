"""Which staff calendars may need a push: one row per appointment and staff member it was ever
assigned to, flagged due (``due_at``) by every event that changes what that calendar should hold.

The row says *that* something changed, never *what*: the CalDAV worker reads the appointment as it
is when it pushes, so the latest state always wins, however late or often a push is retried. A
reassignment flags the old staff member's row (the worker deletes their event) and adds the new
one's; an erasure of the contact flags all their rows (the worker deletes those events). Rows hold
ids only. ``due_at`` and ``leased_until`` are the worker's working state: a rebuild flags every row
due once, and the worker then finds each calendar already up to date without calling it.
"""

from __future__ import annotations

from typing import Any

from domain.appointment import Appointment
from domain.contact import Contact
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_caldav_pushes (
    appointment_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    changes integer NOT NULL DEFAULT 1,
    erased boolean NOT NULL DEFAULT false,
    changed_at timestamptz NOT NULL,
    due_at timestamptz,
    leased_until timestamptz,
    PRIMARY KEY (appointment_id, staff_id)
);
CREATE INDEX IF NOT EXISTS commhub_caldav_pushes_due ON commhub_caldav_pushes (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS commhub_caldav_pushes_staff ON commhub_caldav_pushes (staff_id);
CREATE INDEX IF NOT EXISTS commhub_caldav_pushes_contact ON commhub_caldav_pushes (contact_id);
CREATE INDEX IF NOT EXISTS commhub_caldav_pushes_workspace ON commhub_caldav_pushes (workspace_id, changed_at);
"""
FLAG = "changes = changes + 1, changed_at = %s, due_at = %s"


class CaldavPushes(View):
    name = "caldav_pushes"
    ddl = DDL
    tables = ("commhub_caldav_pushes",)
    handlers = {
        Appointment.Booked: "booked",
        Appointment.Rescheduled: "rescheduled",
        Appointment.Cancelled: "changed",
        Appointment.Confirmed: "changed",
        Appointment.CheckedIn: "changed",
        Appointment.Completed: "changed",
        Appointment.MarkedNoShow: "changed",
        Contact.Rectified: "contact_changed",
        Contact.Erased: "erased",
    }

    def booked(self, conn: Any, e: Appointment.Booked, position: int) -> None:
        if e.staff_id is not None:
            self._add(conn, e, e.staff_id)

    def rescheduled(self, conn: Any, e: Appointment.Rescheduled, position: int) -> None:
        self.changed(conn, e, position)
        if e.staff_id is not None:
            self._add(conn, e, e.staff_id)

    def changed(self, conn: Any, e: Any, position: int) -> None:
        conn.execute(f"UPDATE commhub_caldav_pushes SET {FLAG} WHERE appointment_id = %s",
                     (e.timestamp, e.timestamp, e.originator_id))

    def contact_changed(self, conn: Any, e: Contact.Rectified, position: int) -> None:
        """A new display name reaches calendars where the workspace includes it (the worker decides)."""
        conn.execute(f"UPDATE commhub_caldav_pushes SET {FLAG} WHERE contact_id = %s",
                     (e.timestamp, e.timestamp, e.originator_id))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute(f"UPDATE commhub_caldav_pushes SET {FLAG}, erased = true WHERE contact_id = ANY(%s)",
                     (e.timestamp, e.timestamp, list(e.subject_ids)))

    @staticmethod
    def _add(conn: Any, e: Any, staff_id: Any) -> None:
        conn.execute(
            "INSERT INTO commhub_caldav_pushes (appointment_id, staff_id, workspace_id, contact_id, changed_at, due_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, staff_id, e.workspace_id, e.contact_id, e.timestamp, e.timestamp))
