"""The audit log (compliance and owner roles): query it with filters and cursor paging, and
check its hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Query

from adapters.tokens import Principal
from api.deps import HubDep, caught_up, require
from api.present import plain
from api.routing import APIRouter
from projections.audit import list_entries

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require("audit"))]


@router.get("")
def audit_entries(
    principal: Auditor, hub: HubDep, actor_id: UUID | None = None, subject_id: UUID | None = None,
    action: str | None = Query(default=None, max_length=60, pattern=r"^[a-z_.]+$"),
    since: datetime | None = None, until: datetime | None = None,
    cursor: int | None = Query(default=None, ge=1, le=2**62), limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    """Entries newest first. Filters: actor, subject (a contact id), action, time range [since, until).
    ``next_cursor`` fetches the next (older) page. Every entry recorded before the request is included."""
    caught_up(hub)  # before taking a pooled connection: none is held while waiting
    with hub.database.connection() as conn:
        rows, next_cursor = list_entries(conn, principal.workspace_id, actor_id=actor_id, subject_id=subject_id,
                                         action=action, since=since, until=until, before=cursor, limit=limit)
    return {"items": plain(rows), "next_cursor": next_cursor}


@router.get("/verify")
def verify_chain(principal: Auditor, hub: HubDep) -> dict[str, Any]:
    """Walk this workspace's hash chain: ``intact`` is false if any entry was altered, removed or moved."""
    assert hub.privacy is not None
    report = hub.privacy.audit.verify(principal.workspace_id)
    return {"intact": report.intact, "entries": report.entries, "head": report.head, "problems": report.problems}
