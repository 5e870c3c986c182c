"""Workspaces, their staff (for login and assignment) and canned responses."""

from __future__ import annotations

from typing import Any

from adapters.tokens import NOTIFY_SQL as TOKENS_CHANGED
from domain.workspace import StaffMember, Workspace
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_workspaces (
    workspace_id uuid PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL UNIQUE,
    time_zone text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS commhub_staff (
    staff_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name text,
    email text,
    role text NOT NULL,
    password_hash text,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_staff_by_email ON commhub_staff (workspace_id, lower(email));
CREATE TABLE IF NOT EXISTS commhub_canned_responses (
    response_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_canned_by_workspace ON commhub_canned_responses (workspace_id, title);
"""


class Staff(View):
    name = "staff"
    ddl = DDL
    tables = ("commhub_workspaces", "commhub_staff", "commhub_canned_responses")
    handlers = {
        Workspace.Created: "workspace_created",
        Workspace.Renamed: "workspace_renamed",
        Workspace.CannedResponseSaved: "canned_saved",
        Workspace.CannedResponseDeleted: "canned_deleted",
        StaffMember.Created: "staff_created",
        StaffMember.RoleChanged: "role_changed",
        StaffMember.PasswordChanged: "password_changed",
        StaffMember.Deactivated: "deactivated",
    }

    def workspace_created(self, conn: Any, e: Workspace.Created, position: int) -> None:
        conn.execute("INSERT INTO commhub_workspaces VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (e.originator_id, e.name, e.slug, e.time_zone, e.timestamp))

    def workspace_renamed(self, conn: Any, e: Workspace.Renamed, position: int) -> None:
        conn.execute("UPDATE commhub_workspaces SET name = %s WHERE workspace_id = %s", (e.name, e.originator_id))

    def canned_saved(self, conn: Any, e: Workspace.CannedResponseSaved, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_canned_responses VALUES (%s, %s, %s, %s, %s) ON CONFLICT (response_id)"
            " DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
            (e.response_id, e.originator_id, e.title, e.body, e.timestamp),
        )

    def canned_deleted(self, conn: Any, e: Workspace.CannedResponseDeleted, position: int) -> None:
        conn.execute("DELETE FROM commhub_canned_responses WHERE response_id = %s", (e.response_id,))

    def staff_created(self, conn: Any, e: StaffMember.Created, position: int) -> None:
        email = clear(e.email)
        conn.execute(
            "INSERT INTO commhub_staff VALUES (%s, %s, %s, %s, %s, %s, true, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.workspace_id, clear(e.name), email.lower() if email else None, e.role,
             clear(e.password_hash), e.timestamp),
        )

    def role_changed(self, conn: Any, e: StaffMember.RoleChanged, position: int) -> None:
        conn.execute("UPDATE commhub_staff SET role = %s WHERE staff_id = %s", (e.role, e.originator_id))
        conn.execute(TOKENS_CHANGED)  # cached token lookups carry the role

    def password_changed(self, conn: Any, e: StaffMember.PasswordChanged, position: int) -> None:
        conn.execute("UPDATE commhub_staff SET password_hash = %s WHERE staff_id = %s",
                     (clear(e.password_hash), e.originator_id))

    def deactivated(self, conn: Any, e: StaffMember.Deactivated, position: int) -> None:
        conn.execute("UPDATE commhub_staff SET active = false WHERE staff_id = %s", (e.originator_id,))
        conn.execute(TOKENS_CHANGED)  # and hold only active staff
