"""The contact handle index: HMAC digests of phone numbers and emails → contact id (a blind index).

It lets inbound messages find their contact without storing the number or address in clear.
Rows are deleted when the contact is erased.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from uuid import UUID

from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_contact_handles (
    workspace_id uuid NOT NULL,
    digest bytea NOT NULL,
    kind text NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (workspace_id, digest)
);
CREATE INDEX IF NOT EXISTS commhub_contact_handles_by_contact ON commhub_contact_handles (contact_id);
"""


class HandleIndex:
    """Blind index over contact handles, keyed per workspace by a key held in the vault."""

    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def setup(self) -> None:
        with self.vault.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def digest(self, workspace_id: UUID, kind: str, value: str) -> bytes:
        normalised = value.strip().lower() if kind == "email" else value.strip()
        return hmac.new(self.vault.index_key(workspace_id), f"{kind}:{normalised}".encode(), hashlib.sha256).digest()

    def find(self, workspace_id: UUID, kind: str, value: str) -> UUID | None:
        with self.vault.database.connection(autocommit=True) as conn:  # one statement: no BEGIN/COMMIT trips
            row = conn.execute(
                "SELECT contact_id FROM commhub_contact_handles WHERE workspace_id = %s AND digest = %s",
                (workspace_id, self.digest(workspace_id, kind, value)),
            ).fetchone()
        return row[0] if row else None

    def claim(self, workspace_id: UUID, kind: str, value: str, contact_id: UUID) -> UUID:
        with self.vault.database.connection(autocommit=True) as conn:
            return claim(conn, workspace_id, kind, self.digest(workspace_id, kind, value), contact_id)


def claim(conn: Any, workspace_id: UUID, kind: str, digest: bytes, contact_id: UUID) -> UUID:
    """Insert the handle unless present; return whoever owns it now."""
    row = conn.execute(
        "INSERT INTO commhub_contact_handles (workspace_id, digest, kind, contact_id) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (workspace_id, digest) DO UPDATE SET kind = EXCLUDED.kind"
        " RETURNING contact_id",
        (workspace_id, digest, kind, contact_id),
    ).fetchone()
    return row[0]
