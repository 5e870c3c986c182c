"""The Meta webhook (Messenger, Instagram and WhatsApp on one URL): the subscription handshake,
and deliveries verified by X-Hub-Signature-256 and idempotent on Meta's message ids. Events of
accounts no workspace connected are acknowledged and dropped: Meta retries anything but a 2xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated
from uuid import UUID

from fastapi import HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from adapters.meta_graph import error_text
from adapters.meta_payloads import Event, InboundMessage, PayloadInvalidError, ReadUpTo, StatusUpdate, Watermark, parse
from api.bootstrap import Hub
from api.deps import now
from api.routing import APIRouter
from domain.social import Platform

router = APIRouter(prefix="/webhooks/meta", tags=["webhooks"])

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_CHALLENGE = 256


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


@router.get("", response_class=PlainTextResponse)
def handshake(
    request: Request,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=40)] = None,
    verify_token: Annotated[str | None, Query(alias="hub.verify_token", max_length=1000)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=MAX_CHALLENGE)] = None,
) -> PlainTextResponse:
    """Meta's subscription check: echo ``hub.challenge`` when the verify token is ours."""
    expected = _hub(request).settings.meta.verify_token
    if mode != "subscribe" or not _same(verify_token, expected) or not challenge or not challenge.isprintable():
        raise HTTPException(403, "The verify token does not match (set COMMHUB_META_VERIFY_TOKEN)")
    return PlainTextResponse(challenge)


def signed_body(raw: bytes, header: str | None, app_secret: str | None) -> None:
    """403 unless the body is signed with the app secret: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    if not app_secret:
        raise HTTPException(403, "Meta webhooks are not configured (set COMMHUB_META_APP_SECRET)")
    if not header or not header.startswith("sha256="):
        raise HTTPException(403, f"{SIGNATURE_HEADER} is missing")
    expected = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    if not _same(header.lower(), expected):
        raise HTTPException(403, f"{SIGNATURE_HEADER} does not match the request")


@router.post("", response_class=PlainTextResponse)
async def deliver(request: Request) -> PlainTextResponse:
    """One delivery of events; answered 200 once everything in it is stored (or ignored)."""
    hub = _hub(request)
    raw = await request.body()
    signed_body(raw, request.headers.get(SIGNATURE_HEADER), hub.settings.meta.app_secret)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPException(400, "The body is not JSON") from None
    try:
        events = parse(payload)
    except PayloadInvalidError as error:
        raise HTTPException(422, str(error)) from None
    await run_in_threadpool(store, hub, events)
    return PlainTextResponse("EVENT_RECEIVED")


def store(hub: Hub, events: list[Event]) -> None:
    workspaces: dict[tuple[Platform, str], UUID | None] = {}
    for event in events:
        key = (event.platform, event.account_id)
        if key not in workspaces:
            workspaces[key] = hub.app.workspace_for_meta_account(*key)
        workspace_id = workspaces[key]
        if workspace_id is not None:
            handle(hub, workspace_id, event)


def handle(hub: Hub, workspace_id: UUID, event: Event) -> None:
    at = now()
    app = hub.app
    match event:
        case InboundMessage():
            contact_id = app.social_contact(workspace_id, event.platform, event.account_id, event.sender_id,
                                            event.profile_name, at)
            app.receive_social(workspace_id=workspace_id, contact_id=contact_id, platform=event.platform,
                               account_id=event.account_id, sender_id=event.sender_id,
                               provider_message_id=event.provider_message_id, body=event.text,
                               attachments=event.attachments, now=at, sent_at=event.sent_at)
        case StatusUpdate():
            error = error_text(event.error_code) if event.status == "failed" else None
            app.record_social_status(workspace_id, event.platform, event.provider_message_ids, event.status, error, at)
        case Watermark():
            app.record_social_watermark(workspace_id, event.platform, event.account_id, event.sender_id, event.at,
                                        event.status, at)
        case ReadUpTo():
            app.record_social_read_up_to(workspace_id, event.platform, event.provider_message_id, at)
