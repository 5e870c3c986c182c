"""Appends audit entries to each workspace's hash-chained stream, and verifies the chains.

An entry's hash is SHA-256 over its stored form (stream id, version, topic and the stored state
bytes, which include the previous entry's hash). Hashing what is stored, not what it decodes to,
keeps the chain verifiable whatever happens to keys later. ``commhub_audit_heads`` remembers the
last hash of each chain, moved in the same commit as the entries, so cutting entries off the end
is detected too, and a process that appended last chains its next entries onto the head it knows
without reading the last entry again: the append happens only if the stored head still is that one.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Iterable
from uuid import UUID, uuid4

import anyio
from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError
from eventsourcing.utils import retry
from psycopg import sql

from adapters.codec import MsgspecTranscoder
from adapters.event_store import columns
from adapters.postgres import Database
from domain.application import CommHub
from domain.audit import GENESIS, AuditEntry, audit_stream_id

HEADS_SQL = """
CREATE TABLE IF NOT EXISTS commhub_audit_heads (
    workspace_id uuid PRIMARY KEY,
    version bigint NOT NULL,
    hash text NOT NULL
);
"""
PAGE = 1000


def entry_hash(originator_id: UUID, version: int, topic: str, state: bytes) -> str:
    digest = hashlib.sha256(b"commhub/audit/v1|")
    digest.update(originator_id.bytes + version.to_bytes(8, "big") + topic.encode() + b"|")
    digest.update(bytes(state))
    return digest.hexdigest()


@dataclass
class ChainReport:
    workspace_id: UUID
    entries: int = 0
    head: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _fields(
    workspace_id: UUID, action: str, now: datetime, actor_id: UUID | None, via: str, subject_ids: Iterable[UUID],
    target_id: UUID | None, route: str | None, count: int | None, outcome: str,
) -> dict[str, Any]:
    return dict(timestamp=now, workspace_id=workspace_id, action=action, actor_id=actor_id, via=via,
                subject_ids=list(dict.fromkeys(subject_ids)), target_id=target_id, route=route, count=count,
                outcome=outcome, entry_id=uuid4())


@dataclass
class _Pending:
    """One entry waiting to be appended, and what became of it."""

    fields: dict[str, Any]
    outcome: Future[AuditEntry] = field(default_factory=Future)


@dataclass
class _Chain:
    queue: list[_Pending] = field(default_factory=list)
    flushing: bool = False  # someone is appending this chain's queue
    head: tuple[int, str] | None = None  # (version, hash) this process last appended, if it still knows


class AuditLog:
    def __init__(self, app: CommHub, database: Database) -> None:
        self.app = app
        self.database = database
        self.transcoder = MsgspecTranscoder()
        # Appends to one chain are serialised in this process, and grouped: whoever finds a chain
        # idle appends every entry queued for it meanwhile in one transaction, and again until the
        # queue is empty (group commit), so concurrent requests neither collide on the version nor
        # pay a commit each, and the others wait without holding a thread. Another process
        # appending meanwhile shows up as a version conflict: reread and retry. The chain's head this
        # process appended last is kept, and the next batch chains onto it only if the stored head is
        # still the same (checked in the append's own statement): after another process appended, or
        # a restore of the database, the last entry is read from the store again.
        self._guard = threading.Lock()
        self._chains: dict[UUID, _Chain] = {}

    def setup(self) -> None:
        with self.database.setting_up() as conn:
            conn.execute(HEADS_SQL)
            conn.execute(self._append_function_sql)

    def record(
        self, workspace_id: UUID, action: str, *, now: datetime, actor_id: UUID | None = None, via: str = "api",
        subject_ids: Iterable[UUID] = (), target_id: UUID | None = None, route: str | None = None,
        count: int | None = None, outcome: str = "ok",
    ) -> AuditEntry:
        """Append one entry (with any others queued for the same chain meanwhile); returns when it is stored."""
        pending, lead = self._submit(workspace_id, _fields(
            workspace_id, action, now, actor_id, via, subject_ids, target_id, route, count, outcome))
        if lead:
            self._flush(workspace_id, pending)
        return pending.outcome.result()

    async def record_async(
        self, workspace_id: UUID, action: str, *, now: datetime, actor_id: UUID | None = None, via: str = "api",
        subject_ids: Iterable[UUID] = (), target_id: UUID | None = None, route: str | None = None,
        count: int | None = None, outcome: str = "ok",
    ) -> AuditEntry:
        """``record`` for the event loop: only the caller that finds the chain idle takes a worker
        thread (to append everyone's entries); the others wait for theirs without one."""
        pending, lead = self._submit(workspace_id, _fields(
            workspace_id, action, now, actor_id, via, subject_ids, target_id, route, count, outcome))
        if lead:
            await anyio.to_thread.run_sync(self._flush, workspace_id, pending)
        return await asyncio.wrap_future(pending.outcome)

    def _submit(self, workspace_id: UUID, fields: dict[str, Any]) -> tuple[_Pending, bool]:
        """Queue an entry; True when the caller must append the queue (nobody else is)."""
        pending = _Pending(fields)
        with self._guard:
            chain = self._chains.setdefault(workspace_id, _Chain())
            chain.queue.append(pending)
            lead, chain.flushing = not chain.flushing, True
        return pending, lead

    def _flush(self, workspace_id: UUID, own: _Pending | None = None) -> None:
        """Append the chain's queue, batch after batch, until nothing is left — or, for a caller
        with an entry of its own, until that one is stored: the rest then goes to a helper thread,
        so under steady load no request keeps appending other requests' entries for ever."""
        chain = self._chains[workspace_id]
        while True:
            with self._guard:
                batch, chain.queue = chain.queue, []
                if not batch:
                    chain.flushing = False
                    return
            try:
                entries = self._append(workspace_id, [p.fields for p in batch])
            except BaseException as error:
                for item in batch:
                    item.outcome.set_exception(error)
                if not isinstance(error, Exception):
                    with self._guard:
                        chain.flushing = False  # whoever queues next appends the rest
                    raise
            else:
                for item, entry in zip(batch, entries):
                    item.outcome.set_result(entry)
            if own is not None and own.outcome.done():
                with self._guard:
                    if not chain.queue:
                        chain.flushing = False
                        return
                threading.Thread(target=self._flush, args=(workspace_id,), name="commhub-audit-flush",
                                 daemon=True).start()
                return

    def _append(self, workspace_id: UUID, batch: list[dict[str, Any]]) -> list[AuditEntry]:
        """Chain the entries onto the last one and append them, moving the head, in one statement:
        the very bytes that were hashed are what is stored (encoded once, not again by a save)."""
        stream = audit_stream_id(workspace_id)
        chain = self._chains[workspace_id]  # only the one appending this chain reads or moves its head
        for _ in range(50):
            known, chain.head = chain.head, None
            version, previous = known if known is not None else self._last(stream)
            entries, stored = [], []
            for fields in batch:
                version += 1
                entry = AuditEntry(originator_id=stream, originator_version=version, previous_hash=previous, **fields)
                stored.append(self.app.mapper.to_stored_event(entry))
                previous = entry_hash(stream, version, stored[-1].topic, stored[-1].state)
                entries.append(entry)
            try:
                if known is not None:  # appended only if the stored head is still the one known here
                    appended = self._append_onto(workspace_id, known, stored, (version, previous))
                else:  # the head moves in the append's own commit: one round trip, and never behind
                    self.app.recorder.insert_events_with(stored, self._head_statement, (workspace_id, version, previous))
                    appended = True
            except IntegrityError:
                appended = False  # these versions are taken
            # Taken by another process (chain onto its entries), or by this very batch: a commit whose
            # answer was lost is retried by the store's retry, and finds its own entries in the way.
            if not appended and not self._stored(stream, entries[0]):
                continue
            chain.head = (version, previous)
            return entries
        raise IntegrityError("audit log is too busy; try again")

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)  # as the event store's appends
    def _append_onto(self, workspace_id: UUID, known: tuple[int, str], stored: list[Any],
                     head: tuple[int, str]) -> bool:
        recorder = self.app.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._append_onto_statement, (workspace_id, *known, *head, *columns(stored)), prepare=True)
            row = cursor.fetchone()
        return bool(row and row[self.APPEND_ONTO])

    APPEND_ONTO = "commhub_audit_append_onto"

    @cached_property
    def _append_function_sql(self) -> sql.Composed:
        """``APPEND_ONTO``: append and move the head if the stored head is the expected one, else
        nothing (false). The append itself is the event store's (it locks the log and notifies)."""
        recorder = self.app.recorder
        kind = recorder.datastore.originator_id_type
        return sql.SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(workspace uuid, known_version bigint, known_hash text,"
            " new_version bigint, new_hash text, ids {kind}[], versions bigint[], topics text[], states bytea[])"
            " RETURNS boolean LANGUAGE plpgsql AS $BODY$ "
            "BEGIN "
            "  PERFORM FROM {heads} WHERE workspace_id = workspace AND version = known_version AND hash = known_hash; "
            "  IF NOT FOUND THEN RETURN false; END IF; "
            "  PERFORM FROM {schema}.{append}(ids, versions, topics, states); "
            "  UPDATE {heads} SET version = new_version, hash = new_hash WHERE workspace_id = workspace; "
            "  RETURN true; "
            "END; $BODY$"
        ).format(schema=sql.Identifier(self.database.schema), function=sql.Identifier(self.APPEND_ONTO),
                 kind=sql.Identifier(kind), append=sql.Identifier(recorder.append_function),
                 heads=sql.Identifier(self.database.schema, "commhub_audit_heads"))

    @cached_property
    def _append_onto_statement(self) -> bytes:
        kind = self.app.recorder.datastore.originator_id_type
        return sql.SQL(
            "SELECT {schema}.{function}(%s, %s, %s, %s, %s, %b::{kind}[], %b::bigint[], %b::text[], %b::bytea[])"
        ).format(schema=sql.Identifier(self.database.schema), function=sql.Identifier(self.APPEND_ONTO),
                 kind=sql.Identifier(kind)).as_bytes(None)

    def _stored(self, stream: UUID, first: AuditEntry) -> bool:
        """Whether the batch that begins with ``first`` is stored already (a batch is stored whole or not at all)."""
        found = self.app.recorder.select_events(stream, gt=first.originator_version - 1,
                                                lte=first.originator_version, limit=1)
        return bool(found) and self.transcoder.decode(found[0].state).get("entry_id") == first.entry_id

    def _last(self, stream: UUID) -> tuple[int, str]:
        last = self.app.recorder.select_events(stream, desc=True, limit=1)
        if not last:
            return 0, GENESIS
        event = last[0]
        return event.originator_version, entry_hash(stream, event.originator_version, event.topic, event.state)

    @cached_property
    def _head_statement(self) -> bytes:
        """Follows the append (``appended``): moves the chain's head to the last entry appended."""
        return sql.SQL(
            "INSERT INTO {heads} SELECT %s, %s, %s WHERE EXISTS (SELECT FROM appended)"
            " ON CONFLICT (workspace_id) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash"
            " WHERE {heads}.version < EXCLUDED.version"
        ).format(heads=sql.Identifier(self.database.schema, "commhub_audit_heads")).as_bytes(None)

    # Verification --------------------------------------------------------------------------

    def workspaces(self) -> list[UUID]:
        """Workspaces with an audit chain (by their recorded head) or a workspace row."""
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT workspace_id FROM commhub_audit_heads UNION"
                " SELECT workspace_id FROM commhub_workspaces ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    def verify(self, workspace_id: UUID) -> ChainReport:
        """Walk the chain from its first entry: a missing, altered, inserted or reordered entry breaks it."""
        report = ChainReport(workspace_id)
        stream = audit_stream_id(workspace_id)
        expected_version, previous = 1, GENESIS
        hashes: dict[int, str] = {}
        gt: int | None = None
        while True:
            page = self.app.recorder.select_events(stream, gt=gt, limit=PAGE)
            for stored in page:
                version = stored.originator_version
                if version != expected_version:
                    report.problems.append(f"entry {expected_version} is missing (the next stored is {version})")
                try:
                    claimed = self.transcoder.decode(stored.state).get("previous_hash")
                except Exception:  # a stored state that no longer decodes was altered
                    claimed = None
                if claimed != previous:
                    report.problems.append(f"entry {version} does not chain onto the entry before it"
                                           " (that entry, or this one, was altered, removed or moved)")
                previous = entry_hash(stream, version, stored.topic, stored.state)
                hashes[version] = previous
                expected_version = version + 1
                report.entries += 1
            if len(page) < PAGE:
                break
            gt = page[-1].originator_version
        report.head = previous
        with self.database.connection() as conn:
            head = conn.execute("SELECT version, hash FROM commhub_audit_heads WHERE workspace_id = %s",
                                (workspace_id,)).fetchone()
        if head is None and report.entries:
            report.problems.append("the chain's recorded head is missing")
        elif head is not None and hashes.get(head[0]) != head[1]:
            report.problems.append(f"the recorded head (entry {head[0]}) does not match the stored entries"
                                   " (entries were altered or cut off the end)")
        return report

    # Reading -------------------------------------------------------------------------------

    def decode(self, state: bytes) -> dict[str, Any]:
        return self.transcoder.decode(state)
