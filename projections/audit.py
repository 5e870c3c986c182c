"""The audit log as a table to query (by actor, subject, action, time), newest first.

Rows hold ids, route names and counts only. The hash chain itself is verified over the stored
events (``adapters.audit_log``); this table is a rebuildable index of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from domain.audit import AuditEntry
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_audit (
    position bigint PRIMARY KEY,
    workspace_id uuid NOT NULL,
    version bigint NOT NULL,
    at timestamptz NOT NULL,
    action text NOT NULL,
    actor_id uuid,
    via text NOT NULL,
    subject_ids uuid[] NOT NULL DEFAULT '{}',
    target_id uuid,
    route text,
    count integer,
    outcome text NOT NULL,
    previous_hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_audit_by_workspace ON commhub_audit (workspace_id, position DESC);
CREATE INDEX IF NOT EXISTS commhub_audit_by_actor ON commhub_audit (workspace_id, actor_id, position DESC);
CREATE INDEX IF NOT EXISTS commhub_audit_by_subject ON commhub_audit USING gin (subject_ids);
"""
COLUMNS = ("position, version, at, action, actor_id, via, subject_ids, target_id, route, count, outcome,"
           " previous_hash")


class Audit(View):
    name = "audit"
    ddl = DDL
    tables = ("commhub_audit",)
    handlers = {AuditEntry: "entry"}

    def entry(self, conn: Any, e: AuditEntry, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_audit VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (position) DO NOTHING",
            (position, e.workspace_id, e.originator_version, e.timestamp, e.action, e.actor_id, e.via,
             list(e.subject_ids), e.target_id, e.route, e.count, e.outcome, e.previous_hash),
        )


def list_entries(
    conn: Any, workspace_id: UUID, *, actor_id: UUID | None = None, subject_id: UUID | None = None,
    action: str | None = None, since: datetime | None = None, until: datetime | None = None,
    before: int | None = None, limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """Entries newest first; the second value is the ``before`` cursor of the next page, if any."""
    where, params = ["workspace_id = %s"], [workspace_id]
    for clause, value in (("actor_id = %s", actor_id), ("subject_ids @> ARRAY[%s]::uuid[]", subject_id),
                          ("action = %s", action), ("at >= %s", since), ("at < %s", until),
                          ("position < %s", before)):
        if value is not None:
            where.append(clause)
            params.append(value)
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS} FROM commhub_audit WHERE {' AND '.join(where)} ORDER BY position DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1]["position"] if more else None
