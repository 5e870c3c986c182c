"""Request dependencies: the running hub, the calling staff member, and role checks."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Callable, Iterator, TypeVar

import anyio
import anyio.to_thread

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from adapters.tokens import Principal
from api.api_key_scopes import scope_for
from api.bootstrap import Hub
from api.read_your_writes import SETTLE_SECONDS, settle_before_answer
from domain.application import last_position
from projections.api_keys import KEY_PREFIX

bearer = HTTPBearer(auto_error=False)
T = TypeVar("T")

# What each role may do. Owners may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": frozenset({"inbox", "contacts", "settings", "staff", "privacy", "audit"}),
    "admin": frozenset({"inbox", "contacts", "settings", "staff"}),
    "agent": frozenset({"inbox", "contacts"}),
    "compliance": frozenset({"privacy", "audit"}),
}


OUTBOUND_THREADS = 8  # the pool ``create_app`` makes for ``outbound_call``


async def outbound_call(request: Request, work: Callable[[], T]) -> T:
    """Run a route's blocking work that waits on another server (a calendar being checked) in a
    thread pool of its own: the request threads are few (``COMMHUB_REQUEST_THREADS``, 4) because
    every running thread contends for the GIL, and a slow remote server must not hold them."""
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.outbound_limiter)


def now() -> datetime:
    return datetime.now(timezone.utc)


async def get_hub(request: Request) -> Hub:  # async: a sync dependency costs a threadpool round trip
    return request.app.state.hub


HubDep = Annotated[Hub, Depends(get_hub)]


class Caller(HTTPBearer):
    """The calling staff member (or API key), checked against a permission (None: any role).

    One dependency that FastAPI documents as bearer authentication (it is an ``HTTPBearer``), rather
    than a role check depending on a principal depending on the bearer scheme: FastAPI solves every
    dependency level on every request, which cost more of the event loop than the token check."""

    def __init__(self, permission: str | None) -> None:
        super().__init__(scheme_name="HTTPBearer", auto_error=False)
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await _principal(request, await super().__call__(request))
        if self.permission is None or principal.api_key_id is not None:
            return principal  # a key's scopes were checked against this route when it was resolved
        if self.permission not in PERMISSIONS.get(principal.role, frozenset()):
            raise HTTPException(403, f"Your role may not use {self.permission}")
        return principal


async def _principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
    hub: Hub = request.app.state.hub
    at = now()
    principal = None
    if hub.api_keys is not None and credentials.credentials.startswith(KEY_PREFIX):
        principal = await run_in_threadpool(hub.api_keys.resolve, credentials.credentials, at)  # never cached:
        if principal is not None:  # a revocation holds from the next request on, in every process
            check_scope(request, principal)
    if principal is None:  # a session token (which may, very rarely, begin like a key)
        principal = hub.tokens.cached(credentials.credentials, at)  # no I/O: stays on the event loop
    if principal is None:
        principal = await run_in_threadpool(hub.tokens.resolve, credentials.credentials, at)
    if principal is None:
        raise HTTPException(401, "Token is invalid, expired or revoked", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal  # the audit middleware records who read what
    return principal


def check_scope(request: Request, principal: Principal) -> None:
    """An API key reaches only the routes its scopes name (api/api_key_scopes.py), never others."""
    route = request.scope.get("route")
    needed = scope_for(request.method, getattr(route, "path", ""))
    if needed is None:
        raise HTTPException(403, "API keys may not use this route")
    if needed not in principal.scopes:
        raise HTTPException(403, f"This API key lacks the {needed} scope")


def require(permission: str) -> Caller:
    return Caller(permission)


Inbox = Annotated[Principal, Depends(require("inbox"))]
Contacts = Annotated[Principal, Depends(require("contacts"))]
Settings_ = Annotated[Principal, Depends(require("settings"))]
Staff = Annotated[Principal, Depends(require("staff"))]
Anyone = Annotated[Principal, Depends(Caller(None))]


def db(hub: HubDep) -> Iterator[Any]:
    with hub.database.connection() as conn:
        yield conn


Conn = Annotated[Any, Depends(db)]


def settle(hub: Hub, timeout: float = SETTLE_SECONDS) -> None:
    """Wait until the read models include what this request just wrote (read-your-writes)."""
    position = last_position.get()
    if position:
        hub.wait_for(position, timeout)


def caught_up(hub: Hub, timeout: float = SETTLE_SECONDS) -> None:
    """Wait until the read models include every event stored so far (the log's head), not only what
    this request wrote: for reads that must include the audit entries other calls stored as they
    answered (after their own read-your-writes position was taken)."""
    hub.wait_for(hub.app.recorder.max_notification_id() or 0, timeout)


def settle_answer(hub: Hub) -> None:
    """Read-your-writes for a route whose answer does not read the projections: the answer waits
    for them on the event loop (api/read_your_writes.py), and this worker thread is free at once."""
    if not settle_before_answer():
        settle(hub)
