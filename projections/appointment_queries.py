"""Read queries over appointments and reminder jobs, each scoped to a workspace."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

COLUMNS = ("appointment_id, contact_id, staff_id, service, location, notes, starts_at, ends_at, time_zone, status,"
           " source, external_id, confirmed_via, created_at, updated_at")


def list_appointments(
    conn: Any, workspace_id: UUID, *, contact_id: UUID | None = None, staff_id: UUID | None = None,
    starts_from: datetime | None = None, starts_before: datetime | None = None, status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    where, values = ["workspace_id = %s"], [workspace_id]
    for clause, value in (("contact_id = %s", contact_id), ("staff_id = %s", staff_id),
                          ("starts_at >= %s", starts_from), ("starts_at < %s", starts_before), ("status = %s", status)):
        if value is not None:
            where.append(clause)
            values.append(value)
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"SELECT {COLUMNS} FROM commhub_appointments WHERE {' AND '.join(where)}"
            " ORDER BY starts_at, appointment_id LIMIT %s", (*values, limit)).fetchall()


def get_appointment(conn: Any, workspace_id: UUID, appointment_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(f"SELECT {COLUMNS} FROM commhub_appointments WHERE workspace_id = %s"
                              " AND appointment_id = %s", (workspace_id, appointment_id)).fetchone()


def reminder_jobs(conn: Any, workspace_id: UUID, appointment_id: UUID) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT policy_id, planned_at, send_after, status, outcome, finished_at FROM commhub_reminder_jobs"
            " WHERE workspace_id = %s AND appointment_id = %s ORDER BY planned_at", (workspace_id, appointment_id),
        ).fetchall()


def write_backs(conn: Any, workspace_id: UUID, appointment_id: UUID) -> list[dict[str, Any]]:
    """Status changes written (or being written) back to the FHIR system the appointment came from."""
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            "SELECT status, state, attempts, http_status, created_at, finished_at FROM commhub_fhir_writebacks"
            " WHERE workspace_id = %s AND appointment_id = %s ORDER BY created_at", (workspace_id, appointment_id),
        ).fetchall()
