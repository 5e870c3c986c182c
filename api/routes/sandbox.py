"""The sandbox channel: simulate a customer writing in, without any provider."""

from __future__ import annotations

import base64
import binascii
from uuid import UUID, uuid4

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from adapters.identifiers import normalise_email, normalise_phone
from api.deps import HubDep, Inbox, now, settle_answer
from api.routing import APIRouter
from api.schemas import SandboxInbound, SandboxStored

router = APIRouter(prefix="/api/v1/sandbox", tags=["sandbox"])


@router.post("/inbound", status_code=201, response_model=SandboxStored)
async def simulate_inbound(body: SandboxInbound, principal: Inbox, hub: HubDep) -> JSONResponse:
    """Store a message as if ``from`` (a phone number or email) had sent it on ``channel``.

    Repeating a ``provider_message_id`` stores nothing new, as with a retried provider webhook.
    """
    # Async, with its work in one worker-thread trip (parsing the sender's number included: it is the
    # costliest step on the event loop), answering a ready response that FastAPI passes through
    # instead of validating it against the response model (docs/decisions.md, 30 and 31).
    try:
        contents = [base64.b64decode(a.content_base64, validate=True) for a in body.attachments]
    except (binascii.Error, ValueError):
        raise HTTPException(422, "Attachment content is not valid base64") from None
    workspace_id = principal.workspace_id

    def store() -> tuple[UUID, UUID, UUID, bool]:
        if "@" in body.sender:
            kind, value = "email", normalise_email(body.sender)
        else:
            kind, value = "phone", normalise_phone(body.sender, body.default_region)
        at = now()
        contact_id = hub.app.find_or_create_contact(workspace_id, kind=kind, value=value, name=body.name, now=at)
        attachments = []
        assert hub.privacy is not None
        for upload, data in zip(body.attachments, contents):  # sealed under the contact's key, like email's
            file_id = uuid4()
            hub.privacy.files.put(file_id, workspace_id, contact_id, upload.content_type, data)
            attachments.append({"attachment_id": str(file_id), "filename": upload.filename,
                                "content_type": upload.content_type, "size": len(data)})
        conversation_id, message_id, new = hub.app.receive_message(
            workspace_id=workspace_id, contact_id=contact_id, channel=body.channel, body=body.body, now=at,
            provider_message_id=body.provider_message_id, attachments=attachments,
        )
        settle_answer(hub)
        return contact_id, conversation_id, message_id, new

    contact_id, conversation_id, message_id, new = await run_in_threadpool(store)
    return JSONResponse({"contact_id": str(contact_id), "conversation_id": str(conversation_id),
                         "message_id": str(message_id), "duplicate": not new}, status_code=201)
