"""Retention: each workspace's policy is turned into a plan (a dry-run report) and applied as
ordinary erasure requests and an expiry of message bodies; a worker thread runs it on a schedule
and resumes erasure requests a crash left half-way."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import psycopg

from adapters.postgres import installation_lock
from api.erasure import ErasureWorkflow
from domain.privacy import ErasureReason
from projections.privacy import pending_erasures

log = logging.getLogger(__name__)
RETENTION_LOCK = 7261004


def retention_lock(schema: str) -> int:
    """One retention run at a time across every process of an installation (a schema): installations
    sharing a PostgreSQL database do not skip each other's runs, nor do runs wait on a process
    starting up (its start-up lock, 7261003, was this key once: a run then did nothing)."""
    return installation_lock(RETENTION_LOCK, schema)


@dataclass
class RetentionPlan:
    """What applying the policy now would do. Ids and counts only."""

    workspace_id: UUID
    at: datetime
    erase_inactive_after_days: int | None = None
    delete_bodies_after_days: int | None = None
    inactive_before: datetime | None = None
    erase: list[dict[str, Any]] = field(default_factory=list)  # contact_id, last_activity
    held: list[UUID] = field(default_factory=list)  # inactive but under legal hold: kept
    bodies_before: datetime | None = None
    bodies: int = 0
    files: int = 0

    def report(self) -> dict[str, Any]:
        return {
            "workspace_id": str(self.workspace_id), "at": self.at.isoformat(),
            "policy": {"erase_inactive_after_days": self.erase_inactive_after_days,
                       "delete_bodies_after_days": self.delete_bodies_after_days},
            "inactive_before": self.inactive_before.isoformat() if self.inactive_before else None,
            "contacts_to_erase": [{"contact_id": str(c["contact_id"]), "last_activity": c["last_activity"].isoformat()}
                                  for c in self.erase],
            "kept_under_legal_hold": [str(c) for c in self.held],
            "bodies_before": self.bodies_before.isoformat() if self.bodies_before else None,
            "message_bodies_to_delete": self.bodies, "files_to_delete": self.files,
        }


class Retention:
    def __init__(self, workflow: ErasureWorkflow) -> None:
        self.workflow = workflow
        self.app = workflow.app
        self.database = workflow.database

    def plan(self, workspace_id: UUID, now: datetime) -> RetentionPlan:
        policy = self.app.retention_policy(workspace_id)
        plan = RetentionPlan(workspace_id, now)
        if policy is None:
            return plan
        plan.erase_inactive_after_days = policy.erase_inactive_after_days
        plan.delete_bodies_after_days = policy.delete_bodies_after_days
        with self.database.connection() as conn:
            if policy.erase_inactive_after_days:
                plan.inactive_before = now - timedelta(days=policy.erase_inactive_after_days)
                rows = conn.execute(
                    "SELECT c.contact_id, max(t.at) FROM commhub_contacts c"
                    " JOIN commhub_timeline t ON t.contact_id = c.contact_id"
                    " WHERE c.workspace_id = %s AND c.status = 'active'"
                    " GROUP BY c.contact_id HAVING max(t.at) < %s ORDER BY max(t.at)",
                    (workspace_id, plan.inactive_before),
                ).fetchall()
                for contact_id, last in rows:
                    if self.app.get_contact(workspace_id, contact_id).legal_hold:
                        plan.held.append(contact_id)
                    else:
                        plan.erase.append({"contact_id": contact_id, "last_activity": last})
            if policy.delete_bodies_after_days:
                plan.bodies_before = now - timedelta(days=policy.delete_bodies_after_days)
                plan.bodies = int(conn.execute(
                    "SELECT count(*) FROM commhub_messages WHERE workspace_id = %s AND at < %s AND kind <> 'note'"
                    " AND (body IS NOT NULL OR attachments IS NOT NULL)", (workspace_id, plan.bodies_before),
                ).fetchone()[0])
                plan.files = int(conn.execute(
                    "SELECT count(*) FROM commhub_sealed_files WHERE workspace_id = %s AND created_at < %s",
                    (workspace_id, plan.bodies_before),
                ).fetchone()[0])
        return plan

    def apply(self, plan: RetentionPlan, *, via: str = "system", actor_id: UUID | None = None,
              wait: float | None = None) -> list[Any]:
        """Issue an ordinary erasure request per contact in the plan, then expire bodies; returns the
        requests, each completed unless its projections took longer than ``wait`` seconds."""
        reference = f"retention-{plan.at.date().isoformat()}"
        requests = [
            self.workflow.request(plan.workspace_id, row["contact_id"], reason=ErasureReason.RETENTION_POLICY.value,
                                  reference=reference, requested_by=actor_id, via=via, wait=0, now=plan.at)
            for row in plan.erase
        ]
        if plan.bodies_before is not None and self.app.expire_bodies(plan.workspace_id, plan.bodies_before, plan.at):
            self.workflow.audit.record(plan.workspace_id, "privacy.bodies_expired", actor_id=actor_id, via=via,
                                       count=plan.bodies, now=plan.at)
        return [self.workflow.advance(plan.workspace_id, r.id, wait=wait) for r in requests if r.status != "refused"]

    def workspaces(self) -> list[UUID]:
        with self.database.connection() as conn:
            return [r[0] for r in conn.execute("SELECT workspace_id FROM commhub_workspaces ORDER BY 1").fetchall()]

    def run(self, now: datetime | None = None) -> int:
        """One scheduled run over every workspace (skipped if another process is running one)."""
        with self.database.connect(autocommit=True) as lock:
            if not lock.execute("SELECT pg_try_advisory_lock(%s)", (retention_lock(self.database.schema),)).fetchone()[0]:
                return 0
            for workspace_id, erasure_id in self._pending():
                self.workflow.advance(workspace_id, erasure_id, wait=0)
            erased = 0
            for workspace_id in self.workspaces():
                plan = self.plan(workspace_id, now or datetime.now(timezone.utc))
                if plan.erase or plan.bodies_before is not None:
                    erased += len(self.apply(plan, wait=0))
            return erased

    def _pending(self) -> list[tuple[UUID, UUID]]:
        with self.database.connection() as conn:
            return pending_erasures(conn)


class RetentionWorker:
    """Runs retention every ``interval`` seconds (0: never) in a thread beside projections and the outbox."""

    def __init__(self, retention: Retention, interval: float) -> None:
        self.retention = retention
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionWorker:
        if self.interval > 0:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="commhub-retention", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.retention.run()
            except (psycopg.Error, OSError) as error:
                log.warning("retention run failed (%s); next run as scheduled", type(error).__name__)
            except Exception as error:  # the message may quote stored values: log the type only
                log.error("retention run failed (%s); next run as scheduled", type(error).__name__)
