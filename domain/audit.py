"""The audit log: who read or changed whose data, as a hash-chained stream of events per workspace.

Entries hold ids, route names and counts only — never personal data — so they stay readable
after any erasure. Each entry carries the hash of the previous entry's stored form.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import DomainEvent

AUDIT_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/audit-log")
GENESIS = "0" * 64
"""The ``previous_hash`` of a workspace's first entry."""


def audit_stream_id(workspace_id: UUID) -> UUID:
    """The id of a workspace's audit stream (derived from the workspace id, never from personal data)."""
    return uuid5(AUDIT_NAMESPACE, str(workspace_id))


class AuditEntry(DomainEvent):
    """One audited action. ``via`` is ``api``, ``cli`` or ``system``; ``outcome`` is ``ok``,
    ``refused`` or ``failed``; ``subject_ids`` are the contacts whose data was read or changed;
    ``entry_id`` is unique per entry (so that an append whose commit went unacknowledged is not
    appended twice; entries stored before it existed have none)."""

    workspace_id: UUID
    previous_hash: str
    action: str
    actor_id: UUID | None
    via: str
    subject_ids: list[UUID]
    target_id: UUID | None
    route: str | None
    count: int | None
    outcome: str
    entry_id: UUID | None = None
