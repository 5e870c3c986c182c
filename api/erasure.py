"""The erasure workflow: requested → legal-hold check → queued sends cancelled → keys shredded →
every projection past the erasure → completed, with a signed certificate.

``advance`` drives a request as far as it can go and is safe to call again (from the API, the CLI,
or the privacy worker resuming a request a crash left half-way).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from adapters.audit_log import AuditLog
from adapters.codec import EXT_SEALED
from adapters.sealed_files import SealedFiles
from adapters.postgres import Database
from adapters.signing import WorkspaceSigner
from domain.application import CommHub
from domain.contact import Contact
from domain.privacy import ErasureRequest
from projections.runner import ProjectionRunner

ERASED_TOPIC = get_topic(Contact.Erased)
STREAMS_ABOUT = (
    # Streams other than the contact's own that hold sealed fields of a contact: one query per
    # feature with such streams (a new one adds its line here; the certificate counts them).
    "SELECT conversation_id FROM commhub_inbox WHERE contact_id = ANY(%(subjects)s)",
    "SELECT appointment_id FROM commhub_appointments WHERE contact_id = ANY(%(subjects)s)",
)
CERTIFICATE_TYPE = "commhub.erasure-certificate"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ErasureWorkflow:
    def __init__(self, app: CommHub, database: Database, projections: ProjectionRunner, files: SealedFiles,
                 signer: WorkspaceSigner, audit: AuditLog, *, wait_seconds: float = 30.0) -> None:
        self.app = app
        self.database = database
        self.projections = projections
        self.files = files
        self.signer = signer
        self.audit = audit
        self.wait_seconds = wait_seconds

    def request(self, workspace_id: UUID, contact_id: UUID, *, reason: str, reference: str,
                requested_by: UUID | None, via: str = "api", wait: float | None = None,
                now: datetime | None = None) -> ErasureRequest:
        """Record a request and run it; a contact under legal hold gets a request recorded as refused."""
        now = now or _now()
        request = self.app.request_erasure(workspace_id, contact_id, erasure_id=uuid4(), reason=reason,
                                           reference=reference, requested_by=requested_by, now=now)
        self.audit.record(workspace_id, "privacy.erasure_requested", actor_id=requested_by, via=via,
                          subject_ids=[contact_id], target_id=request.id, now=now,
                          outcome="refused" if request.status == "refused" else "ok")
        if request.status == "refused":
            return request
        return self.advance(workspace_id, request.id, wait=wait)

    def advance(self, workspace_id: UUID, erasure_id: UUID, *, wait: float | None = None) -> ErasureRequest:
        request = self.app.get_erasure(workspace_id, erasure_id)
        try:
            if request.status == "requested":
                request = self._shred(request)
            if request.status == "shredded" and self._projected(request.erased_position, wait):
                request = self._complete(request)
        except IntegrityError:  # another process advanced it at the same moment: read where it got
            request = self.app.get_erasure(workspace_id, erasure_id)
        return request

    # Steps ---------------------------------------------------------------------------------

    def _shred(self, request: ErasureRequest) -> ErasureRequest:
        now = _now()
        workspace_id = request.workspace_id
        survivor = self.app.survivor_of(workspace_id, request.contact_id)
        if survivor.legal_hold:  # placed after the request was recorded
            request.refuse("legal_hold", now)
            self.app.save(request)
            return request
        family = survivor.subject_ids
        cancelled = 0 if survivor.erased else self.cancel_outbound(workspace_id, family, now)
        files = self.count_files(family)  # before the projections delete them
        subject_ids = self.app.erase_contact(workspace_id, survivor.id, request_id=request.id,
                                             actor_id=request.requested_by, now=now)
        return self.app.record_erasure_shredded(
            workspace_id, request.id, subject_ids=subject_ids, erased_position=self._erased_position(survivor.id),
            outbound_cancelled=cancelled, files_deleted=files, now=_now(),
        )

    def cancel_outbound(self, workspace_id: UUID, subject_ids: list[UUID], now: datetime) -> int:
        """Cancel every message still queued for these contacts, as delivery events (reason ``erased``).

        The outbox rows are taken first (``pending`` → ``cancelled``), so no worker claims them
        meanwhile; a message a worker had already handed to a provider at that instant may still go out.
        """
        with self.database.connection() as conn:
            taken = conn.execute(
                "UPDATE commhub_outbox SET status = 'cancelled', body = NULL, last_error = 'erased',"
                " finished_at = %s WHERE contact_id = ANY(%s) AND status = 'pending'"
                " RETURNING conversation_id, message_id", (now, subject_ids),
            ).fetchall()
            conversations = {r[0] for r in taken} | {r[0] for r in conn.execute(
                "SELECT conversation_id FROM commhub_inbox WHERE contact_id = ANY(%s)", (subject_ids,)).fetchall()}
        cancelled = 0
        for conversation_id in sorted(conversations):
            conversation = self.app.get_conversation(workspace_id, conversation_id)
            for message_id, status in list(conversation.outbound.items()):
                if status == "queued" and self.app.record_delivery(
                        workspace_id, conversation_id, UUID(message_id), "cancelled", "erased", now):
                    cancelled += 1
        return cancelled

    def _erased_position(self, contact_id: UUID) -> int:
        with self.database.connection() as conn:
            row = conn.execute(
                "SELECT max(notification_id) FROM commhub_events WHERE originator_id = %s AND topic = %s",
                (contact_id, ERASED_TOPIC),
            ).fetchone()
        return int(row[0] or 0)

    def _projected(self, position: int, wait: float | None) -> bool:
        """Whether every projection (in any process) has applied ``position``, waiting up to ``wait`` seconds."""
        deadline = time.monotonic() + (self.wait_seconds if wait is None else wait)
        names = sorted(self.projections.projections)  # not rows some older version left behind
        while True:
            with self.database.connection() as conn:
                row = conn.execute("SELECT min(position), count(*) FROM commhub_projection_positions"
                                   " WHERE name = ANY(%s)", (names,)).fetchone()
                if row[1] == len(names) and int(row[0] or 0) >= position:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _complete(self, request: ErasureRequest) -> ErasureRequest:
        now = _now()
        unreadable = self.count_unreadable(request.subject_ids)
        document: dict[str, Any] = {
            "type": CERTIFICATE_TYPE, "version": 1,
            "erasure_id": str(request.id), "workspace_id": str(request.workspace_id),
            "subject_id": str(request.contact_id), "subject_ids": [str(s) for s in request.subject_ids],
            "requested_at": request.requested_at.isoformat(),
            "requested_by": str(request.requested_by) if request.requested_by else None,
            "reason": request.reason, "reference": request.reference,
            "keys_shredded_at": request.shredded_at.isoformat() if request.shredded_at else None,
            "completed_at": now.isoformat(),
            "events_unreadable": unreadable, "files_deleted": request.files_deleted,
            "outbound_cancelled": request.outbound_cancelled,
            "projections_purged": self.purging_projections(),
            "projected_through": request.erased_position,
        }
        signed = self.signer.sign(request.workspace_id, document)
        request = self.app.complete_erasure(request.workspace_id, request.id, signed, now)
        self.audit.record(request.workspace_id, "privacy.erasure_completed", actor_id=request.requested_by,
                          via="system", subject_ids=[request.contact_id], target_id=request.id, count=unreadable,
                          now=now)
        return request

    def count_files(self, subject_ids: list[UUID]) -> int:
        with self.database.connection() as conn:
            row = conn.execute("SELECT count(*) FROM commhub_sealed_files WHERE subject_id = ANY(%s)",
                               (subject_ids,)).fetchone()
        return int(row[0])

    def purging_projections(self) -> list[str]:
        """Projections that purge or blank a contact's rows on ``Contact.Erased``."""
        return sorted(name for name, view in self.projections.projections.items()
                      if Contact.Erased in getattr(view, "handlers", {}))

    def count_unreadable(self, subject_ids: list[UUID]) -> int:
        """Stored events holding a sealed field of these subjects: their own streams, their
        conversations and appointments (a sealed field starts with its subject id, so the stored
        bytes tell without decrypting)."""
        patterns = [bytes([EXT_SEALED]) + s.bytes for s in subject_ids]
        streams = " UNION ".join(("SELECT unnest(%(subjects)s::uuid[])", *STREAMS_ABOUT))
        with self.database.connection() as conn:
            row = conn.execute(
                f"WITH streams(id) AS ({streams})"
                " SELECT count(*) FROM commhub_events e JOIN streams s ON e.originator_id = s.id"
                " WHERE EXISTS (SELECT 1 FROM unnest(%(patterns)s::bytea[]) p WHERE position(p IN e.state) > 0)",
                {"subjects": subject_ids, "patterns": patterns},
            ).fetchone()
        return int(row[0])
