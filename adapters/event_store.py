"""The event store's append: one statement that locks, inserts and commits, so that readers tailing
the log in notification-id order never pass an id that commits later.

eventsourcing's PostgreSQL recorder serialises appends with ``LOCK TABLE … IN EXCLUSIVE MODE``
taken inside a client-side transaction: the lock is held over the client's round trips (pipeline
sync, then COMMIT), and in a busy Python process each of those waits for the GIL too. Under load
every other append queued on the lock behind a holder that was only waiting for its own thread
(docs/decisions.md, "Appends hold the log's lock only inside PostgreSQL"). Here the same lock is
taken inside a PL/pgSQL function called in autocommit mode: the statement is its own transaction,
so the lock is released by the commit that ends it, without the client in between. Commit order
still equals id order, which is what the projection runner and the live feed rely on.
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

RECORDER_TOPIC = "adapters.event_store:LockedAppendRecorder"


class LockedAppendRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.append_function = f"commhub_append_{self.datastore.originator_id_type}"
        names = dict(
            schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name),
            event=Identifier(self.stored_event_type_name), function=Identifier(self.append_function),
            channel=Identifier(self.channel_name),
        )
        self.sql_create_statements.append(SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(events {schema}.{event}[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "  LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "  NOTIFY {channel}; "
            "  RETURN QUERY INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "    SELECT originator_id, originator_version, topic, state FROM unnest(events) "
            "    RETURNING notification_id; "
            "END; $BODY$"
        ).format(**names))
        self.append_statement = SQL("SELECT * FROM {schema}.{function}(%s)").format(**names)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        events = [self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
                  for e in stored_events]
        with self.datastore.get_connection() as conn, conn.cursor() as cursor:
            assert conn.autocommit, "the append must be its own transaction: the lock ends with it"
            cursor.execute(self.append_statement, (events,), prepare=True)
            return [row[self.append_function] for row in cursor.fetchall()]
