"""Runs projections: reads the event log in order and applies each event to every read model,
writing the rows and the new position in one transaction, so each event counts exactly once.

Positions are rows in ``commhub_projection_positions``, locked ``FOR UPDATE`` while a batch is
applied: any number of processes may run projections and none applies an event twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

import psycopg
from eventsourcing.persistence import InterfaceError, Notification, OperationalError

from adapters.postgres import KEEPALIVE, Database
from domain.application import CommHub

log = logging.getLogger(__name__)

POSITIONS_SQL = """
CREATE TABLE IF NOT EXISTS commhub_projection_positions (
    name text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS commhub_projection_failures (
    name text NOT NULL,
    position bigint NOT NULL,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, position)
);
"""
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError, OperationalError, InterfaceError)


def projected_channel(database: Database) -> str:
    """NOTIFY channel on which runners announce that projections advanced."""
    return f"commhub_projected_{database.schema}"


def projected_floor(conn: psycopg.Connection[Any]) -> int:
    """The position every projection has reached: read models are complete up to here."""
    row = conn.execute("SELECT min(position) FROM commhub_projection_positions").fetchone()
    return int(row[0] or 0)


class Reached:
    """A position that only grows, and who waits for it to reach theirs: each waiter is woken once,
    when its position is reached (not on every step, as a shared condition would: under load dozens
    of requests wait for the projections, which advance hundreds of times a second). Threads block
    in ``wait_for``; the event loop awaits ``reached`` without holding a thread."""

    def __init__(self) -> None:
        self.position = 0
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, int, Callable[[], Any]]] = []  # a heap by position
        self._order = itertools.count()

    def advance(self, position: int) -> None:
        woken = []
        with self._lock:
            if position <= self.position:
                return
            self.position = position
            while self._waiting and self._waiting[0][0] <= position:
                woken.append(heapq.heappop(self._waiting)[2])
        for wake in woken:
            wake()

    def _watch(self, position: int, wake: Callable[[], Any]) -> bool:
        """Call ``wake`` once ``position`` is reached; False (and no call) when it already is."""
        with self._lock:
            if self.position >= position:
                return False
            heapq.heappush(self._waiting, (position, next(self._order), wake))
            return True

    def wait_for(self, position: int, timeout: float) -> bool:
        reached = threading.Event()
        if not self._watch(position, reached.set):
            return True
        return reached.wait(timeout)  # a waiter that timed out is dropped when its position is reached

    async def reached(self, position: int, timeout: float) -> bool:
        """``wait_for`` for the event loop: the request waits without holding a worker thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass

        if not self._watch(position, wake):
            return True
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return False
        return True


class Projection(Protocol):
    name: str

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        """Create the projection's tables and indexes if missing."""

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        """Delete every row, before a rebuild from zero."""

    def process(self, conn: psycopg.Connection[Any], event: Any, position: int) -> None:
        """Apply one event (ignoring those it does not care about)."""

    # Optional: ``batch(conn, events)``, a context manager around the events of each batch the
    # projection applies (projections.base.View.batch).


@dataclass(frozen=True)
class Batch:
    """What one ``run_once`` did: events read past ``start``, the lowest position its projections
    reached, and the floor of every read model (whichever runner keeps them) before and after."""

    start: int
    events: list[tuple[int, Any]]
    reached: int
    floor_before: int
    floor_after: int


class ProjectionRunner:
    def __init__(
        self, app: CommHub, database: Database, projections: Sequence[Projection], *, batch_size: int = 500,
        batch_interval: float = 0.01, pace: float = 3.0, max_batch_interval: float = 0.05,
        on_advance: Callable[[int, frozenset[type]], None] | None = None,
        on_applied: Callable[[int, list[tuple[int, Any]]], None] | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.batch_interval = batch_interval  # batches start at least this far apart while events keep coming
        # ... and at least ``pace`` times as long as the last batch took (at most ``max_batch_interval``):
        # when batches slow down (a busy machine), the next gathers more events, and each costs less.
        self.pace = pace
        self.max_batch_interval = max_batch_interval
        self.on_advance = on_advance
        # Called after a batch that moved the floor of every read model from ``start`` over exactly
        # its events (position, decoded event or None): the live feed pushes them without rereading.
        self.on_applied = on_applied
        self.backend_pids: set[int] = set()  # PostgreSQL sessions this runner announced batches from
        self.reached = Reached()
        self.channel = projected_channel(database)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Lifecycle -----------------------------------------------------------------------------

    def setup(self) -> None:
        with self.database.setting_up() as conn:
            conn.execute(POSITIONS_SQL)
            for projection in self.projections.values():
                projection.setup(conn)
                conn.execute(
                    "INSERT INTO commhub_projection_positions (name) VALUES (%s) ON CONFLICT DO NOTHING",
                    (projection.name,),
                )

    def start(self) -> ProjectionRunner:
        self.setup()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="commhub-projections", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # Processing ----------------------------------------------------------------------------

    def run_once(self, names: Iterable[str] | None = None) -> int:
        """Apply the next batch of events; returns how many events were read (0 when caught up).

        One transaction per batch: lock the positions, read the events past the lowest, apply them,
        move the positions. Another runner waits on the locks instead of reading the same batch.
        """
        chosen = list(names or self.projections)
        try:
            batch = self._batch(chosen, careful=False)
        except TRANSIENT:
            raise
        except Exception:  # some event cannot be applied: redo the batch one event at a time
            batch = self._batch(chosen, careful=True)
        if batch.events and self.on_applied is not None and batch.floor_before == batch.start \
                and batch.floor_after == batch.events[-1][0]:
            self.on_applied(batch.start, batch.events)  # every read model now includes these events
        self._advance(batch.reached, frozenset(type(event) for _, event in batch.events))
        return len(batch.events)

    def _batch(self, chosen: list[str], *, careful: bool) -> Batch:
        with self.database.connection() as conn, conn.transaction():
            if len(self.backend_pids) > 100:  # the pool replaced its connections many times over
                self.backend_pids.clear()
            self.backend_pids.add(conn.info.backend_pid)
            # Every row is locked (in name order, as every runner does): the floor of all read
            # models is then known exactly, before and after this batch.
            locked = conn.execute(
                "SELECT name, position FROM commhub_projection_positions ORDER BY name FOR UPDATE").fetchall()
            positions = {name: position for name, position in locked if name in chosen}
            floor_before = min((position for _, position in locked), default=0)
            start = min(positions.values(), default=0)
            events = [(n.id, self._decode(n)) for n in self._notifications(conn, start)]
            if not events:
                return Batch(start, [], start, floor_before, floor_before)
            if careful:
                reached = self._apply_locked(conn, positions, start, events, careful=True)
            else:  # statements go out without waiting for each answer; reads wait for theirs only
                with conn.pipeline():
                    reached = self._apply_locked(conn, positions, start, events, careful=False)
            last = events[-1][0]
            floor_after = min([reached.get(name, position) for name, position in locked], default=last)
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(floor_after)))
        return Batch(start, events, min(reached.values(), default=last), floor_before, floor_after)

    def _notifications(self, conn: psycopg.Connection[Any], start: int) -> list[Notification]:
        recorder = self.app.recorder
        rows = conn.execute(
            psycopg.sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
                " WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            ).format(psycopg.sql.Identifier(recorder.datastore.schema), psycopg.sql.Identifier(recorder.events_table_name)),
            (start, self.batch_size),
        ).fetchall()
        return [Notification(id=r[0], originator_id=r[1], originator_version=r[2], topic=r[3], state=r[4])
                for r in rows]

    def _decode(self, notification: Any) -> Any:
        try:
            return self.app.mapper.to_domain_event(notification)
        except TRANSIENT:
            raise
        except Exception as error:  # e.g. a broken seal: the event is recorded as failed, not retried forever
            log.error("event %d cannot be read (%s); projections skip it", notification.id, type(error).__name__)
            return None

    def _apply(self, chosen: list[str], start: int, events: list[tuple[int, Any]], *, careful: bool) -> dict[str, int]:
        """Apply events read earlier (before taking the locks) past each projection's position."""
        with self.database.connection() as conn, conn.transaction():
            locked = conn.execute(
                "SELECT name, position FROM commhub_projection_positions WHERE name = ANY(%s) ORDER BY name FOR UPDATE",
                (chosen,),
            ).fetchall()
            reached = self._apply_locked(conn, dict(locked), start, events, careful=careful)
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, str(events[-1][0])))
        return reached

    def _apply_locked(self, conn: Any, positions: dict[str, int], start: int, events: list[tuple[int, Any]], *,
                      careful: bool) -> dict[str, int]:
        """Apply events past each projection's locked position; rows and positions commit together.

        In careful mode each event runs in a savepoint, and one that fails is recorded in
        ``commhub_projection_failures`` and skipped, so a poison event cannot stall every read model.
        """
        reached: dict[str, int] = {}
        last = events[-1][0]
        for name, position in positions.items():
            reached[name] = position
            if position < start:
                continue  # reset by a rebuild since the events were read: its next batch starts lower
            projection = self.projections[name]
            pending = [(notification_id, event) for notification_id, event in events if notification_id > position]
            batch = getattr(projection, "batch", None)
            with nullcontext() if batch is None or not pending else \
                    batch(conn, [event for _, event in pending if event is not None]):
                for notification_id, event in pending:
                    if event is None:
                        self._record_failure(conn, name, notification_id, "unreadable event")
                    elif careful:
                        self._apply_one(conn, projection, event, notification_id)
                    else:
                        projection.process(conn, event, notification_id)
            if last > position:
                reached[name] = last
        advanced = [name for name, position in positions.items() if start <= position < last]
        conn.execute(
            "UPDATE commhub_projection_positions SET position = %s, updated_at = now() WHERE name = ANY(%s)",
            (last, advanced),
        )
        return reached

    def _apply_one(self, conn: Any, projection: Projection, event: Any, position: int) -> None:
        try:
            with conn.transaction():
                projection.process(conn, event, position)
        except TRANSIENT:
            raise
        except Exception as error:
            self._record_failure(conn, projection.name, position, type(error).__name__)

    @staticmethod
    def _record_failure(conn: Any, name: str, position: int, error: str) -> None:
        log.error("projection %s skipped event %d (%s)", name, position, error)
        conn.execute(
            "INSERT INTO commhub_projection_failures (name, position, error) VALUES (%s, %s, %s)"
            " ON CONFLICT (name, position) DO UPDATE SET error = EXCLUDED.error, failed_at = now()",
            (name, position, error),
        )

    def failures(self) -> list[tuple[str, int, str]]:
        with self.database.connect() as conn:
            return conn.execute("SELECT name, position, error FROM commhub_projection_failures ORDER BY position").fetchall()

    def catch_up(self, names: Iterable[str] | None = None, progress: Callable[[int], None] | None = None) -> int:
        total = 0
        while True:
            done = self.run_once(names)
            if not done:
                return total
            total += done
            if progress is not None:
                progress(done)

    def rebuild(self, name: str, progress: Callable[[int], None] | None = None) -> int:
        """Empty one projection and replay every event into it."""
        projection = self.projections[name]
        with self.database.connect() as conn, conn.transaction():
            conn.execute("SELECT position FROM commhub_projection_positions WHERE name = %s FOR UPDATE", (name,))
            projection.reset(conn)
            conn.execute("UPDATE commhub_projection_positions SET position = 0 WHERE name = %s", (name,))
            conn.execute("DELETE FROM commhub_projection_failures WHERE name = %s", (name,))
        return self.catch_up([name], progress)

    def lag(self) -> dict[str, int]:
        """Events each projection still has to apply."""
        head = self.app.recorder.max_notification_id() or 0
        with self.database.connect() as conn:
            rows = conn.execute("SELECT name, position FROM commhub_projection_positions").fetchall()
        return {name: head - position for name, position in rows if name in self.projections}

    def behind(self) -> int:
        """Events the slowest projection still has to apply."""
        return max(self.lag().values(), default=0)

    def wait_for(self, position: int, timeout: float = 5.0) -> bool:
        """Block until every projection has applied ``position`` (read-your-writes for the API)."""
        return self.reached.wait_for(position, timeout)

    @property
    def position(self) -> int:
        """The position every projection of this runner has applied."""
        return self.reached.position

    def _advance(self, position: int, kinds: frozenset[type]) -> None:
        """The read models reached ``position``; ``kinds``: the classes of the events just applied."""
        self.reached.advance(position)
        if self.on_advance is not None:
            self.on_advance(position, kinds)

    def interval_after(self, took: float) -> float:
        """How long after the start of a batch that took ``took`` seconds the next may start, while
        events keep coming (a full batch is followed at once: a backlog is read flat out)."""
        return min(max(self.batch_interval, self.pace * took), max(self.batch_interval, self.max_batch_interval))

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                with self.database.connect(autocommit=True, **KEEPALIVE) as listener:
                    listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.app.recorder.channel_name)))
                    backoff = 0.2
                    while not self._stopping.is_set():
                        started = time.monotonic()
                        if self.run_once() < self.batch_size:
                            took = time.monotonic() - started
                            for _ in listener.notifies(timeout=0.5, stop_after=1):
                                pass
                            rest = started + self.interval_after(took) - time.monotonic()
                            if rest > 0:  # under load, gather the events of a few commits into one batch
                                self._stopping.wait(rest)
            except TRANSIENT:
                log.warning("projection runner lost the database; retrying in %.1fs", backoff)
            except Exception as error:  # the message may quote stored values: log the type only
                log.error("projection runner failed (%s); retrying in %.1fs", type(error).__name__, backoff)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 5.0)
