"""Sends queued webhook deliveries: signed POSTs to subscribers' URLs, at least once.

Claims due rows of ``commhub_webhook_deliveries`` with SKIP LOCKED and a lease (a dead worker's
rows are taken again after it), resolves the URL's host at that moment and refuses private,
loopback and link-local addresses unless allowed, then connects to exactly the address it checked
(no second lookup an attacker's DNS could answer differently). No redirects are followed and no
response body is read or stored. Network errors, 5xx and 429 are retried with exponential backoff
and jitter up to ``max_attempts``; other answers fail the delivery at once. Every attempt is a row.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx

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


class DestinationRefusedError(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


@dataclass(frozen=True)
class Outcome:
    http_status: int | None
    error: str | None  # kind only: timeout, connect_error, dns_error, destination_refused, http_4xx, ...
    retry: bool

    @property
    def delivered(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified or not address.is_global)


def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: the first the host resolves to, if every one of them is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OSError("dns") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise OSError("dns")
    if not allow_private and any(_refused(a) for a in addresses):
        raise DestinationRefusedError("destination address not allowed")
    return str(sorted(addresses, key=lambda a: a.version)[0])  # IPv4 first: not every host has IPv6 routes


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to an address webhooks may not reach (when subscribing; every
    delivery checks again). A host that does not resolve now is left to the delivery-time check."""
    parts = urlsplit(url)
    try:
        resolve(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), allow_private)
    except OSError:
        pass


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], allow_private: bool) -> Outcome:
    """POST to the address the URL's host resolves to now, with the original Host and TLS name."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = resolve(host, port, allow_private)
    except DestinationRefusedError:
        return Outcome(None, "destination_refused", False)
    except OSError:
        return Outcome(None, "dns_error", True)
    literal = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    try:
        with client.stream("POST", pinned, content=body, headers={**headers, "Host": host_header},
                           extensions={"sni_hostname": host}) as response:
            status = response.status_code  # the body is never read: nothing of it is stored
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
        clock: Callable[[], datetime] | None = None,
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

    def run_once(self, limit: int = 20) -> int:
        """Send the deliveries due now; returns how many were claimed."""
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(CLAIM, {"now": now, "lease": now + self.lease, "limit": limit}).fetchall()
        if rows:
            with httpx.Client(timeout=self.timeout, follow_redirects=False, trust_env=False) as client, \
                    ThreadPoolExecutor(self.concurrency) as pool:
                list(pool.map(lambda row: self._deliver(client, *row), rows))
        return len(rows)

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
        outcome = post(client, subscription.url, body, headers, self.allow_private)
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
