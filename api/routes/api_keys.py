"""API keys for integrations (owners and admins): issue (the secret is shown once), list, revoke."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from api.deps import Conn, HubDep, Settings_, now, settle
from api.integration_schemas import ApiKeyCreate
from api.present import plain
from api.routing import APIRouter
from domain.errors import ApiKeyNotFoundError
from projections import api_keys as queries

router = APIRouter(prefix="/api/v1/api-keys", tags=["integrations"])


@router.post("", status_code=201)
def issue_key(body: ApiKeyCreate, principal: Settings_, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """A new key with these scopes. ``secret`` is in this answer only; commhub keeps its SHA-256 digest."""
    secret = queries.new_secret()
    key = hub.app.issue_api_key(principal.workspace_id, uuid4(), name=body.name, scopes=list(body.scopes),
                                key_digest=queries.key_digest(secret), hint=secret[:8],
                                actor_id=principal.staff_id, now=now())
    if hub.api_keys is not None:
        hub.api_keys.record_issued(key, principal.staff_id)  # usable at once, in every process
    settle(hub)
    return {**_view(conn, principal.workspace_id, key.id), "secret": secret}


@router.get("")
def list_keys(principal: Settings_, conn: Conn) -> dict[str, Any]:
    """Every key of the workspace, newest first: name, scopes, when created, last used, revoked (never secrets)."""
    return {"items": plain(queries.list_keys(conn, principal.workspace_id))}


@router.post("/{key_id}/revoke")
def revoke_key(key_id: UUID, principal: Settings_, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """Revoke a key: every request with it is refused (401) from this answer on, in every process."""
    at = now()
    key = hub.app.revoke_api_key(principal.workspace_id, key_id, principal.staff_id, at)
    if hub.api_keys is not None and key.revoked_at == at:
        hub.api_keys.record_revoked(key.id, principal.staff_id, at)
    settle(hub)
    return _view(conn, principal.workspace_id, key.id)


def _view(conn: Any, workspace_id: UUID, key_id: UUID) -> dict[str, Any]:
    row = queries.get_key(conn, workspace_id, key_id)
    if row is None:
        raise ApiKeyNotFoundError("API key not found")
    return plain(row)
