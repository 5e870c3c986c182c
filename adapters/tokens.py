"""Bearer tokens for staff sessions: random, stored only as SHA-256 digests, revocable.

A serving process caches what each token resolves to, but only while it listens on the tokens
channel: a revocation (logout) and a staff member's role change or deactivation (the staff
projection) NOTIFY it in the same transaction, and every process then drops its whole cache.
Without the listener (CLI, workers, tests) every lookup reads the table.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import psycopg

from adapters.postgres import KEEPALIVE, Database

log = logging.getLogger(__name__)

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
CACHE_LIMIT = 10_000
NOTIFY_SQL = "SELECT pg_notify('commhub_tokens_' || current_schema(), '')"
"""Tells every process to drop its cached tokens (run it in the transaction that changes them)."""


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
    def __init__(self, database: Database, *, cache_seconds: float = 60.0) -> None:
        self.database = database
        self.cache_seconds = cache_seconds  # a safety net: eviction is by NOTIFY
        self.channel = f"commhub_tokens_{database.schema}"
        self._cache: dict[bytes, tuple[Principal, datetime, float]] = {}  # digest → (who, expires, cached until)
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every eviction: a lookup that raced one is not cached
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None

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

    def start(self) -> TokenStore:
        """Listen for revocations and staff changes, and cache lookups meanwhile."""
        self._stopping.clear()
        self._listener = threading.Thread(target=self._listen, name="commhub-token-eviction", daemon=True)
        self._listener.start()
        self._listening.wait(timeout=10)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        self.forget()

    def cached(self, token: str, now: datetime) -> Principal | None:
        """The holder of this token if a lookup still valid is cached (no I/O), else None."""
        hit = self._cache.get(digest(token)) if self._listening.is_set() else None
        if hit is None or hit[1] <= now or hit[2] < time.monotonic():
            return None
        return hit[0]

    def resolve(self, token: str, now: datetime) -> Principal | None:
        """The active staff member holding this token, if it is valid, unexpired and unrevoked."""
        found = self.cached(token, now)
        if found is not None:
            return found
        generation = self._generation
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT t.staff_id, t.workspace_id, s.role, t.expires_at FROM commhub_auth_tokens t"
                " JOIN commhub_staff s ON s.staff_id = t.staff_id AND s.workspace_id = t.workspace_id"
                " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND t.expires_at > %s AND s.active",
                (digest(token), now),
            ).fetchone()
        if row is None:
            return None
        principal = Principal(*row[:3])
        with self._lock:
            if generation == self._generation and self._listening.is_set():
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[digest(token)] = (principal, row[3], time.monotonic() + self.cache_seconds)
        return principal

    def revoke(self, token: str, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_auth_tokens SET revoked_at = %s WHERE token_hash = %s AND revoked_at IS NULL",
                         (now, digest(token)))
            conn.execute(NOTIFY_SQL)
        self.forget()

    def revoke_all(self, staff_id: UUID, now: datetime) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_auth_tokens SET revoked_at = %s WHERE staff_id = %s AND revoked_at IS NULL",
                         (now, staff_id))
            conn.execute(NOTIFY_SQL)
        self.forget()

    def forget(self) -> None:
        """Drop every cached lookup (this process; other processes hear it by NOTIFY)."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    def _listen(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                with self.database.connect(autocommit=True, **KEEPALIVE) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel)))
                    self.forget()  # anything cached before we listened may be stale
                    self._listening.set()
                    backoff = 0.2
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self.forget()
            except Exception as error:
                log.warning("token eviction listener lost its connection (%s); token cache off until it reconnects",
                            type(error).__name__)
            self._listening.clear()
            self.forget()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)
