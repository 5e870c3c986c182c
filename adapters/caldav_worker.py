"""Pushes appointments to staff members' own calendars over CalDAV.

Claims due rows of ``commhub_caldav_pushes`` with SKIP LOCKED and a lease (so one push per calendar
event is in flight at a time, and a dead worker's row is taken again after the lease), reads the
appointment *as it is now*, and makes the calendar match: PUT the event (create or update), DELETE
it (cancelled, moved to someone else, contact erased), or nothing when the calendar already holds
this version. Requests go through a guarded client (adapters.destinations: the calendar's host must
resolve to an address calendars may reach). Network errors, 5xx and 429 are retried with exponential
backoff and jitter; after ``max_attempts`` the push is recorded as failed (visible per appointment in
the API) until the appointment changes again. An outcome and the release of its queue row are one
transaction. Nothing personal is logged: ids and HTTP statuses only.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone
from typing import Callable
from uuid import UUID

import httpx

from adapters.caldav import Outcome, delete_event, put_event
from adapters.caldav_store import RELEASE, CaldavStore, Connection, SyncRow
from adapters.destinations import guarded_client
from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub
from domain.calendar_sync import (
    AppointmentState,
    desired_event,
    pushed_key,
    resource_name,
    worth_creating,
)
from domain.errors import NotFoundError
from domain.personal import readable

log = logging.getLogger(__name__)

CLAIM = (
    "UPDATE commhub_caldav_pushes SET leased_until = %(lease)s WHERE (appointment_id, staff_id) IN ("
    " SELECT appointment_id, staff_id FROM commhub_caldav_pushes WHERE due_at <= %(now)s"
    " AND (leased_until IS NULL OR leased_until <= %(now)s) ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING appointment_id, staff_id, workspace_id, contact_id, changes, erased"
)
MAX_DELAY = 3600.0


class CaldavWorker(PollingWorker):
    name = "caldav"

    def __init__(
        self, app: CommHub, database: Database, store: CaldavStore, *, max_attempts: int = 8,
        base_delay: float = 2.0, timeout: float = 10.0, clock: Callable[[], datetime] | None = None,
        poll_seconds: float = 5.0, allow_private: bool = False,
    ) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.store = store
        self.allow_private = allow_private  # calendar servers at private/loopback addresses (adapters.destinations)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=max(60.0, timeout * 10))
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def run_once(self, limit: int = 20) -> int:
        """Push what is due now; returns how many rows were claimed."""
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(CLAIM, {"now": now, "lease": now + self.lease, "limit": limit}).fetchall()
        if rows:
            with guarded_client(allow_private=self.allow_private, timeout=self.timeout) as client:
                for row in rows:
                    self._push(client, *row)
        return len(rows)

    def _push(self, client: httpx.Client, appointment_id: UUID, staff_id: UUID, workspace_id: UUID,
              contact_id: UUID, changes: int, erased: bool) -> None:
        connection = self.store.get(staff_id)
        if connection is None or connection.workspace_id != workspace_id:
            self._release(appointment_id, staff_id, changes)  # no calendar: connecting one flags the row again
            return
        try:
            appointment = self.app.get_appointment(workspace_id, appointment_id)
            contact = self.app.get_contact(workspace_id, contact_id)
        except NotFoundError:
            self._release(appointment_id, staff_id, changes)
            return
        include_name = self.store.include_contact_name(workspace_id)
        erased = erased or contact.erased
        name = readable(contact.name) if include_name and not erased else None
        state = AppointmentState(appointment.id, appointment.staff_id, appointment.status, appointment.starts_at,
                                 appointment.ends_at, appointment.location, appointment.revision)
        event = desired_event(state, staff_id, contact_erased=erased, contact_name=name)
        key = pushed_key(appointment.version, contact.version if name is not None else None)
        synced = self.store.sync_row(appointment_id, staff_id)
        now = self.clock()
        if event is None:
            if synced is None or synced.state in ("deleted", "skipped"):
                self._release(appointment_id, staff_id, changes)  # never in that calendar, or gone already
                return
            outcome = delete_event(client, connection.account, resource_name(appointment_id, staff_id), synced.etag)
            self._settle(connection, appointment_id, synced, outcome, changes, None, "deleted")
            return
        if synced is not None and synced.state == "synced" and synced.pushed_key == key:
            self._release(appointment_id, staff_id, changes)
            return
        if (synced is None or synced.state in ("deleted", "skipped")) and not worth_creating(event, now):
            self.store.record(appointment_id, staff_id, workspace_id, state="skipped", etag=None, pushed_key=None,
                              attempts=0, conflicts=0, http_status=None, now=now, changes=changes)
            return
        etag = synced.etag if synced is not None and synced.state in ("synced", "retrying", "failed") else None
        outcome = put_event(client, connection.account, resource_name(appointment_id, staff_id), event, etag, now)
        self._settle(connection, appointment_id, synced, outcome, changes, key, "synced")

    def _settle(self, connection: Connection, appointment_id: UUID, synced: SyncRow | None, outcome: Outcome,
                changes: int, key: str | None, done_state: str) -> None:
        staff_id, workspace_id, now = connection.staff_id, connection.workspace_id, self.clock()
        attempts = (synced.attempts if synced is not None and synced.state == "retrying" else 0) + 1
        etag = synced.etag if synced is not None else None
        if outcome.done:
            self.store.record(appointment_id, staff_id, workspace_id, state=done_state,
                              etag=outcome.etag if done_state == "synced" else None, pushed_key=key,
                              attempts=attempts, conflicts=outcome.conflicts, http_status=outcome.http_status, now=now,
                              changes=changes)
            return
        if outcome.retryable and attempts < self.max_attempts:
            delay = min(MAX_DELAY, self.base_delay * 2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
            delay = max(delay, min(MAX_DELAY, outcome.retry_after or 0.0))
            log.warning("calendar push failed; retrying", extra={
                "appointment_id": str(appointment_id), "staff_id": str(staff_id), "http_status": outcome.http_status,
                "attempt": attempts})
            self.store.record(appointment_id, staff_id, workspace_id, state="retrying", etag=etag,
                              pushed_key=synced.pushed_key if synced is not None else None, attempts=attempts,
                              conflicts=outcome.conflicts, http_status=outcome.http_status, now=now,
                              changes=changes, retry_at=now + timedelta(seconds=delay))
            return
        log.warning("calendar push failed for good", extra={
            "appointment_id": str(appointment_id), "staff_id": str(staff_id), "http_status": outcome.http_status,
            "attempt": attempts})
        self.store.record(appointment_id, staff_id, workspace_id, state="failed", etag=etag,
                          pushed_key=synced.pushed_key if synced is not None else None, attempts=attempts,
                          conflicts=outcome.conflicts, http_status=outcome.http_status, now=now, changes=changes)

    def _release(self, appointment_id: UUID, staff_id: UUID, changes: int) -> None:
        """Done with this row, unless the projection flagged it again meanwhile (then it stays due)."""
        with self.database.connection() as conn:
            conn.execute(RELEASE, (changes, appointment_id, staff_id))

