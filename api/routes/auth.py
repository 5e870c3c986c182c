"""Login and logout: bearer tokens for staff."""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from adapters.passwords import hash_password, verify_password
from api.deps import Anyone, Conn, HubDep, bearer, now
from api.routing import APIRouter
from api.schemas import LoginRequest
from projections import queries

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])



@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both failures take the same time."""
    return hash_password(secrets.token_urlsafe(16))


@router.post("/login")
def login(request: LoginRequest, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """Exchange a workspace slug, email and password for a bearer token."""
    workspace = queries.workspace_by_slug(conn, request.workspace.strip().lower())
    staff = queries.staff_for_login(conn, workspace["workspace_id"], request.email) if workspace else None
    valid = verify_password(staff["password_hash"] if staff and staff["password_hash"] else _dummy_hash(), request.password)
    if not (valid and staff and staff["active"]):
        if workspace is not None and hub.privacy is not None:  # an unknown workspace has no audit log to write to
            hub.privacy.audit.record(workspace["workspace_id"], "auth.login_failed", now=now(), outcome="refused",
                                     actor_id=staff["staff_id"] if staff else None, route="POST /api/v1/auth/login")
        raise HTTPException(401, "Workspace, email or password is wrong")
    token = hub.tokens.issue(workspace["workspace_id"], staff["staff_id"], now())
    if hub.privacy is not None:
        hub.privacy.audit.record(workspace["workspace_id"], "auth.login", now=now(), actor_id=staff["staff_id"],
                                 route="POST /api/v1/auth/login")
    return {"token": token, "token_type": "bearer", "staff_id": str(staff["staff_id"]), "role": staff["role"],
            "workspace_id": str(workspace["workspace_id"]), "workspace_name": workspace["name"]}


@router.post("/logout", status_code=204)
def logout(principal: Anyone, hub: HubDep, credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> None:
    """Revoke the token used for this request."""
    hub.tokens.revoke(credentials.credentials, now())


@router.get("/me")
def me(principal: Anyone, conn: Conn) -> dict[str, Any]:
    staff = queries.get_staff(conn, principal.workspace_id, principal.staff_id)
    return {"staff_id": str(principal.staff_id), "workspace_id": str(principal.workspace_id), "role": principal.role,
            "name": staff["name"] if staff else None, "email": staff["email"] if staff else None}
