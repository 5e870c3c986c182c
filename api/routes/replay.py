"""Replay as of a time for compliance: a contact's timeline and conversations, or the workspace's inbox,
as they were known at a past moment (owner and compliance roles)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, HTTPException, Query

from adapters.tokens import Principal
from api.deps import HubDep, now, require
from api.present import plain
from api.routing import APIRouter
from projections.replay import Replay, Replayer

router = APIRouter(prefix="/api/v1/privacy/replay", tags=["privacy"])
Privacy = Annotated[Principal, Depends(require("privacy"))]
AsOf = Query(default=None, description="The moment, with a time zone offset, e.g. 2026-11-01T09:00:00Z (default: now)")


def _moment(as_of: datetime | None) -> datetime:
    if as_of is None:
        return now()
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise HTTPException(422, "as_of must include a time zone offset, e.g. 2026-11-01T09:00:00Z")
    return as_of


def _stats(result: Replay) -> dict[str, Any]:
    return {"as_of": result.as_of, "events_read": result.stats.events_read,
            "events_applied": result.stats.events_applied, "last_position": result.stats.last_position}


@router.get("/contacts/{contact_id}")
def replay_contact(contact_id: UUID, principal: Privacy, hub: HubDep, as_of: datetime | None = AsOf) -> dict[str, Any]:
    """The contact (profile row, conversations and timeline) as known at ``as_of``. Whoever has been
    erased since reads as erased, even in the past."""
    hub.app.get_contact(principal.workspace_id, contact_id)  # 404 for another workspace's ids
    result = Replayer(hub.app, hub.database).run(_moment(as_of), workspace_id=principal.workspace_id,
                                                 contact_id=contact_id)
    return plain({**_stats(result), "contact": result.contact, "conversations": result.inbox,
                  "items": result.timeline})


@router.get("/inbox")
def replay_inbox(principal: Privacy, hub: HubDep, as_of: datetime | None = AsOf) -> dict[str, Any]:
    """Every conversation of the workspace as the inbox showed it at ``as_of``."""
    result = Replayer(hub.app, hub.database).run(_moment(as_of), workspace_id=principal.workspace_id)
    return plain({**_stats(result), "items": result.inbox})
