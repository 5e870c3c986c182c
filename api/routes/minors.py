"""The under-age guard: its workspace setting, and the minor flag on contacts shown by the API."""

from __future__ import annotations

from datetime import date
from typing import Any, Iterable
from uuid import UUID

from pydantic import Field

from api.bootstrap import Hub
from api.deps import HubDep, Inbox, Settings_, now, settle
from api.routing import APIRouter
from api.schemas import Body
from domain.minors import DEFAULT_MINIMUM_AGE, MinorsGuard, is_minor

router = APIRouter(prefix="/api/v1/settings/minors", tags=["settings"])


class MinorsGuardRequest(Body):
    enabled: bool
    minimum_age: int = Field(default=DEFAULT_MINIMUM_AGE, ge=1, le=25)


def _shown(guard: MinorsGuard) -> dict[str, Any]:
    return {"enabled": guard.enabled, "minimum_age": guard.minimum_age}


@router.get("")
def get_guard(principal: Inbox, hub: HubDep) -> dict[str, Any]:
    """Whether contacts under ``minimum_age`` are flagged and excluded from marketing."""
    return _shown(hub.app.minors_guard(principal.workspace_id))


@router.put("")
def set_guard(body: MinorsGuardRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """Turn the under-age guard on or off (owner, admin). Counted on each contact's own calendar."""
    guard = hub.app.set_minors_guard(principal.workspace_id, enabled=body.enabled, minimum_age=body.minimum_age,
                                     actor_id=principal.staff_id, now=now())
    settle(hub)
    return _shown(guard)


def flag_minors(hub: Hub, workspace_id: UUID, contacts: Iterable[dict[str, Any]]) -> None:
    """Add ``minor`` to each presented contact (needs its ``date_of_birth`` and ``time_zone``)."""
    workspace = hub.app.get_workspace(workspace_id)
    guard, at = workspace.minors_guard, now()
    for contact in contacts:
        born = contact.get("date_of_birth")
        born = date.fromisoformat(born) if isinstance(born, str) else born  # presented contacts hold ISO text
        contact["minor"] = is_minor(born, at, contact.get("time_zone") or workspace.time_zone, guard)

