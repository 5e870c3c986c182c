"""Erasure requests and their status, for listing and for resuming those a crash left half-way."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from domain.privacy import ErasureRequest
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_erasures (
    erasure_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    reason text NOT NULL,
    status text NOT NULL,
    requested_by uuid,
    requested_at timestamptz NOT NULL,
    completed_at timestamptz,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_erasures_by_workspace ON commhub_erasures (workspace_id, requested_at DESC);
CREATE INDEX IF NOT EXISTS commhub_erasures_pending ON commhub_erasures (status) WHERE status IN ('requested', 'shredded');
"""


class Erasures(View):
    name = "erasures"
    ddl = DDL
    tables = ("commhub_erasures",)
    handlers = {
        ErasureRequest.Requested: "requested",
        ErasureRequest.Refused: "status",
        ErasureRequest.KeysShredded: "status",
        ErasureRequest.Completed: "status",
    }

    def requested(self, conn: Any, e: ErasureRequest.Requested, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_erasures VALUES (%s, %s, %s, %s, 'requested', %s, %s, NULL, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.workspace_id, e.contact_id, e.reason, e.requested_by, e.timestamp, position),
        )

    def status(self, conn: Any, e: Any, position: int) -> None:
        status = {ErasureRequest.Refused: "refused", ErasureRequest.KeysShredded: "shredded",
                  ErasureRequest.Completed: "completed"}[type(e)]
        conn.execute(
            "UPDATE commhub_erasures SET status = %s, position = %s,"
            " completed_at = CASE WHEN %s = 'completed' THEN %s ELSE completed_at END"
            " WHERE erasure_id = %s AND position < %s",
            (status, position, status, e.timestamp, e.originator_id, position),
        )


def list_erasures(conn: Any, workspace_id: UUID, limit: int = 100) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT erasure_id, contact_id, reason, status, requested_by, requested_at, completed_at"
        " FROM commhub_erasures WHERE workspace_id = %s ORDER BY requested_at DESC LIMIT %s", (workspace_id, limit),
    ).fetchall()


def pending_erasures(conn: Any) -> list[tuple[UUID, UUID]]:
    """(workspace id, erasure id) of requests that have not finished."""
    return conn.execute(
        "SELECT workspace_id, erasure_id FROM commhub_erasures WHERE status IN ('requested', 'shredded')"
        " ORDER BY requested_at"
    ).fetchall()
