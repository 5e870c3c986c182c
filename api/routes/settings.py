"""Workspace settings: staff members (admin) and canned responses."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import HTTPException

from adapters.identifiers import normalise_email
from adapters.passwords import PasswordTooWeakError, hash_password
from api.deps import Conn, HubDep, Inbox, Settings_, Staff, now, settle
from api.present import plain
from api.routing import APIRouter
from api.schemas import CannedResponseRequest, StaffCreate, StaffUpdate
from projections import queries

router = APIRouter(prefix="/api/v1", tags=["settings"])


@router.get("/staff")
def list_staff(principal: Inbox, conn: Conn) -> dict[str, Any]:
    """Everyone in the workspace (agents need it to assign conversations)."""
    return {"items": plain(queries.list_staff(conn, principal.workspace_id))}


def _check_role_change(principal: Any, conn: Any, new_role: str, staff_id: UUID | None = None) -> None:
    """Only owners grant or take away ownership; nobody changes their own role; one owner always remains."""
    if staff_id == principal.staff_id:
        raise HTTPException(403, "You cannot change your own role")
    current = queries.get_staff(conn, principal.workspace_id, staff_id) if staff_id else None
    if "owner" in (new_role, current and current["role"]) and principal.role != "owner":
        raise HTTPException(403, "Only an owner can grant or remove the owner role")
    if current and current["role"] == "owner" and new_role != "owner":
        owners = [s for s in queries.list_staff(conn, principal.workspace_id) if s["role"] == "owner" and s["active"]]
        if len(owners) <= 1:
            raise HTTPException(409, "A workspace must keep at least one owner")


@router.post("/staff", status_code=201)
def add_staff(body: StaffCreate, principal: Staff, hub: HubDep, conn: Conn) -> dict[str, Any]:
    _check_role_change(principal, conn, body.role)
    email = normalise_email(body.email)
    if queries.staff_for_login(conn, principal.workspace_id, email) is not None:
        raise HTTPException(409, "A staff member with this email already exists")
    try:
        password_hash = hash_password(body.password)
    except PasswordTooWeakError as error:
        raise HTTPException(422, str(error)) from None
    staff_id = hub.app.add_staff(workspace_id=principal.workspace_id, staff_id=uuid4(), name=body.name, email=email,
                                 role=body.role, password_hash=password_hash, now=now())
    settle(hub)
    return plain(queries.get_staff(conn, principal.workspace_id, staff_id))


@router.patch("/staff/{staff_id}")
def change_role(staff_id: UUID, body: StaffUpdate, principal: Staff, hub: HubDep, conn: Conn) -> dict[str, Any]:
    if queries.get_staff(conn, principal.workspace_id, staff_id) is None:
        raise HTTPException(404, "Staff member not found")
    _check_role_change(principal, conn, body.role, staff_id)
    hub.app.change_staff_role(principal.workspace_id, staff_id, body.role, principal.staff_id, now())
    settle(hub)
    hub.tokens.forget()  # here at once; other processes drop theirs when the projection's NOTIFY arrives
    return plain(queries.get_staff(conn, principal.workspace_id, staff_id))


@router.get("/canned-responses")
def list_canned(principal: Inbox, conn: Conn) -> dict[str, Any]:
    return {"items": plain(queries.canned_responses(conn, principal.workspace_id))}


@router.post("/canned-responses", status_code=201)
def save_canned(body: CannedResponseRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    response_id = uuid4()
    hub.app.save_canned_response(principal.workspace_id, response_id, body.title, body.body, now())
    settle(hub)
    return {"response_id": str(response_id), "title": body.title, "body": body.body}


@router.put("/canned-responses/{response_id}")
def update_canned(response_id: UUID, body: CannedResponseRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    workspace = hub.app.get_workspace(principal.workspace_id)
    if str(response_id) not in workspace.canned_responses:
        raise HTTPException(404, "Canned response not found")
    hub.app.save_canned_response(principal.workspace_id, response_id, body.title, body.body, now())
    settle(hub)
    return {"response_id": str(response_id), "title": body.title, "body": body.body}


@router.delete("/canned-responses/{response_id}", status_code=204)
def delete_canned(response_id: UUID, principal: Settings_, hub: HubDep) -> None:
    hub.app.delete_canned_response(principal.workspace_id, response_id, now())
    settle(hub)
