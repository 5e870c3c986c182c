"""Secret calendar feed URLs: a random token per feed, stored only as its SHA-256 digest, revocable.

The URL carries the token alone: nothing about the staff member or their patients."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg.rows import dict_row

from adapters.postgres import Database

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_calendar_feeds (
    feed_id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    workspace_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
"""


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class CalendarFeeds:
    def __init__(self, database: Database) -> None:
        self.database = database

    def setup(self) -> None:
        with self.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def issue(self, workspace_id: UUID, staff_id: UUID, now: datetime) -> tuple[UUID, str]:
        feed_id, token = uuid4(), secrets.token_urlsafe(32)
        with self.database.connection() as conn:
            conn.execute("INSERT INTO commhub_calendar_feeds VALUES (%s, %s, %s, %s, %s, NULL)",
                         (feed_id, digest(token), workspace_id, staff_id, now))
        return feed_id, token

    def resolve(self, token: str) -> tuple[UUID, UUID] | None:
        """(workspace id, staff id) of an unrevoked feed."""
        with self.database.connection() as conn:
            row = conn.execute("SELECT workspace_id, staff_id FROM commhub_calendar_feeds"
                               " WHERE token_hash = %s AND revoked_at IS NULL", (digest(token),)).fetchone()
        return (row[0], row[1]) if row else None

    def list(self, workspace_id: UUID) -> list[dict[str, Any]]:
        with self.database.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute("SELECT feed_id, staff_id, created_at, revoked_at FROM commhub_calendar_feeds"
                                  " WHERE workspace_id = %s ORDER BY created_at", (workspace_id,)).fetchall()

    def revoke(self, workspace_id: UUID, feed_id: UUID, now: datetime) -> bool:
        with self.database.connection() as conn:
            done = conn.execute("UPDATE commhub_calendar_feeds SET revoked_at = COALESCE(revoked_at, %s)"
                                " WHERE workspace_id = %s AND feed_id = %s", (now, workspace_id, feed_id))
            return done.rowcount > 0
