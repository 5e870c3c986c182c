"""Delivers queued outbound messages: claims due outbox rows with SKIP LOCKED (so several workers
never take the same row), sends through the channel, and records the outcome as an event."""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping


from adapters.channels import ChannelSender, DeliveryResult, OutboundMessage
from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)


class OutboxWorker(PollingWorker):
    name = "outbox"
    poll_seconds = 1.0
    stop_timeout = 30.0  # finish the delivery in flight, release the rest

    def __init__(
        self, app: CommHub, database: Database, channels: Mapping[str, ChannelSender], *,
        max_attempts: int = 8, base_delay: float = 2.0, clock: Callable[[], datetime] | None = None,
        concurrency: int = 1, lease_seconds: float = LEASE.total_seconds(),
    ) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.channels = channels
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.concurrency = max(1, concurrency)  # sends of one batch in parallel: each row is leased to us
        self.lease = timedelta(seconds=lease_seconds)  # a dead worker's claimed rows come back after this
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def run_once(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many rows were attempted."""
        now = self.clock()
        with self.database.connection() as conn:
            rows = conn.execute(
                "UPDATE commhub_outbox SET attempts = attempts + 1, next_attempt_at = %s"
                " WHERE message_id IN (SELECT message_id FROM commhub_outbox WHERE status = 'pending'"
                " AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING message_id, workspace_id, conversation_id, contact_id, channel, body, attempts, purpose",
                (now + self.lease, now, limit),
            ).fetchall()
        def handle(row: tuple[Any, ...]) -> None:
            *fields, purpose = row
            if self.stopping:  # shutting down: hand it back instead of holding its lease
                self._release([row[0]])
                return
            message = OutboundMessage(*fields)
            if message.attempt > 1 and self._outcome_recorded(message):
                return  # the read model will close the row; its lease keeps it from us until then
            refusal = self._refusal(message, purpose, now)
            if refusal is not None:
                self._cancel(message, refusal)
            elif (held := self.app.held_until(message.workspace_id, message.contact_id, message.channel, purpose,
                                              now)) is not None:
                self._hold(message, held)
            else:
                self._deliver(message)

        if self.concurrency > 1 and len(rows) > 1:
            with ThreadPoolExecutor(min(self.concurrency, len(rows)), thread_name_prefix="commhub-send") as pool:
                list(pool.map(handle, rows))
        else:
            for row in rows:
                handle(row)
        return len(rows)

    def _release(self, message_ids: list[Any]) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE commhub_outbox SET attempts = attempts - 1, next_attempt_at = %s"
                " WHERE message_id = ANY(%s) AND status = 'pending'",
                (self.clock(), message_ids),
            )

    def _outcome_recorded(self, message: OutboundMessage) -> bool:
        """Whether the event store already holds an outcome for a message claimed again: a worker that
        died after the provider took it (and a status callback recorded it), or before it could close
        the row, leaves the row pending until the outbox projection catches up. Sending it again then
        would deliver it twice."""
        conversation = self.app.get_conversation(message.workspace_id, message.conversation_id)
        return conversation.outbound.get(str(message.message_id)) != "queued"

    def _refusal(self, message: OutboundMessage, purpose: str, now: datetime) -> str | None:
        """Consent is checked again at the moment of sending: a STOP, a restriction or an erasure
        that arrived while the message waited stops it."""
        if message.body is None:
            return "erased"
        decision = self.app.may_send(message.workspace_id, message.contact_id, message.channel, purpose, now)
        return None if decision.allowed else str(decision.reason)

    def _hold(self, message: OutboundMessage, until: datetime) -> None:
        """The contact's quiet hours began while the message waited: it goes when they end, and the
        wait does not count as an attempt."""
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE commhub_outbox SET attempts = attempts - 1, next_attempt_at = %s, last_error = 'quiet_hours'"
                " WHERE message_id = %s AND status = 'pending'",
                (until, message.message_id),
            )

    def _cancel(self, message: OutboundMessage, reason: str) -> None:
        now = self.clock()
        if self.app.record_delivery(message.workspace_id, message.conversation_id, message.message_id, "cancelled",
                                    reason, now):
            self._finish(message, "cancelled", reason, now, done=True)

    def _deliver(self, message: OutboundMessage) -> None:
        channel = self.channels.get(message.channel)
        try:
            result = channel.send(message) if channel else DeliveryResult("failed", error_code="no_channel")
        except Exception as error:  # a provider error must not stop the worker; the type says enough
            log.warning("delivery attempt failed", extra={"message_id": str(message.message_id),
                                                          "error": type(error).__name__})
            result = DeliveryResult("failed", error_code=type(error).__name__, retry=True)
        now = self.clock()
        if result.retry and message.attempt < self.max_attempts:
            delay = self.base_delay * 2 ** (message.attempt - 1) * random.uniform(0.5, 1.5)
            self._finish(message, "pending", result.error_code, now + timedelta(seconds=delay))
            return
        if self.app.record_delivery(message.workspace_id, message.conversation_id, message.message_id, result.status,
                                    result.error_code, now):
            self._finish(message, "failed" if result.status == "failed" else "sent", result.error_code, now, done=True)
        # Otherwise an outcome was recorded first (Twilio's status callback can beat the answer to our own call):
        # the row stays leased to us until the outbox projection closes it from that event, as a rebuild would.

    def _finish(self, message: OutboundMessage, status: str, error: str | None, when: datetime, done: bool = False) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "UPDATE commhub_outbox SET status = %s, last_error = %s, next_attempt_at = %s,"
                " finished_at = CASE WHEN %s THEN %s ELSE NULL END, body = CASE WHEN %s THEN NULL ELSE body END"
                " WHERE message_id = %s AND status = 'pending'",
                (status, error, when, done, when, done, message.message_id),
            )
