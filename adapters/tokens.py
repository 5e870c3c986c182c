"""Bearer tokens for staff sessions: random, stored only as SHA-256 digests, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from adapters.postgres import Database

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_auth_tokens (
    token_hash bytea PRIMARY KEY,
    workspace_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS commhub_auth_tokens_by_staff ON commhub_auth_tokens (staff_id);
"""

TOKEN_LIFETIME = timedelta(hours=12)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a staff member of one workspace, with one role, or an API key with scopes."""

    staff_id: UUID
    workspace_id: UUID
    role: str
    api_key_id: UUID | None = None  # an integration's API key: then staff_id is the key id too
    scopes: frozenset[str] = frozenset()

    @property
    def via(self) -> str:
        return "api" if self.api_key_id is None else "api_key"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def setup(self) -> None:
        with self.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def issue(self, workspace_id: UUID, staff_id: UUID, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_auth_tokens VALUES (%s, %s, %s, %s, %s, NULL)",
                (digest(token), workspace_id, staff_id, now, now + TOKEN_LIFETIME),
            )
        return token

    def resolve(self, token: str, now: datetime) -> Principal | None:
        """The active staff member holding this token, if it is valid, unexpired and unrevoked."""
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT t.staff_id, t.workspace_id, s.role FROM commhub_auth_tokens t"
                " JOIN commhub_staff s ON s.staff_id = t.staff_id AND s.workspace_id = t.workspace_id"
                " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > %s AND s.active",
                (digest(token), now),
            ).fetchone()
        return Principal(*row) if row else None

    def revoke(self, token: str, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_auth_tokens SET revoked_at = %s WHERE token_hash = %s AND revoked_at IS NULL",
                         (now, digest(token)))

    def revoke_all(self, staff_id: UUID, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_auth_tokens SET revoked_at = %s WHERE staff_id = %s AND revoked_at IS NULL",
                         (now, staff_id))
