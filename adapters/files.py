"""Stored files (attachments), sealed under their data subject's key, in PostgreSQL.

A file's name and type travel (sealed) in the event that mentions it; this table holds only the
sealed bytes, keyed by file id and subject. Erasure deletes the rows (and shredding the key has
already made them unreadable); the retention policy deletes files older than its period.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_files (
    file_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    subject_id uuid NOT NULL,
    size integer NOT NULL,
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_files_by_subject ON commhub_files (subject_id);
CREATE INDEX IF NOT EXISTS commhub_files_by_age ON commhub_files (workspace_id, created_at);
"""
MAX_FILE_BYTES = 5_000_000


def _aad(file_id: UUID) -> bytes:
    return b"commhub/file/v1|" + file_id.bytes


class FileStore:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def setup(self) -> None:
        with self.vault.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def put(self, workspace_id: UUID, subject_id: UUID, data: bytes, now: datetime) -> UUID:
        """Seal and store ``data``; refused (SubjectErasedError) for an erased subject."""
        file_id = uuid4()
        nonce = os.urandom(12)
        sealed = nonce + self.vault.sealer(subject_id, workspace_id).encrypt(nonce, data, _aad(file_id))
        with self.vault.database.connection() as conn:
            conn.execute("INSERT INTO commhub_files VALUES (%s, %s, %s, %s, %s, %s)",
                         (file_id, workspace_id, subject_id, len(data), sealed, now))
        return file_id

    def get(self, workspace_id: UUID, file_id: UUID) -> bytes | None:
        """The file's bytes, or None when it does not exist (any more) or its subject was erased."""
        with self.vault.database.connection() as conn:
            row = conn.execute("SELECT subject_id, sealed FROM commhub_files WHERE workspace_id = %s AND file_id = %s",
                               (workspace_id, file_id)).fetchone()
        if row is None:
            return None
        key = self.vault.opener(row[0])
        if key is None:
            return None
        sealed = bytes(row[1])
        return key.decrypt(sealed[:12], sealed[12:], _aad(file_id))

    def count(self, subject_ids: list[UUID]) -> int:
        with self.vault.database.connection() as conn:
            row = conn.execute("SELECT count(*) FROM commhub_files WHERE subject_id = ANY(%s)", (subject_ids,)).fetchone()
        return int(row[0])


def delete_for_subjects(conn: Any, subject_ids: list[UUID]) -> None:
    conn.execute("DELETE FROM commhub_files WHERE subject_id = ANY(%s)", (subject_ids,))


def delete_older_than(conn: Any, workspace_id: UUID, before: datetime) -> None:
    conn.execute("DELETE FROM commhub_files WHERE workspace_id = %s AND created_at < %s", (workspace_id, before))
