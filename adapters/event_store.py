"""The event store's recorders: an append that locks, inserts and commits in one statement, and
reads whose SQL is rendered once instead of on every call.

eventsourcing's PostgreSQL recorder serialises appends with ``LOCK TABLE … IN EXCLUSIVE MODE``
taken inside a client-side transaction: the lock is held over the client's round trips (pipeline
sync, then COMMIT), and in a busy Python process each of those waits for the GIL too. Under load
every other append queued on the lock behind a holder that was only waiting for its own thread
(docs/decisions.md, "Appends hold the log's lock only inside PostgreSQL"). Here the same lock is
taken inside a PL/pgSQL function called in autocommit mode: the statement is its own transaction,
so the lock is released by the commit that ends it, without the client in between. Commit order
still equals id order, which is what the projection runner and the live feed rely on.

The events go to that function as four column arrays sent in binary, not as an array of the
stored-event composite type: psycopg writes a composite array as text, escaping every state's bytes.
eventsourcing builds each read's SQL from composable parts on every call, and psycopg renders
those again each time (~8 % of the API process's time on the inbound path): here each shape of
read is rendered to bytes once per recorder (docs/decisions.md, §30).
"""

from __future__ import annotations

from typing import Any, Sequence
from uuid import UUID

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import retry
from psycopg.sql import SQL, Composable, Identifier

FACTORY_TOPIC = "adapters.event_store:EventStoreFactory"


def _render(statement: Composable) -> bytes:
    return statement.as_bytes(None)


def columns(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], list[int], list[str], list[bytes]]:
    """The append function's four arrays (sent in binary: no text escaping of the states' bytes)."""
    return ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events])


class RenderedReads(PostgresAggregateRecorder):
    """``select_events`` with its SQL rendered once per shape (which of gt, lte, limit are given)."""

    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self._table = SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        self._select_events: dict[tuple[bool, bool, bool, bool], bytes] = {}

    def _events_statement(self, gt: bool, lte: bool, desc: bool, limit: bool) -> bytes:
        shape = (gt, lte, desc, limit)
        statement = self._select_events.get(shape)
        if statement is None:
            text = "SELECT * FROM {} WHERE originator_id = %s"
            text += " AND originator_version > %s" * gt + " AND originator_version <= %s" * lte
            text += " ORDER BY originator_version " + ("DESC" if desc else "ASC") + " LIMIT %s" * limit
            statement = self._select_events[shape] = _render(SQL(text).format(self._table))
        return statement

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events(
        self, originator_id: UUID | str, *, gt: int | None = None, lte: int | None = None, desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        params = [originator_id, *(p for p in (gt, lte) if p is not None), *(() if limit is None else (limit,))]
        statement = self._events_statement(gt is not None, lte is not None, desc, limit is not None)
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params, prepare=True)
            return [StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                                topic=row["topic"], state=bytes(row["state"])) for row in cursor.fetchall()]


class SnapshotRecorder(RenderedReads):
    """The snapshot store (an aggregate recorder): only its reads differ from eventsourcing's."""


class LockedAppendRecorder(RenderedReads, PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        kind = self.datastore.originator_id_type
        self.append_function = f"commhub_append_columns_{kind}"
        names = dict(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name),
            function=Identifier(self.append_function), channel=Identifier(self.channel_name),
            kind=Identifier(kind),
        )
        self.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}"
            "(ids {kind}[], versions bigint[], topics text[], states bytea[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "  NOTIFY {channel}; "
            "  RETURN QUERY INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "    SELECT * FROM unnest(ids, versions, topics, states) "
            "    RETURNING notification_id; "
            "END; $BODY$"
        ).format(**names))
        self.append_statement = _render(SQL(
            "SELECT * FROM {schema}.{function}(%b::{kind}[], %b::bigint[], %b::text[], %b::bytea[])"
        ).format(**names))
        self._append_with = _render(SQL("WITH appended AS MATERIALIZED (")) + self.append_statement + b") "
        self._select_notifications: dict[tuple[bool, bool, bool, bool], bytes] = {}

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            assert conn.autocommit, "the append must be its own transaction: the lock ends with it"
            cursor.execute(self.append_statement, columns(stored_events), prepare=True)
            return [row[self.append_function] for row in cursor.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events_with(self, stored_events: Sequence[StoredEvent], statement: bytes, params: Sequence[Any]) -> int:
        """Append, and run ``statement`` in the same commit: one statement, both or neither.

        ``statement`` follows ``WITH appended AS (<the append>)`` and may read ``appended`` (the new
        notification ids); its own placeholders come after the append's. Returns its row count."""
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            assert conn.autocommit, "the append must be its own transaction: the lock ends with it"
            cursor.execute(self._append_with + statement, (*columns(stored_events), *params), prepare=True)
            return cursor.rowcount

    def _notifications_statement(self, start: bool, inclusive: bool, stop: bool, topics: bool) -> bytes:
        shape = (start, inclusive, stop, topics)
        statement = self._select_notifications.get(shape)
        if statement is None:
            conditions = []
            if start:
                conditions.append("notification_id >= %s" if inclusive else "notification_id > %s")
            if stop:
                conditions.append("notification_id <= %s")
            if topics:
                conditions.append("topic = ANY(%s)")
            where = " WHERE " + " AND ".join(conditions) if conditions else ""
            text = "SELECT * FROM {}" + where + " ORDER BY notification_id LIMIT %s"
            statement = self._select_notifications[shape] = _render(SQL(text).format(self._table))
        return statement

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        params: list[Any] = [p for p in (start, stop) if p is not None]
        if topics:
            params.append(list(topics))
        params.append(limit)
        statement = self._notifications_statement(start is not None, inclusive_of_start, stop is not None,
                                                  bool(topics))
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(statement, params, prepare=True)
            return [Notification(id=row["notification_id"], originator_id=row["originator_id"],
                                 originator_version=row["originator_version"], topic=row["topic"],
                                 state=bytes(row["state"])) for row in cursor.fetchall()]


class EventStoreFactory(PostgresFactory):
    """eventsourcing's PostgreSQL persistence with the recorders above."""

    aggregate_recorder_class = SnapshotRecorder
    application_recorder_class = LockedAppendRecorder
