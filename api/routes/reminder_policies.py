"""Reminder and follow-up policies and quiet hours of the workspace (owners and admins)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import HTTPException

from api.appointment_schemas import PolicyRequest, QuietHoursRequest
from api.deps import HubDep, Settings_, now, settle
from api.present import plain
from api.routing import APIRouter
from domain.reminders import PLACEHOLDERS, Policy, ReminderPolicies

router = APIRouter(prefix="/api/v1", tags=["reminders"])


def _present(book: ReminderPolicies) -> dict[str, Any]:
    return {"policies": plain([p.as_event() for p in book.all()]),
            "quiet_hours": {"start": book.quiet_start, "end": book.quiet_end},
            "placeholders": [f"{{{p}}}" for p in PLACEHOLDERS]}


def _policy(policy_id: UUID, body: PolicyRequest) -> Policy:
    return Policy(policy_id=policy_id, kind=body.kind, offset_minutes=body.offset_minutes, channel=body.channel,
                  template=body.template, grace_minutes=body.grace_minutes, purpose=body.purpose, enabled=body.enabled)


@router.get("/reminder-policies")
def list_policies(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """The policies, the quiet hours and the placeholders templates may use."""
    return _present(hub.app.reminder_policies(principal.workspace_id, now()))


@router.post("/reminder-policies", status_code=201)
def create_policy(body: PolicyRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """E.g. ``{"kind": "before", "offset_minutes": 2880, "channel": "sms", "template": "Hi {first_name}…"}``."""
    policy_id = uuid4()
    hub.app.save_reminder_policy(principal.workspace_id, _policy(policy_id, body), now())
    settle(hub)
    return plain(_policy(policy_id, body).as_event())


@router.put("/reminder-policies/{policy_id}")
def update_policy(policy_id: UUID, body: PolicyRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    if hub.app.reminder_policies(principal.workspace_id, now()).policy(policy_id) is None:
        raise HTTPException(404, "Reminder policy not found")
    hub.app.save_reminder_policy(principal.workspace_id, _policy(policy_id, body), now())
    settle(hub)
    return plain(_policy(policy_id, body).as_event())


@router.delete("/reminder-policies/{policy_id}", status_code=204)
def delete_policy(policy_id: UUID, principal: Settings_, hub: HubDep) -> None:
    hub.app.delete_reminder_policy(principal.workspace_id, policy_id, now())
    settle(hub)


@router.put("/quiet-hours")
def set_quiet_hours(body: QuietHoursRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """No reminder reaches a contact between ``start`` and ``end`` in their own time zone; both null: none."""
    hub.app.set_quiet_hours(principal.workspace_id, body.start, body.end, now())
    settle(hub)
    return _present(hub.app.reminder_policies(principal.workspace_id, now()))
