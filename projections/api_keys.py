"""API keys as rows: the digest of each key, its scopes and whether it was revoked, for resolving
``Authorization: Bearer chk_…`` on every request and for listing keys (never their secrets).

The API also writes the row of a key it just issued or revoked (the same values the events give),
so a revocation holds in every process at once, before the projection catches up. When a key was
last used is working state in a table of its own, kept across rebuilds.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from adapters.postgres import Database
from adapters.tokens import Principal
from domain.integrations import ApiKey
from projections.base import View

KEY_PREFIX = "chk_"
ROLE = "api_key"
USAGE_GRANULARITY = timedelta(seconds=60)
DDL = """
CREATE TABLE IF NOT EXISTS commhub_api_keys (
    key_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    scopes text[] NOT NULL,
    key_digest text NOT NULL UNIQUE,
    hint text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by uuid,
    revoked_at timestamptz,
    revoked_by uuid
);
CREATE INDEX IF NOT EXISTS commhub_api_keys_by_workspace ON commhub_api_keys (workspace_id, created_at);
CREATE TABLE IF NOT EXISTS commhub_api_key_usage (
    key_id uuid PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
"""
INSERT = ("INSERT INTO commhub_api_keys (key_id, workspace_id, name, scopes, key_digest, hint, created_at, created_by)"
          " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")  # any key: the projection may race us
REVOKE = ("UPDATE commhub_api_keys SET revoked_at = %s, revoked_by = %s WHERE key_id = %s AND revoked_at IS NULL")


def new_secret() -> str:
    """A key: the recognisable prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _issued_row(e: ApiKey.Issued) -> tuple[Any, ...]:
    return (e.originator_id, e.workspace_id, e.name, e.scopes, e.key_digest, e.hint, e.timestamp, e.actor_id)


class ApiKeys(View):
    name = "api_keys"
    ddl = DDL
    tables = ("commhub_api_keys",)
    kept = ("commhub_api_key_usage",)  # when each key was last used: recorded by requests, not events
    handlers = {ApiKey.Issued: "issued", ApiKey.Revoked: "revoked"}

    def issued(self, conn: Any, e: ApiKey.Issued, position: int) -> None:
        conn.execute(INSERT, _issued_row(e))

    def revoked(self, conn: Any, e: ApiKey.Revoked, position: int) -> None:
        conn.execute(REVOKE, (e.timestamp, e.actor_id, e.originator_id))


class ApiKeyStore:
    """Resolves keys on each request and writes the rows of keys the API just issued or revoked."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def resolve(self, secret: str, now: datetime) -> Principal | None:
        if not secret.startswith(KEY_PREFIX):
            return None
        with self.database.connection() as conn:
            row = conn.execute("SELECT key_id, workspace_id, scopes FROM commhub_api_keys"
                               " WHERE key_digest = %s AND revoked_at IS NULL", (key_digest(secret),)).fetchone()
            if row is None:
                return None
            conn.execute(
                "INSERT INTO commhub_api_key_usage VALUES (%s, %s) ON CONFLICT (key_id) DO UPDATE"
                " SET last_used_at = EXCLUDED.last_used_at WHERE commhub_api_key_usage.last_used_at < %s",
                (row[0], now, now - USAGE_GRANULARITY))
        return Principal(staff_id=row[0], workspace_id=row[1], role=ROLE, api_key_id=row[0],
                         scopes=frozenset(row[2]))

    def record_issued(self, key: ApiKey, actor_id: UUID | None) -> None:
        with self.database.connection() as conn:
            conn.execute(INSERT, (key.id, key.workspace_id, key.name, key.scopes, key.key_digest, key.hint,
                                  key.created_on, actor_id))

    def record_revoked(self, key_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute(REVOKE, (now, actor_id, key_id))


def list_keys(conn: Any, workspace_id: UUID) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT k.key_id, k.name, k.scopes, k.hint, k.created_at, k.created_by, u.last_used_at, k.revoked_at,"
        " k.revoked_by FROM commhub_api_keys k LEFT JOIN commhub_api_key_usage u ON u.key_id = k.key_id"
        " WHERE k.workspace_id = %s ORDER BY k.created_at DESC, k.key_id", (workspace_id,)).fetchall()
    names = ("key_id", "name", "scopes", "hint", "created_at", "created_by", "last_used_at", "revoked_at",
             "revoked_by")
    return [dict(zip(names, row)) for row in rows]


def get_key(conn: Any, workspace_id: UUID, key_id: UUID) -> dict[str, Any] | None:
    return next((k for k in list_keys(conn, workspace_id) if k["key_id"] == key_id), None)
