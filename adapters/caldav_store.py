"""Staff calendars connected over CalDAV: each staff member's collection URL, username and password,
the workspace's choice of what goes into pushed events, and what each calendar holds now.

The connection (URL, username, password together) is sealed with AES-256-GCM under a key-vault data
key of its own per staff member, bound to the workspace and staff member by the associated data: it
is never in an event, a log line or an API answer (the password is write-only; URL and username are
shown to the staff member and their admins). Sync rows hold ids, versions, ETags and HTTP statuses.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from psycopg.rows import dict_row

from adapters.caldav import CaldavAccount
from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_caldav_connections (
    staff_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    sealed bytea NOT NULL,
    connected_at timestamptz NOT NULL,
    connected_by uuid
);
CREATE INDEX IF NOT EXISTS commhub_caldav_connections_workspace ON commhub_caldav_connections (workspace_id);
CREATE TABLE IF NOT EXISTS commhub_caldav_settings (
    workspace_id uuid PRIMARY KEY,
    include_contact_name boolean NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS commhub_caldav_sync (
    appointment_id uuid NOT NULL,
    staff_id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    state text NOT NULL,
    etag text,
    pushed_key text,
    attempts integer NOT NULL DEFAULT 0,
    conflicts integer NOT NULL DEFAULT 0,
    http_status integer,
    attempted_at timestamptz NOT NULL,
    synced_at timestamptz,
    PRIMARY KEY (appointment_id, staff_id)
);
CREATE INDEX IF NOT EXISTS commhub_caldav_sync_staff ON commhub_caldav_sync (staff_id);
CREATE INDEX IF NOT EXISTS commhub_caldav_sync_failed ON commhub_caldav_sync (workspace_id) WHERE state = 'failed';
"""
MAX_SECRET = 1_000
LOOPBACK_NAMES = ("localhost",)
# A claimed push row done with, unless the projection flagged it again meanwhile (then it stays due):
RELEASE = ("UPDATE commhub_caldav_pushes SET leased_until = NULL, due_at = CASE WHEN changes = %s THEN NULL"
           " ELSE due_at END WHERE appointment_id = %s AND staff_id = %s")
RETRY = "UPDATE commhub_caldav_pushes SET leased_until = NULL, due_at = %s WHERE appointment_id = %s AND staff_id = %s"


class CaldavSettingInvalidError(ValueError):
    """The collection URL, username or password cannot be used."""


@dataclass(frozen=True)
class Connection:
    workspace_id: UUID
    staff_id: UUID
    account: CaldavAccount
    connected_at: datetime


@dataclass(frozen=True)
class SyncRow:
    state: str  # synced, deleted, retrying, failed, skipped
    etag: str | None
    pushed_key: str | None
    attempts: int
    conflicts: int


def connection_subject(staff_id: UUID) -> UUID:
    """The key-vault subject whose data key seals this staff member's connection."""
    return uuid5(staff_id, "caldav-connection")


def associated_data(workspace_id: UUID, staff_id: UUID) -> bytes:
    return b"commhub/caldav-connection/v1|" + workspace_id.bytes + staff_id.bytes


def check_collection_url(value: str, *, allow_http: bool) -> str:
    """An http(s) URL of one collection, ending in "/"; plain http only to this machine unless allowed."""
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password or len(url) > 500 or any(c.isspace() for c in url):
        raise CaldavSettingInvalidError("collection_url must be an http(s) URL of one calendar, without credentials,"
                                        " query or fragment")
    if parts.scheme == "http" and not allow_http and not _loopback(parts.hostname):
        raise CaldavSettingInvalidError("collection_url must use https (plain http only reaches this machine;"
                                        " COMMHUB_CALDAV_ALLOW_HTTP=on allows it elsewhere)")
    return url if url.endswith("/") else url + "/"


def check_secret(field: str, value: str) -> str:
    if not value or len(value) > MAX_SECRET or any(not c.isprintable() for c in value):
        raise CaldavSettingInvalidError(f"{field} must be 1-{MAX_SECRET} printable characters")
    return value


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CaldavStore:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault
        self.database = vault.database

    def setup(self) -> None:
        with self.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    # Connections ---------------------------------------------------------------------------

    def save(self, workspace_id: UUID, staff_id: UUID, account: CaldavAccount, actor_id: UUID | None,
             now: datetime) -> bool:
        """Store (or replace) the connection; True if it now points at another calendar than before,
        whose sync state is then forgotten. Every appointment of the staff member is looked at again."""
        before = self.get(staff_id)
        moved = before is None or before.account.collection_url != account.collection_url
        secret = json.dumps({"url": account.collection_url, "username": account.username,
                             "password": account.password}).encode()
        nonce = os.urandom(12)
        sealed = nonce + self.vault.sealer(connection_subject(staff_id), workspace_id).encrypt(
            nonce, secret, associated_data(workspace_id, staff_id))
        with self.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_caldav_connections VALUES (%s, %s, %s, %s, %s) ON CONFLICT (staff_id) DO UPDATE"
                " SET sealed = EXCLUDED.sealed, connected_at = EXCLUDED.connected_at,"
                " connected_by = EXCLUDED.connected_by WHERE commhub_caldav_connections.workspace_id = %s",
                (staff_id, workspace_id, sealed, now, actor_id, workspace_id))
            if moved:
                conn.execute("DELETE FROM commhub_caldav_sync WHERE staff_id = %s", (staff_id,))
            conn.execute("UPDATE commhub_caldav_pushes SET due_at = %s WHERE staff_id = %s", (now, staff_id))
        return moved

    def get(self, staff_id: UUID) -> Connection | None:
        with self.database.connection() as conn:
            row = conn.execute("SELECT workspace_id, sealed, connected_at FROM commhub_caldav_connections"
                               " WHERE staff_id = %s", (staff_id,)).fetchone()
        return None if row is None else self._open(staff_id, *row)

    def in_workspace(self, workspace_id: UUID, staff_id: UUID | None = None) -> list[Connection]:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT staff_id, workspace_id, sealed, connected_at FROM commhub_caldav_connections"
                " WHERE workspace_id = %s AND (%s::uuid IS NULL OR staff_id = %s) ORDER BY connected_at, staff_id",
                (workspace_id, staff_id, staff_id)).fetchall()
        return [c for c in (self._open(*row) for row in rows) if c is not None]

    def delete(self, workspace_id: UUID, staff_id: UUID) -> bool:
        """Disconnect: the connection and what we knew of that calendar go; its events stay in it."""
        with self.database.connection() as conn:
            gone = conn.execute("DELETE FROM commhub_caldav_connections WHERE workspace_id = %s AND staff_id = %s",
                                (workspace_id, staff_id)).rowcount > 0
            if gone:
                conn.execute("DELETE FROM commhub_caldav_sync WHERE staff_id = %s", (staff_id,))
        return gone

    def _open(self, staff_id: UUID, workspace_id: UUID, sealed: bytes, connected_at: datetime) -> Connection | None:
        key = self.vault.opener(connection_subject(staff_id))
        if key is None:
            return None
        data = bytes(sealed)
        secret = json.loads(key.decrypt(data[:12], data[12:], associated_data(workspace_id, staff_id)))
        account = CaldavAccount(secret["url"], secret["username"], secret["password"])
        return Connection(workspace_id, staff_id, account, connected_at)

    # The workspace's setting ---------------------------------------------------------------

    def include_contact_name(self, workspace_id: UUID) -> bool:
        with self.database.connection() as conn:
            row = conn.execute("SELECT include_contact_name FROM commhub_caldav_settings WHERE workspace_id = %s",
                               (workspace_id,)).fetchone()
        return bool(row and row[0])

    def set_include_contact_name(self, workspace_id: UUID, include: bool, now: datetime) -> None:
        """Change what pushed events carry; every event already pushed is written again to match."""
        with self.database.connection() as conn:
            before = conn.execute("SELECT include_contact_name FROM commhub_caldav_settings WHERE workspace_id = %s",
                                  (workspace_id,)).fetchone()
            conn.execute("INSERT INTO commhub_caldav_settings VALUES (%s, %s, %s) ON CONFLICT (workspace_id) DO UPDATE"
                         " SET include_contact_name = EXCLUDED.include_contact_name, updated_at = EXCLUDED.updated_at",
                         (workspace_id, include, now))
            if bool(before and before[0]) != include:
                conn.execute("UPDATE commhub_caldav_pushes p SET due_at = %s FROM commhub_caldav_sync s"
                             " WHERE s.appointment_id = p.appointment_id AND s.staff_id = p.staff_id"
                             " AND s.workspace_id = %s AND s.state = 'synced'", (now, workspace_id))

    def updated_at(self, workspace_id: UUID) -> datetime | None:
        with self.database.connection() as conn:
            row = conn.execute("SELECT updated_at FROM commhub_caldav_settings WHERE workspace_id = %s",
                               (workspace_id,)).fetchone()
        return row[0] if row else None

    # What each calendar holds --------------------------------------------------------------

    def sync_row(self, appointment_id: UUID, staff_id: UUID) -> SyncRow | None:
        with self.database.connection() as conn:
            row = conn.execute("SELECT state, etag, pushed_key, attempts, conflicts FROM commhub_caldav_sync"
                               " WHERE appointment_id = %s AND staff_id = %s", (appointment_id, staff_id)).fetchone()
        return None if row is None else SyncRow(*row)

    def record(self, appointment_id: UUID, staff_id: UUID, workspace_id: UUID, *, state: str, etag: str | None,
               pushed_key: str | None, attempts: int, conflicts: int, http_status: int | None, now: datetime,
               changes: int, retry_at: datetime | None = None) -> None:
        """Record a push's outcome and, in the same transaction, release its queue row (``changes``: the
        count it was claimed at) or make it due again at ``retry_at``: a status read never sees the
        outcome with the row still due (it would say "pending" after the calendar has the event)."""
        synced = now if state in ("synced", "deleted") else None
        with self.database.connection() as conn:
            if retry_at is not None:
                conn.execute(RETRY, (retry_at, appointment_id, staff_id))
            else:
                conn.execute(RELEASE, (changes, appointment_id, staff_id))
            conn.execute(
                "INSERT INTO commhub_caldav_sync VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (appointment_id, staff_id) DO UPDATE SET state = EXCLUDED.state, etag = EXCLUDED.etag,"
                " pushed_key = EXCLUDED.pushed_key, attempts = EXCLUDED.attempts,"
                " conflicts = commhub_caldav_sync.conflicts + EXCLUDED.conflicts, http_status = EXCLUDED.http_status,"
                " attempted_at = EXCLUDED.attempted_at,"
                " synced_at = COALESCE(EXCLUDED.synced_at, commhub_caldav_sync.synced_at)",
                (appointment_id, staff_id, workspace_id, state, etag, pushed_key, attempts, conflicts, http_status,
                 now, synced))

    def statuses(self, workspace_id: UUID, *, appointment_id: UUID | None = None, staff_id: UUID | None = None,
                 state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Where each appointment stands with each calendar it belongs (or belonged) to."""
        sql = (
            "SELECT * FROM (SELECT p.appointment_id, p.staff_id,"
            " CASE WHEN c.staff_id IS NULL THEN 'not_connected'"
            "      WHEN p.due_at IS NOT NULL AND s.state = 'retrying' THEN 'retrying'"
            "      WHEN p.due_at IS NOT NULL THEN 'pending'"
            "      ELSE COALESCE(s.state, 'not_pushed') END AS state,"
            " COALESCE(s.attempts, 0) AS attempts, COALESCE(s.conflicts, 0) AS conflicts, s.http_status,"
            " s.attempted_at, s.synced_at, p.changed_at"
            " FROM commhub_caldav_pushes p"
            " LEFT JOIN commhub_caldav_sync s ON s.appointment_id = p.appointment_id AND s.staff_id = p.staff_id"
            " LEFT JOIN commhub_caldav_connections c ON c.staff_id = p.staff_id AND c.workspace_id = p.workspace_id"
            " WHERE p.workspace_id = %(workspace)s"
            " AND (%(appointment)s::uuid IS NULL OR p.appointment_id = %(appointment)s)"
            " AND (%(staff)s::uuid IS NULL OR p.staff_id = %(staff)s)) AS rows"
            " WHERE %(state)s::text IS NULL OR state = %(state)s"
            " ORDER BY changed_at DESC, appointment_id, staff_id LIMIT %(limit)s")
        with self.database.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(sql, {"workspace": workspace_id, "appointment": appointment_id, "staff": staff_id,
                                        "state": state, "limit": limit}).fetchall()
