"""Sealed file storage: attachment bytes encrypted under their data subject's key (AES-256-GCM).

Nothing is stored in plaintext; shredding the subject's key makes every file of theirs unreadable.
"""

from __future__ import annotations

import os
from uuid import UUID

from adapters.key_vault import KeyVault
from domain.errors import AttachmentNotFoundError, SubjectErasedError

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_sealed_files (
    file_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    subject_id uuid NOT NULL,
    content_type text NOT NULL,
    size integer NOT NULL,
    sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS commhub_sealed_files_by_subject ON commhub_sealed_files (subject_id);
"""


def associated_data(file_id: UUID, subject_id: UUID) -> bytes:
    """Binds the ciphertext to its file and subject: a sealed file copied elsewhere fails to open."""
    return b"commhub/file/v1|" + file_id.bytes + subject_id.bytes


class SealedFiles:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def setup(self) -> None:
        with self.vault.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def put(self, file_id: UUID, workspace_id: UUID, subject_id: UUID, content_type: str, data: bytes) -> None:
        """Store once: putting the same file id again (a retried delivery) changes nothing."""
        nonce = os.urandom(12)
        sealed = nonce + self.vault.sealer(subject_id, workspace_id).encrypt(
            nonce, data, associated_data(file_id, subject_id))
        with self.vault.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_sealed_files (file_id, workspace_id, subject_id, content_type, size, sealed)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (file_id) DO NOTHING",
                (file_id, workspace_id, subject_id, content_type, len(data), sealed),
            )

    def get(self, file_id: UUID, workspace_id: UUID) -> tuple[str, bytes]:
        """(content type, bytes); ``SubjectErasedError`` once the subject's key is shredded."""
        with self.vault.database.connection() as conn:
            row = conn.execute(
                "SELECT subject_id, content_type, sealed FROM commhub_sealed_files"
                " WHERE file_id = %s AND workspace_id = %s", (file_id, workspace_id),
            ).fetchone()
        if row is None:
            raise AttachmentNotFoundError("attachment not found")
        subject_id, content_type, sealed = row
        key = self.vault.opener(subject_id)
        if key is None:
            raise SubjectErasedError("the attachment's data subject was erased")
        return content_type, key.decrypt(bytes(sealed[:12]), bytes(sealed[12:]), associated_data(file_id, subject_id))
