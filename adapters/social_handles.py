"""The social handle index: HMAC digests of Messenger PSIDs and Instagram IGSIDs (per business
account) → contact id, so an inbound message finds its contact without the id stored in clear.

A table of its own (not the phone/email index) so each index can be rebuilt from its events;
rows follow merges and are deleted on erasure (projections.social_handles).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from adapters.handles import HandleIndex

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_social_handles (
    workspace_id uuid NOT NULL,
    digest bytea NOT NULL,
    kind text NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (workspace_id, digest)
);
CREATE INDEX IF NOT EXISTS commhub_social_handles_by_contact ON commhub_social_handles (contact_id);
"""


class SocialHandleIndex:
    """Same digests as the contact handle index (the workspace's index key), another table."""

    def __init__(self, handles: HandleIndex) -> None:
        self.handles = handles
        self.database = handles.vault.database

    def setup(self) -> None:
        with self.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def digest(self, workspace_id: UUID, kind: str, value: str) -> bytes:
        return self.handles.digest(workspace_id, kind, value)

    def find(self, workspace_id: UUID, kind: str, value: str) -> UUID | None:
        with self.database.connection() as conn:
            row = conn.execute("SELECT contact_id FROM commhub_social_handles WHERE workspace_id = %s AND digest = %s",
                               (workspace_id, self.digest(workspace_id, kind, value))).fetchone()
        return row[0] if row else None

    def claim(self, workspace_id: UUID, kind: str, value: str, contact_id: UUID) -> UUID:
        with self.database.connection() as conn:
            return claim(conn, workspace_id, kind, self.digest(workspace_id, kind, value), contact_id)


def claim(conn: Any, workspace_id: UUID, kind: str, digest: bytes, contact_id: UUID) -> UUID:
    row = conn.execute(
        "INSERT INTO commhub_social_handles (workspace_id, digest, kind, contact_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (workspace_id, digest) DO UPDATE SET kind = EXCLUDED.kind RETURNING contact_id",
        (workspace_id, digest, kind, contact_id),
    ).fetchone()
    return row[0]  # type: ignore[no-any-return]
