"""Keeps stored files (sealed attachments) in step with erasure and retention: the files of an
erased contact (and of the duplicates merged into it) are deleted, and so are files older than an
expiry of bodies.

The table belongs to ``adapters.sealed_files`` (files are uploads, not derived from events), so a
rebuild never empties it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from adapters.sealed_files import SCHEMA_SQL
from domain.contact import Contact
from domain.privacy import RetentionPolicy
from projections.base import View


class Files(View):
    name = "files"
    ddl = SCHEMA_SQL
    tables = ("commhub_sealed_files",)
    handlers = {Contact.Erased: "erased", RetentionPolicy.BodiesExpired: "expired"}

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        """Files are not derived from events: nothing to empty; replaying deletions again is harmless."""

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("DELETE FROM commhub_sealed_files WHERE subject_id = ANY(%s)", (list(e.subject_ids),))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        conn.execute("DELETE FROM commhub_sealed_files WHERE workspace_id = %s AND created_at < %s",
                     (e.workspace_id, e.before))
