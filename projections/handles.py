"""Keeps the contact handle blind index (HMAC of phone and email → contact) in step with contacts."""

from __future__ import annotations

from typing import Any, Callable
from uuid import UUID

from domain.contact import Contact
from projections.base import View, clear

Digest = Callable[[UUID, str, str], bytes]


class Handles(View):
    """Rows hold digests only; the table itself is created by adapters.handles.HandleIndex."""

    name = "handles"
    ddl = ""
    tables = ("commhub_contact_handles",)
    handlers = {
        Contact.Created: "created",
        Contact.Rectified: "rectified",
        Contact.Merged: "merged",
        Contact.Erased: "erased",
    }

    def __init__(self, digest: Digest, schema_sql: str) -> None:
        self.digest = digest
        self.ddl = schema_sql  # type: ignore[misc]

    def created(self, conn: Any, e: Contact.Created, position: int) -> None:
        for kind in ("phone", "email"):
            self._claim(conn, e.workspace_id, kind, clear(getattr(e, kind)), e.originator_id)

    def rectified(self, conn: Any, e: Contact.Rectified, position: int) -> None:
        changes = clear(e.changes)
        for kind in ("phone", "email"):
            if changes and kind in changes:
                conn.execute("DELETE FROM commhub_contact_handles WHERE contact_id = %s AND kind = %s",
                             (e.originator_id, kind))
                self._claim(conn, e.workspace_id, kind, changes[kind], e.originator_id)

    def merged(self, conn: Any, e: Contact.Merged, position: int) -> None:
        conn.execute("UPDATE commhub_contact_handles SET contact_id = %s WHERE contact_id = %s",
                     (e.originator_id, e.duplicate_id))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("DELETE FROM commhub_contact_handles WHERE contact_id = ANY(%s)", (list(e.subject_ids),))

    def _claim(self, conn: Any, workspace_id: UUID, kind: str, value: Any, contact_id: UUID) -> None:
        if value:
            conn.execute(
                "INSERT INTO commhub_contact_handles (workspace_id, digest, kind, contact_id) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (workspace_id, digest) DO NOTHING",
                (workspace_id, self.digest(workspace_id, kind, value), kind, contact_id),
            )
