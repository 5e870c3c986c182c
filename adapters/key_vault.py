"""The key vault: one data key per data subject, wrapped by the KEK, shredded on erasure.

Keys are cached per process; a shred in any process NOTIFYs every other process to evict.
"""

from __future__ import annotations

import logging
import os

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable
from uuid import UUID, uuid4

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg_pool import ConnectionPool

from adapters.kek import Keyring
from adapters.postgres import KEEPALIVE, Database, autocommitted, installation_lock
from domain.errors import KeyMissingError, SubjectErasedError

log = logging.getLogger(__name__)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_data_keys (
    subject_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    kek_id text NOT NULL,
    wrapped bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS commhub_data_keys_by_kek ON commhub_data_keys (kek_id);
CREATE TABLE IF NOT EXISTS commhub_index_keys (
    workspace_id uuid PRIMARY KEY,
    kek_id text NOT NULL,
    wrapped bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS commhub_key_tombstones (
    subject_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    request_id uuid NOT NULL,
    erased_at timestamptz NOT NULL
);
"""

_ERASED = object()  # cached answer for a shredded subject


def rotation_lock(database: Database) -> int:
    """The advisory lock every running vault holds shared and a KEK rotation takes exclusively; one
    per schema, so installations sharing a PostgreSQL database do not block each other."""
    return installation_lock(7261002, database.schema)

# Loads, or creates, the data keys of many subjects in one statement (one round trip, its own
# transaction in autocommit mode): takes each subject's lock (as a shred does), inserts the keys the
# caller wrapped for subjects that have neither a key nor a tombstone, and answers each subject's
# state: tombstoned, or its stored key (the caller's own where it was just inserted).
# A new key need not wait for its own disk flush: the events sealed with it commit synchronously
# afterwards, and PostgreSQL flushes WAL in order, so once they are durable the key is too; if they
# never commit, a lost unused key harms nobody. Saves one fsync per save that creates keys.
KEYS_FUNCTION = "commhub_data_keys_for"
KEYS_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {KEYS_FUNCTION}(ids uuid[], workspaces uuid[], keks text[], keys bytea[], locks bigint[])
RETURNS TABLE (sid uuid, is_erased boolean, by_kek text, key_wrapped bytea, is_new boolean)
LANGUAGE plpgsql AS $BODY$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  PERFORM pg_advisory_xact_lock(l.k) FROM (SELECT DISTINCT unnest(locks) AS k ORDER BY 1) AS l;
  RETURN QUERY
  WITH given AS (SELECT * FROM unnest(ids, workspaces, keks, keys) AS g(id, ws, kek, w)),
  inserted AS (
    INSERT INTO commhub_data_keys (subject_id, workspace_id, kek_id, wrapped)
    SELECT g.id, g.ws, g.kek, g.w FROM given g
    WHERE NOT EXISTS (SELECT FROM commhub_key_tombstones t WHERE t.subject_id = g.id)
    ON CONFLICT (subject_id) DO NOTHING
    RETURNING commhub_data_keys.subject_id
  )
  SELECT g.id, t.subject_id IS NOT NULL, coalesce(k.kek_id, g.kek), coalesce(k.wrapped, g.w), i.subject_id IS NOT NULL
  FROM given g
  LEFT JOIN commhub_key_tombstones t ON t.subject_id = g.id
  LEFT JOIN commhub_data_keys k ON k.subject_id = g.id  -- this statement's snapshot: not the rows it inserts
  LEFT JOIN inserted i ON i.subject_id = g.id;
END; $BODY$
"""
KEYS_STATEMENT = f"SELECT * FROM {KEYS_FUNCTION}(%s::uuid[], %s::uuid[], %s::text[], %b::bytea[], %s::bigint[])"



@dataclass(frozen=True)
class Tombstone:
    subject_id: UUID
    workspace_id: UUID
    request_id: UUID
    erased_at: datetime


class KeyVault:
    """Per-subject AES-256-GCM data keys in PostgreSQL, wrapped by the configured KEK."""

    def __init__(self, database: Database, keyring: Keyring, *, cache_seconds: float = 300.0, pool_size: int = 4) -> None:
        self.database = database
        self.keyring = keyring
        self.cache_seconds = cache_seconds
        self.channel = f"commhub_key_shredded_{database.schema}"
        self._pool: ConnectionPool | None = None
        self._pool_size = pool_size
        self._cache: dict[UUID, tuple[Any, float]] = {}
        self._index_keys: dict[UUID, bytes] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._watchers: list[Callable[[UUID | None], None]] = []

    # Lifecycle -----------------------------------------------------------------------------

    def setup(self) -> None:
        with self.database.setting_up() as conn:
            conn.execute(SCHEMA_SQL)
            conn.execute(KEYS_FUNCTION_SQL)

    def start(self) -> KeyVault:
        self.setup()
        self._pool = self.database.pool(min_size=1, max_size=self._pool_size, name="commhub-key-vault")
        self._stopping.clear()
        self._listener = threading.Thread(target=self._listen, name="commhub-key-eviction", daemon=True)
        self._listener.start()
        self._listening.wait(timeout=10)
        return self

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        if self._pool is not None:
            self._pool.close()
        self._cache.clear()

    # Keys ----------------------------------------------------------------------------------

    def sealer(self, subject_id: UUID, workspace_id: UUID) -> AESGCM:
        """The subject's key for sealing, created on first use; refused for an erased subject."""
        key = self._cached(subject_id)
        if key is None:
            key = self._load_or_create({subject_id: workspace_id})[subject_id]
        if key is _ERASED:
            raise SubjectErasedError("the data subject was erased; no new personal data can be sealed for them")
        return key

    def prefetch(self, subjects: dict[UUID, UUID]) -> None:
        """Load or create the sealing keys of many subjects (subject → workspace) in one round trip,
        so a batch of new contacts costs one transaction, not one each. Erased subjects are noted."""
        wanted = {s: w for s, w in subjects.items() if self._cached(s) is None}
        if wanted:
            self._load_or_create(wanted)

    def _load_or_create(self, subjects: dict[UUID, UUID]) -> dict[UUID, Any]:
        """Each subject's key (an AESGCM) or _ERASED for a tombstoned one; missing keys are created,
        never for a tombstoned subject. One round trip, however many subjects (``KEYS_FUNCTION``): a
        key is drawn and wrapped for every subject, and kept only where none was stored. Cached."""
        wanted = sorted(subjects)
        generation = self._generation
        drawn = {subject_id: AESGCM.generate_key(bit_length=256) for subject_id in wanted}
        wrapped = [self.keyring.wrap(drawn[subject_id], subject_id) for subject_id in wanted]
        with self._connection(autocommit=True) as conn:  # the function's statement is its whole transaction
            rows = conn.execute(KEYS_STATEMENT, (
                wanted, [subjects[s] for s in wanted], [w[0] for w in wrapped], [w[1] for w in wrapped],
                sorted({_lock_key(s) for s in wanted}),
            )).fetchall()
        keys: dict[UUID, Any] = {}
        for subject_id, erased, by, stored, new in rows:
            if erased:
                keys[subject_id] = _ERASED
            elif new:
                keys[subject_id] = AESGCM(drawn[subject_id])
            else:
                keys[subject_id] = AESGCM(self.keyring.unwrap(by, stored, subject_id))
        for subject_id, key in keys.items():
            self._remember(subject_id, key, generation)
        return keys

    def opener(self, subject_id: UUID) -> AESGCM | None:
        """The subject's key for unsealing, or None when the subject was erased."""
        cached = self._cached(subject_id)
        if cached is not None:
            return None if cached is _ERASED else cached
        generation = self._generation
        with self._connection() as conn:
            row = conn.execute(
                "SELECT kek_id, wrapped FROM commhub_data_keys WHERE subject_id = %s", (subject_id,)
            ).fetchone()
            if row is None:
                if conn.execute("SELECT 1 FROM commhub_key_tombstones WHERE subject_id = %s", (subject_id,)).fetchone():
                    self._remember(subject_id, _ERASED, generation)
                    return None
                raise KeyMissingError(f"no data key for subject {subject_id} and no tombstone either")
        found = self._remember(subject_id, AESGCM(self.keyring.unwrap(row[0], row[1], subject_id)), generation)
        return found

    def usable(self) -> bool:
        """Whether the configured KEK opens the stored data keys (a wrong or missing KEK does not)."""
        try:
            with self._connection() as conn:
                row = conn.execute(
                    "SELECT subject_id, kek_id, wrapped FROM commhub_data_keys ORDER BY created_at DESC LIMIT 1"
                ).fetchone()
            if row is None:
                probe = uuid4()
                self.keyring.unwrap(*self.keyring.wrap(os.urandom(32), probe), probe)
            else:
                self.keyring.unwrap(row[1], row[2], row[0])
        except psycopg.Error:
            raise
        except Exception as error:  # InvalidTag or an unknown KEK id: say what, not the key
            log.error("key vault is not usable (%s)", type(error).__name__)
            return False
        return True

    def shred(self, subject_id: UUID, workspace_id: UUID, request_id: UUID, now: datetime) -> bool:
        """Delete the subject's key, leave a tombstone and tell every process to evict it."""
        with self._connection() as conn, conn.transaction():
            self._lock_subject(conn, subject_id)
            deleted = conn.execute("DELETE FROM commhub_data_keys WHERE subject_id = %s", (subject_id,)).rowcount
            conn.execute(
                "INSERT INTO commhub_key_tombstones (subject_id, workspace_id, request_id, erased_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (subject_id) DO NOTHING",
                (subject_id, workspace_id, request_id, now),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(subject_id)))
        self._evict(subject_id)  # at once here; other processes when the notification reaches them
        log.info("data key shredded", extra={"subject_id": str(subject_id), "request_id": str(request_id)})
        return bool(deleted)

    def watch(self, forget: Callable[[UUID | None], None]) -> Callable[[], bool]:
        """Call ``forget`` on every eviction: a shred here or in another process (its subject), or
        the listener losing or regaining its connection (``None``: whatever was shredded meanwhile)."""
        self._watchers.append(forget)
        return self._listening.is_set

    def index_key(self, workspace_id: UUID) -> bytes:
        """The workspace's key for blind indexes (HMAC of phone numbers and emails), created on first use."""
        cached = self._index_keys.get(workspace_id)
        if cached is not None:
            return cached
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(workspace_id),))
            row = conn.execute("SELECT kek_id, wrapped FROM commhub_index_keys WHERE workspace_id = %s", (workspace_id,)).fetchone()
            if row is None:
                key = AESGCM.generate_key(bit_length=256)
                wrapped_by, wrapped = self.keyring.wrap(key, workspace_id, purpose=b"index")
                conn.execute("INSERT INTO commhub_index_keys VALUES (%s, %s, %s)", (workspace_id, wrapped_by, wrapped))
            else:
                key = self.keyring.unwrap(row[0], row[1], workspace_id, purpose=b"index")
        self._index_keys[workspace_id] = key
        return key

    def is_erased(self, subject_id: UUID) -> bool:
        with self._connection() as conn:
            row = conn.execute("SELECT 1 FROM commhub_key_tombstones WHERE subject_id = %s", (subject_id,)).fetchone()
        return row is not None

    # Rotation and restore ------------------------------------------------------------------

    def rewrap(self, batch_size: int = 500, progress: Callable[[int], None] | None = None) -> int:
        """Re-wrap every data key not yet under the current KEK; events are never touched."""
        done = 0
        while True:
            with self._connection() as conn, conn.transaction():
                rows = conn.execute(
                    "SELECT subject_id, kek_id, wrapped FROM commhub_data_keys WHERE kek_id <> %s"
                    " LIMIT %s FOR UPDATE SKIP LOCKED",
                    (self.keyring.current_id, batch_size),
                ).fetchall()
                for subject_id, wrapped_by, wrapped in rows:
                    new_id, rewrapped = self.keyring.wrap(self.keyring.unwrap(wrapped_by, wrapped, subject_id), subject_id)
                    conn.execute(
                        "UPDATE commhub_data_keys SET kek_id = %s, wrapped = %s WHERE subject_id = %s",
                        (new_id, rewrapped, subject_id),
                    )
            done += len(rows)
            if progress is not None and rows:
                progress(len(rows))
            if not rows:  # a short batch may only mean rows were locked: stop when none are left
                return done + self._rewrap_index_keys()

    def _rewrap_index_keys(self) -> int:
        with self._connection() as conn, conn.transaction():
            rows = conn.execute(
                "SELECT workspace_id, kek_id, wrapped FROM commhub_index_keys WHERE kek_id <> %s FOR UPDATE",
                (self.keyring.current_id,),
            ).fetchall()
            for workspace_id, wrapped_by, wrapped in rows:
                key = self.keyring.unwrap(wrapped_by, wrapped, workspace_id, purpose=b"index")
                new_id, rewrapped = self.keyring.wrap(key, workspace_id, purpose=b"index")
                conn.execute("UPDATE commhub_index_keys SET kek_id = %s, wrapped = %s WHERE workspace_id = %s",
                             (new_id, rewrapped, workspace_id))
        return len(rows)

    def count_keys(self) -> tuple[int, int]:
        """(keys under the current KEK, keys under older KEKs)."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE kek_id = %s), count(*) FILTER (WHERE kek_id <> %s)"
                " FROM (SELECT kek_id FROM commhub_data_keys UNION ALL SELECT kek_id FROM commhub_index_keys) AS k",
                (self.keyring.current_id, self.keyring.current_id),
            ).fetchone()
        return int(row[0]), int(row[1])

    def tombstones(self) -> list[Tombstone]:
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT subject_id, workspace_id, request_id, erased_at FROM commhub_key_tombstones ORDER BY erased_at"
            ).fetchall()
        return [Tombstone(*row) for row in rows]

    def reapply(self, tombstones: Iterable[Tombstone]) -> int:
        """After restoring a backup, shred again every key erased since that backup was taken."""
        shredded = 0
        for stone in tombstones:
            shredded += self.shred(stone.subject_id, stone.workspace_id, stone.request_id, stone.erased_at)
        return shredded

    # Internals -----------------------------------------------------------------------------

    def _connection(self, *, autocommit: bool = False) -> Any:
        if self._pool is None:
            raise RuntimeError("KeyVault.start() was not called")
        return autocommitted(self._pool) if autocommit else self._pool.connection()

    @staticmethod
    def _lock_subject(conn: psycopg.Connection[Any], subject_id: UUID) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(subject_id),))

    def _cached(self, subject_id: UUID) -> Any:
        entry = self._cache.get(subject_id)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            self._cache.pop(subject_id, None)
            return None
        return entry[0]

    def _remember(self, subject_id: UUID, value: Any, generation: int) -> Any:
        """Cache a key only if no shred notification arrived since it was read, and only while listening."""
        with self._lock:
            if generation == self._generation and self._listening.is_set():
                expires = float("inf") if value is _ERASED else time.monotonic() + self.cache_seconds
                self._cache[subject_id] = (value, expires)
        return value

    def _evict(self, subject_id: UUID | None) -> None:
        with self._lock:
            self._generation += 1
            if subject_id is None:
                self._cache.clear()
            else:
                self._cache[subject_id] = (_ERASED, float("inf"))
        for forget in self._watchers:
            forget(subject_id)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with self.database.connect(autocommit=True, **KEEPALIVE) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel)))
                    conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (rotation_lock(self.database),))
                    self._evict(None)  # anything cached before we listened may be stale
                    self._listening.set()
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self._evict(_parse_uuid(notice.payload))
            except psycopg.Error:
                log.warning("key eviction listener lost its connection; key cache disabled until it reconnects")
            finally:
                self._listening.clear()
                self._evict(None)
            self._stopping.wait(1.0)


def _lock_key(owner_id: UUID) -> int:
    """The advisory lock serialising creation and shredding of one subject's (or workspace's) key."""
    return owner_id.int >> 65


def _parse_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None



