"""Sends due reminders and answers replies to them: claims due rows with SKIP LOCKED (so several
workers, in any number of processes, never take the same job), and lets the application decide and
record each outcome. A claimed row is leased: if its worker dies, another takes it after the lease."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from eventsourcing.persistence import IntegrityError

from adapters.polling import PollingWorker
from adapters.postgres import Database
from domain.application import CommHub
from domain.replies import Verdict

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 8

CLAIM_JOBS = (
    "UPDATE commhub_reminder_jobs SET attempts = attempts + 1, due_at = %(lease)s"
    " WHERE job_key IN (SELECT job_key FROM commhub_reminder_jobs WHERE status = 'pending' AND due_at <= %(now)s"
    " ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING job_key, workspace_id, appointment_id, policy_id, planned_at, send_after, attempts"
)
CLAIM_REPLIES = (
    "UPDATE commhub_reminder_replies SET due_at = %(lease)s"
    " WHERE message_id IN (SELECT message_id FROM commhub_reminder_replies WHERE status = 'pending'"
    " AND due_at <= %(now)s ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING message_id, workspace_id, appointment_id, conversation_id, verdict"
)


class ReminderWorker(PollingWorker):
    name = "reminders"

    def __init__(self, app: CommHub, database: Database, *, clock: Callable[[], datetime] | None = None,
                 poll_seconds: float = 5.0) -> None:
        super().__init__()
        self.app = app
        self.database = database
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.poll_seconds = poll_seconds

    def run_once(self, limit: int = 50) -> int:
        """Handle the jobs and replies due now; returns how many rows were claimed."""
        now = self.clock()
        params = {"now": now, "lease": now + LEASE, "limit": limit}
        with self.database.connection() as conn:
            jobs = conn.execute(CLAIM_JOBS, params).fetchall()
            replies = conn.execute(CLAIM_REPLIES, params).fetchall()
        for job in jobs:
            self._send(*job)
        for reply in replies:
            self._answer(*reply)
        return len(jobs) + len(replies)

    def _send(self, key: str, workspace_id: Any, appointment_id: Any, policy_id: Any, planned: datetime,
              send_after: datetime, attempts: int) -> None:
        try:
            decision = self.app.send_reminder(workspace_id, appointment_id, policy_id, planned,
                                              send_after=send_after, now=self.clock())
        except Exception as error:  # the type says enough; the message may quote stored values
            log.warning("reminder job failed (%s)", type(error).__name__)
            if attempts >= MAX_ATTEMPTS:
                self._finish_job(key, "failed", type(error).__name__)
            elif isinstance(error, IntegrityError):  # lost a race for the conversation: try again now,
                self._release_job(key)               # not after the lease
            return  # otherwise leased: retried when the lease ends
        if decision.action == "defer":
            assert decision.until is not None
            with self.database.connection() as conn:
                conn.execute("UPDATE commhub_reminder_jobs SET due_at = %s, attempts = 0 WHERE job_key = %s"
                             " AND status = 'pending'", (decision.until, key))
        else:
            status = "sent" if decision.action == "send" or decision.reason == "sent" else "skipped"
            self._finish_job(key, status, decision.reason or "sent")

    def _release_job(self, key: str) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_reminder_jobs SET due_at = %s WHERE job_key = %s AND status = 'pending'",
                         (self.clock(), key))

    def _finish_job(self, key: str, status: str, outcome: str) -> None:
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_reminder_jobs SET status = %s, outcome = %s, finished_at = %s"
                         " WHERE job_key = %s AND status = 'pending'", (status, outcome, self.clock(), key))

    def _answer(self, message_id: Any, workspace_id: Any, appointment_id: Any, conversation_id: Any,
                verdict: str) -> None:
        try:
            outcome = self.app.answer_reminder_reply(workspace_id, appointment_id, conversation_id, message_id,
                                                     Verdict(verdict), self.clock())
        except Exception as error:
            log.warning("reminder reply failed (%s)", type(error).__name__)
            outcome = f"failed:{type(error).__name__}"
        with self.database.connection() as conn:
            conn.execute("UPDATE commhub_reminder_replies SET status = 'done', outcome = %s WHERE message_id = %s",
                         (outcome, message_id))
