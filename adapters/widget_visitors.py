"""Web chat visitors: random visitor tokens stored only as SHA-256 digests, verified host-site user ids
stored only as HMAC digests (a blind index), and which workspaces have an agent online.

These are operational rows, like staff sessions; the ``widget_visitors`` projection deletes a
contact's rows when the contact is erased.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_widget_visitors (
    token_hash bytea PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    verified boolean NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_widget_visitors_by_contact ON commhub_widget_visitors (contact_id);
CREATE TABLE IF NOT EXISTS commhub_widget_identities (
    workspace_id uuid NOT NULL,
    digest bytea NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (workspace_id, digest)
);
CREATE INDEX IF NOT EXISTS commhub_widget_identities_by_contact ON commhub_widget_identities (contact_id);
CREATE TABLE IF NOT EXISTS commhub_agent_presence (
    connection_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    seen_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_agent_presence_by_workspace ON commhub_agent_presence (workspace_id, seen_at);
"""

VISITOR_TOKEN_IDLE = timedelta(days=180)
PRESENCE_FRESH = timedelta(seconds=45)
PRESENCE_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class Visitor:
    contact_id: UUID
    verified: bool


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class VisitorStore:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault
        self.database = vault.database
        self._online: dict[UUID, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    # Visitor tokens --------------------------------------------------------------------------

    def issue(self, workspace_id: UUID, contact_id: UUID, verified: bool, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        with self.database.connection() as conn:
            conn.execute("INSERT INTO commhub_widget_visitors VALUES (%s, %s, %s, %s, %s, %s)",
                         (_digest(token), workspace_id, contact_id, verified, now, now))
        return token

    def resolve(self, workspace_id: UUID, token: str, now: datetime) -> Visitor | None:
        """The visitor holding ``token`` in this workspace, unless unknown, idle too long or erased."""
        with self.database.connection() as conn:
            row = conn.execute(
                "UPDATE commhub_widget_visitors SET last_seen_at = %s WHERE token_hash = %s AND workspace_id = %s"
                " AND last_seen_at > %s RETURNING contact_id, verified",
                (now, _digest(token), workspace_id, now - VISITOR_TOKEN_IDLE),
            ).fetchone()
        return Visitor(row[0], row[1]) if row else None

    # Verified identities (blind index) --------------------------------------------------------

    def identity_digest(self, workspace_id: UUID, user_id: str) -> bytes:
        return hmac.new(self.vault.index_key(workspace_id), f"widget-user:{user_id}".encode(), hashlib.sha256).digest()

    def identity_contact(self, workspace_id: UUID, user_id: str) -> UUID | None:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT contact_id FROM commhub_widget_identities WHERE workspace_id = %s AND digest = %s",
                (workspace_id, self.identity_digest(workspace_id, user_id)),
            ).fetchone()
        return row[0] if row else None

    def contact_for_identity(self, workspace_id: UUID, user_id: str, candidate: UUID) -> UUID:
        """The contact of this host-site user: the one recorded before, else ``candidate`` (claimed now)."""
        with self.database.connection() as conn:
            row = conn.execute(
                "INSERT INTO commhub_widget_identities (workspace_id, digest, contact_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (workspace_id, digest) DO UPDATE SET contact_id = commhub_widget_identities.contact_id"
                " RETURNING contact_id",
                (workspace_id, self.identity_digest(workspace_id, user_id), candidate),
            ).fetchone()
        return row[0]

    def forget_identity(self, workspace_id: UUID, user_id: str, contact_id: UUID) -> None:
        """Undo a claim whose contact could not be created (so the next attempt starts afresh)."""
        with self.database.connection() as conn:
            conn.execute("DELETE FROM commhub_widget_identities WHERE workspace_id = %s AND digest = %s"
                         " AND contact_id = %s", (workspace_id, self.identity_digest(workspace_id, user_id), contact_id))

    # Agent presence ----------------------------------------------------------------------------

    def agent_seen(self, connection_id: UUID, workspace_id: UUID, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_agent_presence VALUES (%s, %s, %s)"
                " ON CONFLICT (connection_id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                (connection_id, workspace_id, now),
            )
        with self._lock:
            self._online.pop(workspace_id, None)

    def agent_left(self, connection_id: UUID) -> None:
        with self.database.connection() as conn:
            row = conn.execute("DELETE FROM commhub_agent_presence WHERE connection_id = %s RETURNING workspace_id",
                               (connection_id,)).fetchone()
        if row:
            with self._lock:
                self._online.pop(row[0], None)

    def agents_online(self, workspace_id: UUID, now: datetime) -> bool:
        """Whether any agent socket of the workspace (on any server) was alive recently; cached a few seconds."""
        with self._lock:
            cached = self._online.get(workspace_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self.database.connection() as conn:
            online = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM commhub_agent_presence WHERE workspace_id = %s AND seen_at > %s)",
                (workspace_id, now - PRESENCE_FRESH),
            ).fetchone()[0]
        with self._lock:
            self._online[workspace_id] = (bool(online), time.monotonic() + PRESENCE_CACHE_SECONDS)
        return bool(online)
