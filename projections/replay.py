"""Replay as of a time: the inbox, contacts and timelines as they were known at a past moment, rebuilt
from the events.

The live views' own code (directory, inbox, timeline) runs into temporary tables of one connection
(PostgreSQL's ``pg_temp``), so a replay copies none of their logic, never touches the live read
models, and leaves nothing behind. Events are read through the application's sealing mapper: the
personal data of anyone erased since reads as erased, whatever the moment replayed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from adapters.postgres import Database
from domain.application import CommHub
from domain.contact import Contact
from domain.workspace import Workspace
from projections import queries
from projections.base import View
from projections.directory import Directory
from projections.inbox import Inbox
from projections.timeline import Timeline

SKEW = timedelta(seconds=5)
"""Events are appended in commit order, stamped with their command's clock a moment earlier; reading goes
on this far past the moment so an event stamped before it but committed just after is not lost."""

PAGE = 1000
Progress = Callable[[int, int], None]  # (events read in this batch, last position read)


class ReplayTimeInvalidError(ValueError):
    """The moment to replay must be a date and time with a time zone offset."""


@dataclass
class ReplayStats:
    events_read: int = 0
    events_applied: int = 0
    unreadable: int = 0
    last_position: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Replay:
    """What a replay found: rows shaped like the live API's, plus whether each contact is erased now."""

    as_of: datetime
    workspace_id: UUID | None
    contact_id: UUID | None
    contact: dict[str, Any] | None = None
    contacts: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    stats: ReplayStats = field(default_factory=ReplayStats)


def workspace_of(event: Any) -> UUID | None:
    if isinstance(event, Workspace.Event):
        return event.originator_id
    return getattr(event, "workspace_id", None)


class Replayer:
    """Rebuilds read models as of a moment, for one contact, one workspace, or every workspace."""

    views: tuple[type[View], ...] = (Directory, Inbox, Timeline)

    def __init__(self, app: CommHub, database: Database, *, batch_size: int = 1000) -> None:
        self.app = app
        self.database = database
        self.batch_size = batch_size

    def run(
        self, as_of: datetime, *, workspace_id: UUID | None = None, contact_id: UUID | None = None,
        progress: Progress | None = None,
    ) -> Replay:
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ReplayTimeInvalidError("as_of must include a time zone offset, e.g. 2026-11-01T09:00:00Z")
        if contact_id is not None and workspace_id is None:
            contact = self.app.repository.get(contact_id)
            workspace_id = contact.workspace_id
        result = Replay(as_of=as_of, workspace_id=workspace_id, contact_id=contact_id)
        merges: dict[UUID, list[UUID]] = {}
        with self.database.connect() as conn:
            conn.execute("SET search_path = pg_temp")  # the views' tables, private to this connection
            conn.execute("SET temp_buffers = '128MB'")  # allocated as used; the default 8 MB spills to disk early
            views = [view() for view in self.views]
            for view in views:
                view.setup(conn)
            started = time.perf_counter()
            self._apply(conn, views, result, merges, progress)
            result.stats.seconds = time.perf_counter() - started
            self._collect(conn, result, merges)
        self._mark_erased(result)
        return result

    # Reading the log ----------------------------------------------------------------------

    def _apply(self, conn: psycopg.Connection[Any], views: list[View], result: Replay,
               merges: dict[UUID, list[UUID]], progress: Progress | None) -> None:
        stats, horizon = result.stats, result.as_of + SKEW
        while True:
            notifications = self.app.recorder.select_notifications(start=stats.last_position + 1, limit=self.batch_size)
            if not notifications:
                return
            read_before, reached = stats.events_read, False
            with conn.transaction(), conn.pipeline():  # the views only write: no round trip per statement
                for notification in notifications:
                    event = self._decode(notification, stats)
                    if event is not None and event.timestamp > horizon:
                        reached = True
                        break
                    stats.last_position = notification.id
                    stats.events_read += 1
                    if event is None or event.timestamp > result.as_of or not self._wanted(event, result):
                        continue
                    if isinstance(event, Contact.Merged):
                        merges.setdefault(event.originator_id, []).extend(event.duplicate_subject_ids)
                    for view in views:
                        view.process(conn, event, notification.id)
                    stats.events_applied += 1
            if progress is not None:
                progress(stats.events_read - read_before, stats.last_position)
            if reached:
                return

    def _decode(self, notification: Any, stats: ReplayStats) -> Any:
        try:
            return self.app.mapper.to_domain_event(notification)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except Exception:  # a broken seal: the live runner skips it too
            stats.unreadable += 1
            return None

    @staticmethod
    def _wanted(event: Any, result: Replay) -> bool:
        return result.workspace_id is None or workspace_of(event) == result.workspace_id

    # Reading the rebuilt rows -------------------------------------------------------------

    def _collect(self, conn: psycopg.Connection[Any], result: Replay, merges: dict[UUID, list[UUID]]) -> None:
        cursor = conn.cursor(row_factory=dict_row)
        contacts = "SELECT contact_id, workspace_id, name, phone, email, time_zone, tags, status, merged_into," \
                   " restricted, objected_to_marketing, created_at FROM commhub_contacts"
        if result.contact_id is not None:
            result.contact = cursor.execute(f"{contacts} WHERE contact_id = %s", (result.contact_id,)).fetchone()
            subjects = self._subjects(result.contact_id, merges)
            result.timeline = self._timeline(conn, result.workspace_id, subjects)
            result.inbox = [row for row in self._inbox(conn, result.workspace_id) if row["contact_id"] in subjects]
            return
        where, params = ("", ()) if result.workspace_id is None else (" WHERE workspace_id = %s", (result.workspace_id,))
        result.contacts = cursor.execute(f"{contacts}{where} ORDER BY created_at, contact_id", params).fetchall()
        result.inbox = self._inbox(conn, result.workspace_id)
        result.timeline = cursor.execute(
            f"SELECT position, contact_id, kind, at, actor_id, conversation_id, detail FROM commhub_timeline{where}"
            " ORDER BY position", params).fetchall()

    @staticmethod
    def _subjects(contact_id: UUID, merges: dict[UUID, list[UUID]]) -> list[UUID]:
        subjects = [contact_id]
        for subject in subjects:  # grows while walking: duplicates of duplicates
            subjects.extend(s for s in merges.get(subject, []) if s not in subjects)
        return subjects

    @staticmethod
    def _timeline(conn: psycopg.Connection[Any], workspace_id: UUID | None, subjects: list[UUID]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while True:
            page = queries.timeline(conn, workspace_id, subjects, after=rows[-1]["position"] if rows else 0, limit=PAGE)
            rows += page
            if len(page) < PAGE:
                return rows

    @staticmethod
    def _inbox(conn: psycopg.Connection[Any], workspace_id: UUID | None) -> list[dict[str, Any]]:
        workspaces = [workspace_id] if workspace_id is not None else [
            r[0] for r in conn.execute("SELECT DISTINCT workspace_id FROM commhub_inbox ORDER BY 1")]
        rows: list[dict[str, Any]] = []
        for each in workspaces:
            cursor: str | None = None
            while True:
                page, cursor = queries.list_inbox(conn, each, view="all", cursor=cursor, limit=PAGE)
                rows += page
                if cursor is None:
                    break
        return rows

    def _mark_erased(self, result: Replay) -> None:
        """Whoever is erased now is shown as erased in the past too (their data already reads as erased)."""
        where, params = ("", ()) if result.workspace_id is None else (" WHERE workspace_id = %s", (result.workspace_id,))
        with self.database.connection() as conn:
            erased = {r[0] for r in conn.execute(f"SELECT subject_id FROM commhub_key_tombstones{where}", params)}
        for row in [*result.contacts, *([result.contact] if result.contact else [])]:
            row["erased"] = row["contact_id"] in erased
        for row in result.inbox:
            row["contact_erased"] = row["contact_id"] in erased
        if result.contact_id is not None and result.contact is None and result.contact_id in erased:
            result.contact = {"contact_id": result.contact_id, "erased": True}
