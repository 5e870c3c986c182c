"""Staff calendars over CalDAV: connect one (tested before it is saved), read or remove it, the
workspace's choice of what pushed events carry, and where each appointment's push stands.

A staff member manages their own calendar; owners and admins manage anyone's in the workspace.
The password is write-only: no answer, log line or error ever holds it."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from adapters.caldav import CaldavAccount, CalendarCheckError, check_calendar
from adapters.caldav_store import (
    CaldavSettingInvalidError,
    CaldavStore,
    Connection,
    check_collection_url,
    check_secret,
)
from adapters.destinations import guarded_client
from adapters.tokens import Principal
from api.bootstrap import Hub
from api.deps import Contacts, HubDep, Settings_, now, outbound_call
from api.present import plain
from api.problems import problem
from api.routing import APIRouter
from api.schemas import Body

router = APIRouter(prefix="/api/v1", tags=["calendar"])
MANAGERS = ("owner", "admin")
STATES = Literal["pending", "retrying", "synced", "deleted", "failed", "skipped", "not_connected", "not_pushed"]


class CalendarConnection(Body):
    collection_url: str = Field(max_length=500, description="URL of one calendar collection, e.g."
                                " https://cloud.example/remote.php/dav/calendars/ada/personal/")
    username: str = Field(max_length=1000)
    password: str = Field(max_length=1000, description="Password or app-specific password; never shown again")


class CalendarSyncSettings(Body):
    include_contact_name: bool = Field(description="Put the contact's display name in the event title"
                                       " (default off: the title is just 'Appointment')")


def store(hub: Hub) -> CaldavStore:
    return hub.extras["caldav"]  # type: ignore[no-any-return]


def _managed(hub: Hub, principal: Principal, staff_id: UUID) -> None:
    """404 for anyone outside the workspace, 403 for someone else's calendar unless owner or admin."""
    hub.app.get_staff(principal.workspace_id, staff_id)
    if staff_id != principal.staff_id and principal.role not in MANAGERS:
        raise HTTPException(403, "Only owners and admins manage other staff members' calendars")


def _shown(connection: Connection) -> dict[str, Any]:
    return {"staff_id": str(connection.staff_id), "collection_url": connection.account.collection_url,
            "username": connection.account.username, "password_set": True,
            "connected_at": connection.connected_at.isoformat()}


@router.put("/caldav/connections/{staff_id}", response_model=None)
async def connect(request: Request, staff_id: UUID, body: CalendarConnection, principal: Contacts,
                  hub: HubDep) -> dict[str, Any] | JSONResponse:
    """Connect (or replace) a staff member's calendar. The collection is checked first (PROPFIND): it
    must answer, accept the login and be a calendar, else 422 with ``code`` ``caldav_unreachable``,
    ``caldav_unauthorised``, ``caldav_not_found``, ``caldav_not_a_calendar`` or (a private, loopback or
    link-local address, unless the operator allows them) ``caldav_destination_refused``. Then their upcoming
    appointments are pushed to it, and every later change."""
    return await outbound_call(request, lambda: _connect(staff_id, body, principal, hub))


def _connect(staff_id: UUID, body: CalendarConnection, principal: Principal, hub: Hub) -> dict[str, Any] | JSONResponse:
    _managed(hub, principal, staff_id)
    settings = hub.settings.caldav
    try:
        account = CaldavAccount(check_collection_url(body.collection_url, allow_http=settings.allow_http),
                                check_secret("username", body.username), check_secret("password", body.password))
    except CaldavSettingInvalidError as error:
        return problem(422, "Calendar setting is not valid", str(error), code="caldav_setting_invalid")
    try:
        with guarded_client(allow_private=settings.allow_private, timeout=settings.timeout) as client:
            check_calendar(client, account)
    except CalendarCheckError as error:
        return problem(422, "Calendar cannot be used", str(error), code=f"caldav_{error.reason}")
    store(hub).save(principal.workspace_id, staff_id, account, principal.staff_id, now())
    if hub.caldav is not None:
        hub.caldav.wake()
    saved = store(hub).get(staff_id)
    assert saved is not None
    return _shown(saved)


@router.get("/caldav/connections/{staff_id}")
def read_connection(staff_id: UUID, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    _managed(hub, principal, staff_id)
    connections = store(hub).in_workspace(principal.workspace_id, staff_id)
    if not connections:
        raise HTTPException(404, "No calendar is connected for this staff member")
    return _shown(connections[0])


@router.delete("/caldav/connections/{staff_id}", status_code=204)
def disconnect(staff_id: UUID, principal: Contacts, hub: HubDep) -> None:
    """Stop pushing to this calendar. Events already in it stay there (commhub no longer has access)."""
    _managed(hub, principal, staff_id)
    if not store(hub).delete(principal.workspace_id, staff_id):
        raise HTTPException(404, "No calendar is connected for this staff member")


@router.get("/caldav/connections")
def list_connections(principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Connected calendars: every staff member's for owners and admins, your own otherwise."""
    only = None if principal.role in MANAGERS else principal.staff_id
    return {"items": [_shown(c) for c in store(hub).in_workspace(principal.workspace_id, only)]}


@router.get("/caldav/settings")
def read_settings(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    return {"include_contact_name": store(hub).include_contact_name(principal.workspace_id)}


@router.put("/caldav/settings")
def save_settings(body: CalendarSyncSettings, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """What pushed events carry; events already pushed are written again to match."""
    store(hub).set_include_contact_name(principal.workspace_id, body.include_contact_name, now())
    if hub.caldav is not None:
        hub.caldav.wake()
    return {"include_contact_name": body.include_contact_name}


@router.get("/caldav/sync")
def sync_status(
    principal: Contacts, hub: HubDep, staff_id: UUID | None = None, state: STATES | None = None,
    limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    """Each appointment's push to each calendar it belongs (or belonged) to, latest changes first:
    ``state=failed`` lists what gave up (with the calendar's last HTTP status)."""
    if principal.role not in MANAGERS:
        if staff_id is not None and staff_id != principal.staff_id:
            raise HTTPException(403, "Only owners and admins see other staff members' calendars")
        staff_id = principal.staff_id
    return {"items": plain(store(hub).statuses(principal.workspace_id, staff_id=staff_id, state=state, limit=limit))}


@router.get("/appointments/{appointment_id}/caldav")
def appointment_sync_status(appointment_id: UUID, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Where this appointment's event stands in each staff calendar it belongs (or belonged) to."""
    hub.app.get_appointment(principal.workspace_id, appointment_id)
    return {"items": plain(store(hub).statuses(principal.workspace_id, appointment_id=appointment_id))}
