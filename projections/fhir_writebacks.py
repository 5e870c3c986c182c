"""Status changes to write back to the FHIR system an appointment came from: an outbox of changes.

A confirmation, cancellation, check-in, completion or no-show of an appointment booked through the
FHIR webhook queues one row (keyed by the event: appointment id and version), unless the source
itself said so (``via = "source"``: nothing to echo). ``WrittenBack``/``WriteBackFailed`` end the
row for good, so a rebuild from zero never writes twice. A newer change supersedes a pending
older one of the same appointment. Rows hold ids and statuses only, no personal data.
"""

from __future__ import annotations

from typing import Any

from domain.appointment import Appointment
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_fhir_links (
    appointment_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    external_id text NOT NULL
);
CREATE TABLE IF NOT EXISTS commhub_fhir_writebacks (
    change_key text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    appointment_id uuid NOT NULL,
    external_id text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    http_status integer,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS commhub_fhir_writebacks_due ON commhub_fhir_writebacks (due_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS commhub_fhir_writebacks_appointment ON commhub_fhir_writebacks (appointment_id);
"""

CHANGES = {Appointment.Confirmed: "confirmed", Appointment.Cancelled: "cancelled",
           Appointment.CheckedIn: "checked_in", Appointment.Completed: "completed",
           Appointment.MarkedNoShow: "no_show"}


def change_key(appointment_id: Any, version: int) -> str:
    return f"{appointment_id}:{version}"


class FhirWriteBacks(View):
    name = "fhir_writebacks"
    ddl = DDL
    tables = ("commhub_fhir_writebacks", "commhub_fhir_links")
    handlers = {
        Appointment.Booked: "booked",
        **{kind: "changed" for kind in CHANGES},
        Appointment.WrittenBack: "finished",
        Appointment.WriteBackFailed: "finished",
    }

    def booked(self, conn: Any, e: Appointment.Booked, position: int) -> None:
        if e.source == "fhir" and e.external_id:
            conn.execute("INSERT INTO commhub_fhir_links VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (e.originator_id, e.workspace_id, e.external_id))

    def changed(self, conn: Any, e: Any, position: int) -> None:
        if e.via == "source":
            return
        link = conn.execute("SELECT external_id FROM commhub_fhir_links WHERE appointment_id = %s",
                            (e.originator_id,)).fetchone()
        if link is None:
            return
        conn.execute("UPDATE commhub_fhir_writebacks SET state = 'superseded', finished_at = %s"
                     " WHERE appointment_id = %s AND state = 'pending'", (e.timestamp, e.originator_id))
        conn.execute(
            "INSERT INTO commhub_fhir_writebacks (change_key, workspace_id, appointment_id, external_id, status,"
            " created_at, due_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (change_key(e.originator_id, e.originator_version), e.workspace_id, e.originator_id, link[0],
             CHANGES[type(e)], e.timestamp, e.timestamp))

    def finished(self, conn: Any, e: Any, position: int) -> None:
        written = isinstance(e, Appointment.WrittenBack)
        conn.execute(
            "UPDATE commhub_fhir_writebacks SET state = %s, http_status = %s, finished_at = %s,"
            " attempts = GREATEST(attempts, %s) WHERE change_key = %s",
            ("written" if written else "failed", e.http_status, e.timestamp, 1 if written else e.attempts,
             e.change_key))
