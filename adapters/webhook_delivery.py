"""Sends queued webhook deliveries: signed POSTs to subscribers' URLs, at least once.

Claims due rows of ``commhub_webhook_deliveries`` with SKIP LOCKED and a lease (a dead worker's
rows are taken again after it) and posts through a guarded client (adapters.destinations): the URL's
host is resolved at that moment, private, loopback and link-local addresses are refused unless
allowed, and the connection goes to exactly the address checked. No redirects are followed and no
response body is read or stored. Network errors, 5xx and 429 are retried with exponential backoff
and jitter up to ``max_attempts``; other answers fail the delivery at once. Every attempt is a row.
Deliveries that finished more than ``keep_days`` ago are removed, hourly, with their attempts.
"""

from __future__ import annotations

import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from uuid import UUID

import httpx

from adapters.destinations import DestinationRefusedError, UnresolvedHostError, guarded_client
from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub
from domain.ports import KeyShredder
from domain.webhooks import SIGNATURE_HEADER, retry_delay, signature

log = logging.getLogger(__name__)

CLAIM = (
    "UPDATE commhub_webhook_deliveries SET attempts = attempts + 1, next_attempt_at = %(lease)s"
    " WHERE delivery_id IN (SELECT delivery_id FROM commhub_webhook_deliveries WHERE state = 'pending'"
    " AND next_attempt_at <= %(now)s ORDER BY next_attempt_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING delivery_id, subscription_id, workspace_id, event_type, subject_id, payload, attempts"
)


PRUNE_EVERY = 3600.0  # seconds between two prunes by one worker
PRUNE_BATCH = 5000  # deliveries removed per transaction
PRUNE = (  # one statement: the deliveries, their attempts and the mark go together or not at all
    "WITH gone AS (DELETE FROM commhub_webhook_deliveries WHERE delivery_id IN (SELECT delivery_id"
    " FROM commhub_webhook_deliveries WHERE state <> 'pending' AND finished_at < %(cutoff)s LIMIT %(limit)s)"
    " RETURNING delivery_id, created_at),"
    " attempts AS (DELETE FROM commhub_webhook_attempts WHERE delivery_id IN (SELECT delivery_id FROM gone)),"
    " mark AS (INSERT INTO commhub_webhook_pruned (through) SELECT max(created_at) FROM gone HAVING count(*) > 0"
    " ON CONFLICT (singleton) DO UPDATE SET through = GREATEST(commhub_webhook_pruned.through, EXCLUDED.through))"
    " SELECT count(*) FROM gone"
)


@dataclass(frozen=True)
class Outcome:
    http_status: int | None
    error: str | None  # kind only: timeout, connect_error, dns_error, destination_refused, http_4xx, ...
    retry: bool

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST through a guarded client (adapters.destinations): to the address the URL's host resolves
    to now, if that address is allowed, with the original Host and TLS name."""
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code  # the body is never read: nothing of it is stored
    except DestinationRefusedError:
        return Outcome(None, "destination_refused", False)
    except UnresolvedHostError:
        return Outcome(None, "dns_error", True)
    except httpx.TimeoutException:
        return Outcome(None, "timeout", True)
    except httpx.ConnectError:
        return Outcome(None, "connect_error", True)
    except httpx.HTTPError:
        return Outcome(None, "network_error", True)
    if 200 <= status < 300:
        return Outcome(status, None, False)
    retry = status == 429 or status >= 500
    return Outcome(status, f"http_{status}", retry)


class WebhookWorker(PollingWorker):
    name = "webhooks"

    def __init__(
        self, app: CommHub, database: Database, shredder: KeyShredder, *, allow_private: bool = False,
        timeout: float = 10.0, max_attempts: int = 8, base_delay: float = 5.0, max_delay: float = 3600.0,
        lease_seconds: float = 60.0, concurrency: int = 4, poll_seconds: float = 5.0,
        clock: Callable[[], datetime] | None = None, keep_days: float = 30.0,
    ) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.shredder = shredder
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = timedelta(seconds=lease_seconds)
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.keep_days = keep_days  # finished deliveries are removed this long after they finished (0: kept)
        self._next_prune = 0.0  # time.monotonic() of the next prune: at the first run, then hourly

    def run_once(self, limit: int = 20) -> int:
        """Send the deliveries due now (and, once an hour, prune old finished ones); returns how many
        were claimed."""
        if self.keep_days > 0 and time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            self.prune()
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(CLAIM, {"now": now, "lease": now + self.lease, "limit": limit}).fetchall()
        if rows:
            with guarded_client(allow_private=self.allow_private, timeout=self.timeout) as client, \
                    ThreadPoolExecutor(self.concurrency) as pool:
                list(pool.map(lambda row: self._deliver(client, *row), rows))
        return len(rows)

    def prune(self) -> int:
        """Remove deliveries that finished more than ``keep_days`` ago, with their attempts; returns
        how many. The newest event time among them is recorded in the same statement
        (``commhub_webhook_pruned.through``): the projection enqueues no event from then or before,
        so a rebuild cannot queue — and send — a removed delivery again."""
        if self.keep_days <= 0:
            return 0
        cutoff = self.clock() - timedelta(days=self.keep_days)
        removed = 0
        while True:
            with self.database.connection() as conn:
                [count] = conn.execute(PRUNE, {"cutoff": cutoff, "limit": PRUNE_BATCH}).fetchone()
            removed += count
            if count < PRUNE_BATCH:
                break
        if removed:
            log.info("removed old webhook deliveries", extra={"deliveries": removed, "keep_days": self.keep_days})
        return removed

    def _deliver(self, client: httpx.Client, delivery_id: UUID, subscription_id: UUID, workspace_id: UUID,
                 event_type: str, subject_id: UUID, payload: dict[str, Any], attempt: int) -> None:
        subscription = self.app.find_webhook(subscription_id)
        if subscription is None or subscription.deleted or not subscription.active \
                or subscription.workspace_id != workspace_id or subscription.signing_secret is None:
            self._close(delivery_id, "cancelled")
            return
        if event_type != "subject.erased" and self.shredder.is_erased(subject_id):
            self._close(delivery_id, "purged")  # erased after it was queued: nothing about them leaves
            return
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        started, began = self.clock(), time.monotonic()
        headers = {
            "Content-Type": "application/json", "User-Agent": "commhub-webhooks/1",
            SIGNATURE_HEADER: signature(subscription.signing_secret, int(started.timestamp()), body),
            "Commhub-Event-Id": str(payload["id"]), "Commhub-Event-Type": event_type,
            "Commhub-Delivery-Id": str(delivery_id),
        }
        outcome = post(client, subscription.url, body, headers)
        self._record(delivery_id, attempt, started, int((time.monotonic() - began) * 1000), outcome)

    def _record(self, delivery_id: UUID, attempt: int, started: datetime, duration_ms: int, outcome: Outcome) -> None:
        retry_at = None
        if outcome.delivered:
            state = "delivered"
        elif outcome.retry and attempt < self.max_attempts:
            state = "pending"
            delay = retry_delay(attempt, self.base_delay, self.max_delay, random.uniform(0.5, 1.5))
            retry_at = self.clock() + timedelta(seconds=delay)
        else:
            state = "failed"
        if not outcome.delivered:
            log.warning("webhook delivery attempt failed", extra={
                "delivery_id": str(delivery_id), "http_status": outcome.http_status, "error": outcome.error})
        with self.database.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO commhub_webhook_attempts VALUES (%s, %s, %s, %s, %s, %s, %s)"
                         " ON CONFLICT DO NOTHING", (delivery_id, attempt, started, duration_ms, outcome.http_status,
                                                     outcome.error, retry_at))
            conn.execute(
                "UPDATE commhub_webhook_deliveries SET state = %s, next_attempt_at = COALESCE(%s, next_attempt_at),"
                " finished_at = CASE WHEN %s = 'pending' THEN NULL ELSE %s END, last_status = %s, last_error = %s"
                " WHERE delivery_id = %s AND state = 'pending'",
                (state, retry_at, state, self.clock(), outcome.http_status, outcome.error, delivery_id))

    def _close(self, delivery_id: UUID, state: str) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_webhook_deliveries SET state = %s, finished_at = %s"
                         " WHERE delivery_id = %s AND state = 'pending'", (state, self.clock(), delivery_id))
