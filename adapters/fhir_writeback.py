"""Writes appointment status changes back to the FHIR system they came from.

Claims due rows of ``commhub_fhir_writebacks`` with SKIP LOCKED (leased, so a dead worker's row is
taken again after the lease), reads the source's ``Appointment`` (GET), writes it back with the new
status (PUT, ``If-Match`` its version when the source gives an ETag), retries with backoff and
jitter on 5xx/429/408/412 or no answer, and records the outcome once as an event on the appointment.
Requests go through a guarded client (adapters.destinations): the source's host must resolve to an
address write-backs may reach, else the change is recorded as failed at once, not retried.
Before each attempt the appointment is reloaded: a change already recorded is never written again.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import quote

import httpx

from adapters import fhir
from adapters.destinations import DestinationRefusedError, guarded_client
from adapters.fhir_integrations import FhirIntegration, FhirIntegrations
from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
RETRYABLE = frozenset({408, 412, 425, 429, 500, 502, 503, 504})
FHIR_JSON = "application/fhir+json"
CLAIM = (
    "UPDATE commhub_fhir_writebacks SET attempts = attempts + 1, due_at = %(lease)s"
    " WHERE change_key IN (SELECT change_key FROM commhub_fhir_writebacks WHERE state = 'pending'"
    " AND due_at <= %(now)s ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING change_key, workspace_id, appointment_id, external_id, status, attempts"
)


@dataclass(frozen=True)
class Attempt:
    http_status: int | None  # None: no answer
    retry: bool

    @property
    def written(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def write_status(client: httpx.Client, integration: FhirIntegration, external_id: str, status: str) -> Attempt:
    """GET the source's Appointment, PUT it back with our status. The URL carries only its FHIR id."""
    url = f"{integration.base_url}/Appointment/{quote(external_id, safe='')}"
    headers = {"Authorization": f"Bearer {integration.token}", "Accept": FHIR_JSON}
    try:
        current = client.get(url, headers=headers)
        if current.status_code != 200:
            return Attempt(current.status_code, current.status_code in RETRYABLE)
        resource = fhir.with_status(current.json(), status)
        etag = current.headers.get("ETag")
        put_headers = {**headers, "Content-Type": FHIR_JSON, **({"If-Match": etag} if etag else {})}
        answer = client.put(url, json=resource, headers=put_headers)
    except DestinationRefusedError:  # the base URL's host now resolves to an address it may not reach
        return Attempt(None, False)
    except httpx.HTTPError:
        return Attempt(None, True)
    except (ValueError, fhir.FhirInvalidError):  # the source answered something that is not its Appointment
        return Attempt(502, False)
    return Attempt(answer.status_code, answer.status_code in RETRYABLE)


class FhirWriteBackWorker(PollingWorker):
    name = "fhir-writeback"

    def __init__(
        self, app: CommHub, database: Database, integrations: FhirIntegrations, *, max_attempts: int = 8,
        base_delay: float = 1.0, timeout: float = 10.0, clock: Callable[[], datetime] | None = None,
        poll_seconds: float = 5.0, allow_private: bool = False,
    ) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.integrations = integrations
        self.allow_private = allow_private  # FHIR servers at private/loopback addresses (adapters.destinations)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def run_once(self, limit: int = 20) -> int:
        """Write back the changes due now; returns how many rows were claimed."""
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(CLAIM, {"now": now, "lease": now + LEASE, "limit": limit}).fetchall()
        if rows:
            with guarded_client(allow_private=self.allow_private, timeout=self.timeout) as client:
                for row in rows:
                    self._write(client, *row)
        return len(rows)

    def _write(self, client: httpx.Client, key: str, workspace_id: Any, appointment_id: Any, external_id: str,
               status: str, attempts: int) -> None:
        appointment = self.app.get_appointment(workspace_id, appointment_id)
        if key in appointment.write_backs:  # recorded by an earlier attempt that died before finishing the row
            self._finish(key, appointment.write_backs[key], None)
            return
        integration = self.integrations.get(workspace_id)
        if integration is None:
            self._finish(key, "not_configured", None)
            return
        attempt = write_status(client, integration, external_id, status)
        if not attempt.written and attempt.retry and attempts < self.max_attempts:
            delay = self.base_delay * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
            log.warning("FHIR write-back attempt failed; retrying",
                        extra={"appointment_id": str(appointment_id), "http_status": attempt.http_status})
            with self.database.connection() as conn:
                conn.execute("UPDATE commhub_fhir_writebacks SET due_at = %s, http_status = %s"
                             " WHERE change_key = %s AND state = 'pending'",
                             (self.clock() + timedelta(seconds=delay), attempt.http_status, key))
            return
        self.app.record_write_back(workspace_id, appointment_id, key, status, fhir.WRITE_BACK[status],
                                   attempt.http_status, attempts, self.clock())
        self._finish(key, "written" if attempt.written else "failed", attempt.http_status)

    def _finish(self, key: str, state: str, http_status: int | None) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_fhir_writebacks SET state = %s, http_status = COALESCE(%s, http_status),"
                         " finished_at = %s WHERE change_key = %s AND state = 'pending'",
                         (state, http_status, self.clock(), key))
