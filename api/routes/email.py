"""Email: the signed inbound webhook (raw MIME), inbound addresses, composed emails with subject and
attachments, and reading an email's headers and sealed attachments."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
from typing import Any, Literal
from uuid import UUID, uuid4

from fastapi import HTTPException, Request, Response
from pydantic import Field

from api import problems
from api.bootstrap import Hub
from api.deps import Conn, HubDep, Inbox, Settings_, now, settle
from api.email_setup import EmailChannel
from api.present import plain
from api.routing import APIRouter
from api.schemas import Body, Text

INBOUND_PATH = "/webhooks/email/inbound"
SIGNATURE_HEADER = "X-Commhub-Signature"
CONTENT_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")
MAX_ATTACHMENT_BYTES = 700_000  # API bodies are capped at 1 MB, base64 included

router = APIRouter(tags=["email"])


class InboundAddressRequest(Body):
    address: str = Field(min_length=3, max_length=254)


class AttachmentUpload(Body):
    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=100)
    content_base64: str = Field(min_length=1, max_length=1_000_000)


class EmailReplyRequest(Body):
    body: str = Text
    subject: str | None = Field(default=None, max_length=500)
    purpose: Literal["transactional", "marketing"] = "transactional"
    attachments: list[AttachmentUpload] = Field(default_factory=list, max_length=10)


def signature_for(secret: str, raw: bytes) -> str:
    """The value of the signature header a sender must put on ``raw``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _channel(hub: Hub) -> EmailChannel:
    return hub.extras["email"]


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) > limit):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(INBOUND_PATH, tags=["webhooks"])
async def inbound_email(request: Request) -> Any:
    """Raw MIME (``message/rfc822`` bytes) as inbound-parse services post it, signed with
    ``X-Commhub-Signature: sha256=<HMAC-SHA256 of the body under COMMHUB_EMAIL_INBOUND_SECRET>``.
    A redelivered message (same Message-ID) is stored once."""
    hub: Hub = request.app.state.hub
    secret = hub.settings.email.inbound_secret
    if not secret:
        return problems.problem(404, "Inbound email webhook is not enabled", "set COMMHUB_EMAIL_INBOUND_SECRET")
    limit = hub.settings.email.max_bytes
    raw = await _read_limited(request, limit)
    if raw is None:
        return problems.problem(413, "Email is too large", f"at most {limit} bytes")
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not hmac.compare_digest(given.encode(), signature_for(secret, raw).encode()):
        return problems.problem(403, "Signature is missing or wrong", f"sign the raw body in {SIGNATURE_HEADER}")

    def store() -> list[dict[str, Any]]:
        outcomes = _channel(hub).inbound.handle(raw)
        settle(hub)
        return [o.as_json() for o in outcomes]

    return {"results": await asyncio.to_thread(store)}


@router.post("/api/v1/email/inbound-addresses", status_code=201)
def attach_inbound_address(body: InboundAddressRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """Mail to this address (webhook or listener) arrives in this workspace."""
    address_id = hub.app.attach_inbound_address(principal.workspace_id, body.address, now())
    return {"address_id": str(address_id), "workspace_id": str(principal.workspace_id)}


@router.post("/api/v1/conversations/{conversation_id}/email", status_code=201)
def send_email(conversation_id: UUID, body: EmailReplyRequest, principal: Inbox, hub: HubDep) -> dict[str, Any]:
    """Queue an email with its own subject (default: "Re: " the last inbound subject) and attachments."""
    conversation = hub.app.get_conversation(principal.workspace_id, conversation_id)
    attachments = []
    for upload in body.attachments:
        if not CONTENT_TYPE.fullmatch(upload.content_type):
            raise HTTPException(422, "content_type must look like type/subtype, e.g. application/pdf")
        try:
            data = base64.b64decode(upload.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPException(422, "content_base64 is not valid base64") from None
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise HTTPException(413, f"each attachment may be at most {MAX_ATTACHMENT_BYTES} bytes")
        attachments.append((upload, data))
    stored = []
    for upload, data in attachments:
        file_id = uuid4()
        _channel(hub).files.put(file_id, principal.workspace_id, conversation.contact_id, upload.content_type, data)
        stored.append({"attachment_id": str(file_id), "filename": upload.filename,
                       "content_type": upload.content_type, "size": len(data)})
    message_id, decision = hub.app.compose_email(
        principal.workspace_id, conversation_id, body=body.body, subject=body.subject, attachments=stored,
        author_id=principal.staff_id, purpose=body.purpose, now=now())
    settle(hub)
    return {"message_id": str(message_id), "status": "queued" if decision.allowed else "refused",
            "reason": str(decision.reason) if decision.reason else None}


@router.get("/api/v1/email/messages/{message_id}")
def email_headers(message_id: UUID, principal: Inbox, conn: Conn) -> dict[str, Any]:
    """An email message's subject, direction, auto-reply flag and attachments."""
    row = conn.execute(
        "SELECT e.message_id, e.conversation_id, e.direction, e.subject, e.auto_reply,"
        " COALESCE(e.attachments, m.attachments) FROM commhub_email_messages e"
        " LEFT JOIN commhub_messages m ON m.message_id = e.message_id"
        " WHERE e.message_id = %s AND e.workspace_id = %s", (message_id, principal.workspace_id),
    ).fetchone()
    if row is None:
        raise HTTPException(404, "Email message not found")
    keys = ("message_id", "conversation_id", "direction", "subject", "auto_reply", "attachments")
    return plain(dict(zip(keys, row, strict=True)))


@router.get("/api/v1/email/attachments/{attachment_id}", response_class=Response)
def attachment(attachment_id: UUID, principal: Inbox, hub: HubDep) -> Response:
    """An attachment's bytes, unsealed for the reader (410 once its contact was erased)."""
    content_type, data = _channel(hub).files.get(attachment_id, principal.workspace_id)
    return Response(data, media_type=content_type, headers={
        "Content-Disposition": "attachment", "Content-Security-Policy": "sandbox; default-src 'none'"})
