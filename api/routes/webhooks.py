"""Webhook subscriptions (owners and admins, or a key with ``webhooks:manage``): create (the signing
secret is shown once), list, read, change, delete, rotate the secret, and list deliveries with
their attempts."""

from __future__ import annotations

import secrets
from typing import Any, Literal
from uuid import UUID, uuid4

from fastapi import Query, Response

from adapters.destinations import DestinationRefusedError, check_destination
from api.bootstrap import Hub
from api.deps import Conn, HubDep, Settings_, now, settle
from api.integration_schemas import WebhookChange, WebhookCreate
from api.present import plain
from api.routing import APIRouter
from domain.errors import WebhookNotFoundError, WebhookUrlInvalidError
from projections import webhooks as queries
from projections.queries import decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/webhooks", tags=["integrations"])
SECRET_PREFIX = "whsec_"


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _reachable(hub: Hub, url: str) -> None:
    try:
        check_destination(url, hub.settings.webhook_allow_private)
    except DestinationRefusedError:
        raise WebhookUrlInvalidError("the URL's host is a private, loopback or link-local address, which webhooks"
                                     " may not reach (COMMHUB_WEBHOOK_ALLOW_PRIVATE=on allows it)") from None


def _view(conn: Any, workspace_id: UUID, subscription_id: UUID) -> dict[str, Any]:
    row = queries.get_subscription(conn, workspace_id, subscription_id)
    if row is None:
        raise WebhookNotFoundError("webhook subscription not found")
    return plain(row)


@router.post("", status_code=201)
def subscribe(body: WebhookCreate, principal: Settings_, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """Subscribe a URL to event types. ``secret`` signs every delivery; it is in this answer only."""
    _reachable(hub, body.url)
    secret = _new_secret()
    subscription = hub.app.subscribe_webhook(principal.workspace_id, uuid4(), url=body.url,
                                             event_types=list(body.event_types), description=body.description,
                                             secret=secret, actor_id=principal.staff_id, now=now())
    settle(hub)
    return {**_view(conn, principal.workspace_id, subscription.id), "secret": secret}


@router.get("")
def list_subscriptions(principal: Settings_, conn: Conn) -> dict[str, Any]:
    return {"items": plain(queries.list_subscriptions(conn, principal.workspace_id))}


@router.get("/{subscription_id}")
def get_subscription(subscription_id: UUID, principal: Settings_, conn: Conn) -> dict[str, Any]:
    return _view(conn, principal.workspace_id, subscription_id)


@router.patch("/{subscription_id}")
def change(subscription_id: UUID, body: WebhookChange, principal: Settings_, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """Change the URL, event types, description, or pause (``active: false``) and resume it."""
    if body.url is not None:
        _reachable(hub, body.url)
    hub.app.change_webhook(principal.workspace_id, subscription_id, url=body.url,
                           event_types=None if body.event_types is None else list(body.event_types),
                           description=body.description, active=body.active, actor_id=principal.staff_id, now=now())
    settle(hub)
    return _view(conn, principal.workspace_id, subscription_id)


@router.delete("/{subscription_id}", status_code=204)
def delete(subscription_id: UUID, principal: Settings_, hub: HubDep) -> Response:
    """Stop it; deliveries still waiting are cancelled."""
    hub.app.delete_webhook(principal.workspace_id, subscription_id, principal.staff_id, now())
    settle(hub)
    return Response(status_code=204)


@router.post("/{subscription_id}/secret")
def rotate_secret(subscription_id: UUID, principal: Settings_, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """A new signing secret, in this answer only; deliveries from now on are signed with it alone."""
    secret = _new_secret()
    hub.app.rotate_webhook_secret(principal.workspace_id, subscription_id, secret=secret,
                                  actor_id=principal.staff_id, now=now())
    settle(hub)
    return {**_view(conn, principal.workspace_id, subscription_id), "secret": secret}


@router.get("/{subscription_id}/deliveries")
def deliveries(
    subscription_id: UUID, principal: Settings_, conn: Conn,
    state: Literal["pending", "delivered", "failed", "purged", "cancelled"] | None = None,
    cursor: str | None = Query(default=None, max_length=200), limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    """Deliveries, newest first, each with its attempts: time, HTTP status or error kind, duration, next retry."""
    _view(conn, principal.workspace_id, subscription_id)
    before = decode_cursor(cursor) if cursor else None
    rows = queries.list_deliveries(conn, principal.workspace_id, subscription_id, state=state, limit=limit,
                                   before=before)
    last = rows[-1] if len(rows) == limit else None
    return {"items": plain(rows),
            "next_cursor": encode_cursor(last["created_at"], last["delivery_id"]) if last else None}
