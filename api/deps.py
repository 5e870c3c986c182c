"""Request dependencies: the running hub, the calling staff member, and role checks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Iterator

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from adapters.tokens import Principal
from api.bootstrap import Hub
from domain.application import last_position

bearer = HTTPBearer(auto_error=False)

# What each role may do. Owners may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": frozenset({"inbox", "contacts", "settings", "staff", "privacy", "audit"}),
    "admin": frozenset({"inbox", "contacts", "settings", "staff"}),
    "agent": frozenset({"inbox", "contacts"}),
    "compliance": frozenset({"privacy", "audit"}),
}


def now() -> datetime:
    return datetime.now(timezone.utc)


async def get_hub(request: Request) -> Hub:  # async: a sync dependency costs a threadpool round trip
    return request.app.state.hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def current_principal(
    request: Request, hub: HubDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
    at = now()
    principal = hub.tokens.cached(credentials.credentials, at)  # no I/O: stays on the event loop
    if principal is None:
        principal = await run_in_threadpool(hub.tokens.resolve, credentials.credentials, at)
    if principal is None:
        raise HTTPException(401, "Token is invalid, expired or revoked", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal  # the audit middleware records who read what
    return principal


def require(permission: str) -> Callable[..., Principal]:
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if permission not in PERMISSIONS.get(principal.role, frozenset()):
            raise HTTPException(403, f"Your role may not use {permission}")
        return principal

    return check


Inbox = Annotated[Principal, Depends(require("inbox"))]
Contacts = Annotated[Principal, Depends(require("contacts"))]
Settings_ = Annotated[Principal, Depends(require("settings"))]
Staff = Annotated[Principal, Depends(require("staff"))]
Anyone = Annotated[Principal, Depends(current_principal)]


def db(hub: HubDep) -> Iterator[Any]:
    with hub.database.connection() as conn:
        yield conn


Conn = Annotated[Any, Depends(db)]


def settle(hub: Hub, timeout: float = 5.0) -> None:
    """Wait until the read models include what this request just wrote (read-your-writes)."""
    position = last_position.get()
    if position:
        hub.wait_for(position, timeout)
