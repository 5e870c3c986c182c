"""PostgreSQL connection details shared by the event store, key vault and projections."""

from __future__ import annotations

import threading
import zlib
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from adapters.event_store import FACTORY_TOPIC


# Long-lived LISTEN connections must notice a dead peer instead of waiting silently forever.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
SETUP_LOCK = 7261001  # pg_advisory_xact_lock key: one process at a time creates tables and functions


def installation_lock(key: int, schema: str) -> int:
    """An advisory lock key of one installation (a schema): installations sharing a PostgreSQL
    database do not block or skip each other."""
    return (key << 32) | zlib.crc32(schema.encode())


@dataclass(frozen=True)
class Database:
    """Where the data lives: a server (conninfo) and the schema holding commhub's tables."""

    url: str
    schema: str = "public"
    pool_size: int = 10  # most connections of this process's shared pool
    _pools: dict[str, ConnectionPool] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        return conninfo_to_dict(self.url)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, options=f"-c search_path={self.schema}", **kwargs)

    @contextmanager
    def setting_up(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction holding the start-up DDL lock (``SETUP_LOCK``): processes starting together
        create tables and functions one at a time (concurrent CREATE OR REPLACE FUNCTION fails)."""
        with self.connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            yield conn

    def connection(self, *, autocommit: bool = False) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A connection from this process's shared pool (committed and returned at the end of the block).

        Opening a connection per query costs PostgreSQL ~4 ms of CPU; short queries on hot paths use this.
        ``autocommit``: each statement is its own transaction, for a block of one statement (a lookup,
        an upsert): one round trip instead of three (BEGIN, the statement, COMMIT).
        """
        pool = self._pools.get("shared")
        if pool is None:
            with self._lock:
                pool = self._pools.get("shared")
                if pool is None:
                    pool = self._pools["shared"] = self.pool(min_size=1, max_size=self.pool_size, name="commhub-shared")
        return autocommitted(pool) if autocommit else pool.connection()

    def close(self) -> None:
        """Close this process's shared pool, if one was opened."""
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()

    def pool(self, *, min_size: int = 1, max_size: int = 5, name: str = "commhub") -> ConnectionPool:
        return ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"options": f"-c search_path={self.schema}"},
            name=name,
            open=True,
        )

    def ensure_schema(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))

    def drop_schema(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def eventsourcing_env(self, *, pool_size: int = 5) -> dict[str, str]:
        """The POSTGRES_* settings eventsourcing's PostgresFactory expects."""
        params = self.params
        return {
            "PERSISTENCE_MODULE": FACTORY_TOPIC,  # eventsourcing.postgres with our recorders (adapters/event_store.py)
            "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
            "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
            "POSTGRES_PORT": str(params.get("port", "5432")),
            "POSTGRES_USER": str(params.get("user", "postgres")),
            "POSTGRES_PASSWORD": str(params.get("password", "")),
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": str(pool_size),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_PRE_PING": "n",  # the recorder retries on a dropped connection; a ping per query costs ~12%
            "CREATE_TABLE": "y",
        }


@contextmanager
def autocommitted(pool: ConnectionPool) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode for the block, returned to the pool as it was lent."""
    with pool.connection() as conn:
        conn.autocommit = True  # a client-side switch: nothing is sent
        try:
            yield conn
        finally:
            if not conn.broken:  # a broken connection is discarded by the pool, whatever its mode
                conn.autocommit = False
