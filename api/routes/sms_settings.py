"""SMS and voice settings of a workspace (admins): its Twilio numbers, HELP text, quiet hours,
missed-call text-back, call forwarding and voicemail greeting."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from adapters.identifiers import normalise_phone
from api.deps import HubDep, Settings_, now
from api.routing import APIRouter
from api.schemas import Body

router = APIRouter(prefix="/api/v1/sms", tags=["sms"])

Clock = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, local to the contact")


class SmsSettingsUpdate(Body):
    """Only the fields given change; ``null`` clears an optional one."""

    help_text: str | None = Field(default=None, min_length=1, max_length=480)
    quiet_hours_start: str | None = Clock
    quiet_hours_end: str | None = Clock
    missed_call_text: str | None = Field(default=None, min_length=1, max_length=480)
    forward_to: str | None = Field(default=None, max_length=40, description="the business's phone for calls")
    greeting: str | None = Field(default=None, min_length=1, max_length=480)
    voicemail_greeting: str | None = Field(default=None, min_length=1, max_length=480)
    ring_seconds: int | None = Field(default=None, ge=5, le=120)
    default_region: str | None = Field(default=None, min_length=2, max_length=2)


class NumberRequest(Body):
    number: str = Field(min_length=3, max_length=40, description="a Twilio number, E.164 or national with region")
    default_region: str | None = Field(default=None, min_length=2, max_length=2)


REQUIRED = ("help_text", "greeting", "voicemail_greeting", "ring_seconds")


@router.get("/settings")
def get_settings(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    return hub.app.sms_settings(principal.workspace_id).view()


@router.put("/settings")
def change_settings(body: SmsSettingsUpdate, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set if name != "default_region"}
    changes = {name: value for name, value in changes.items() if value is not None or name not in REQUIRED}
    if changes.get("forward_to"):
        changes["forward_to"] = normalise_phone(changes["forward_to"], body.default_region)
    return hub.app.change_sms_settings(principal.workspace_id, changes, now()).view()


@router.post("/numbers", status_code=201)
def attach_number(body: NumberRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """Route this Twilio number's SMS and calls to the workspace (409 if another workspace has it)."""
    number = normalise_phone(body.number, body.default_region)
    return hub.app.attach_number(principal.workspace_id, number, now()).view()


@router.post("/numbers/release")
def release_number(body: NumberRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    number = normalise_phone(body.number, body.default_region)
    return hub.app.release_number(principal.workspace_id, number, now()).view()
