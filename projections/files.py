"""Keeps stored files in step with erasure and retention: the file rows of an erased contact (and of
the duplicates merged into it) are deleted, and so are files older than an expiry of bodies.

The table is written by ``adapters.files.FileStore`` (files are uploads, not derived from events), so
a rebuild never empties it.
"""

from __future__ import annotations

from typing import Any

import psycopg

from adapters.files import SCHEMA_SQL, delete_for_subjects, delete_older_than
from domain.contact import Contact
from domain.privacy import RetentionPolicy
from projections.base import View


class Files(View):
    name = "files"
    ddl = SCHEMA_SQL
    tables = ("commhub_files",)
    handlers = {Contact.Erased: "erased", RetentionPolicy.BodiesExpired: "expired"}

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        """Files are not derived from events: nothing to empty; replaying deletions again is harmless."""

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        delete_for_subjects(conn, list(e.subject_ids))

    def expired(self, conn: Any, e: RetentionPolicy.BodiesExpired, position: int) -> None:
        delete_older_than(conn, e.workspace_id, e.before)
