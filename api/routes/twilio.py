"""Twilio webhooks: inbound SMS/MMS, message status callbacks and voice calls, each verified by
its signature and idempotent on Twilio's ids. Answers are TwiML; the work after the stored
event (read models, websockets, the outbox) happens in the background."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from fastapi import HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from twilio.twiml.voice_response import VoiceResponse

from api.bootstrap import Hub
from api.deps import now
from api.routing import APIRouter
from api.twilio_signature import public_url, signed_form
from domain import identifiers
from domain.conversation import MAX_BODY
from domain.errors import PhoneNumberInvalidError

router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
MAX_MEDIA = 10
STATUSES = {"accepted": "queued", "scheduled": "queued", "queued": "queued", "sending": "queued", "sent": "sent",
            "delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "failed",
            "canceled": "cancelled"}
ANSWERED = "completed"


def twiml(body: str | VoiceResponse = EMPTY_TWIML) -> Response:
    return Response(str(body), media_type="application/xml")


def _hub(request: Request) -> Hub:
    return request.app.state.hub


def _sid(form: dict[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name)
        if value:
            if not SID.fullmatch(value):
                raise HTTPException(422, f"{name} is not a Twilio id")
            return value
    raise HTTPException(422, f"{names[0]} is required")


def _number(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise HTTPException(422, f"{name} is required")
    return identifiers.e164(value)


def _media(form: dict[str, str]) -> list[dict[str, Any]]:
    raw = form.get("NumMedia", "0") or "0"
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_MEDIA:
        raise HTTPException(422, f"NumMedia must be a number from 0 to {MAX_MEDIA}")
    attachments = []
    for index in range(int(raw)):
        url = form.get(f"MediaUrl{index}", "")
        if not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise HTTPException(422, f"MediaUrl{index} must be an http(s) URL")
        attachments.append({"url": url, "content_type": form.get(f"MediaContentType{index}", "")[:100] or None})
    return attachments


@router.post("/sms", response_class=Response)
async def inbound_sms(request: Request) -> Response:
    """An inbound SMS or MMS: stored once per MessageSid, on the workspace that owns the ``To`` number."""
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    sid = _sid(form, "MessageSid", "SmsSid")
    sender, receiver = _number(form, "From"), _number(form, "To")
    body = form.get("Body", "")
    if len(body) > MAX_BODY or "\x00" in body:
        raise HTTPException(422, f"Body must be at most {MAX_BODY} characters of text")
    attachments = _media(form)
    if not body.strip() and not attachments:
        raise HTTPException(422, "a message needs a Body or media")

    def store() -> None:
        at = now()
        workspace_id = hub.app.workspace_for_number(receiver)
        contact_id = hub.app.find_or_create_contact(workspace_id, kind="phone", value=sender, name=None, now=at)
        hub.app.receive_sms(workspace_id=workspace_id, contact_id=contact_id, body=body, provider_message_id=sid,
                            attachments=attachments, now=at, to_number=receiver)

    await run_in_threadpool(store)
    return twiml()


@router.post("/status", status_code=204, response_class=Response)
async def message_status(request: Request, workspace_id: UUID, conversation_id: UUID, message_id: UUID) -> Response:
    """Twilio's status callback for a message we sent (our ids are in the callback URL we gave it)."""
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    _sid(form, "MessageSid", "SmsSid")
    raw = form.get("MessageStatus") or form.get("SmsStatus") or ""
    status = STATUSES.get(raw)
    if status is None:
        raise HTTPException(422, "MessageStatus is not a message status")
    error = form.get("ErrorCode") or None
    if error is not None and not error.isdigit():
        raise HTTPException(422, "ErrorCode must be a number")
    await run_in_threadpool(hub.app.record_delivery, workspace_id, conversation_id, message_id, status, error, now())
    return Response(status_code=204)


def _caller(hub: Hub, form: dict[str, str]) -> tuple[UUID, UUID | None]:
    """(workspace, contact) of a call; no contact for a withheld or non-E.164 caller id."""
    workspace_id = hub.app.workspace_for_number(_number(form, "To"))
    try:
        caller = identifiers.e164(form.get("From", ""))
    except PhoneNumberInvalidError:
        return workspace_id, None
    return workspace_id, hub.app.find_or_create_contact(workspace_id, kind="phone", value=caller, name=None, now=now())


def _voicemail(response: VoiceResponse, request: Request, hub: Hub, greeting: str) -> VoiceResponse:
    response.say(greeting)
    response.record(action=public_url(hub.settings, request, "/webhooks/twilio/voice/recording"), method="POST",
                    max_length=120, play_beep=True, transcribe=True,
                    transcribe_callback=public_url(hub.settings, request, "/webhooks/twilio/voice/transcription"))
    response.hangup()
    return response


@router.post("/voice", response_class=Response)
async def inbound_call(request: Request) -> Response:
    """Answer a call: greeting, then ring the business's phone; unanswered calls go to voicemail."""
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    call_sid = _sid(form, "CallSid")

    def answer() -> VoiceResponse:
        workspace_id, contact_id = _caller(hub, form)
        if contact_id is not None:
            hub.app.log_call(workspace_id, contact_id, call_sid=call_sid, kind="started", now=now())
        settings = hub.app.sms_settings(workspace_id)
        response = VoiceResponse()
        if not settings.forward_to:
            return _voicemail(response, request, hub, settings.voicemail_greeting)
        response.say(settings.greeting)
        response.dial(settings.forward_to, timeout=settings.ring_seconds, method="POST",
                      action=public_url(hub.settings, request, "/webhooks/twilio/voice/dial"))
        return response

    return twiml(await run_in_threadpool(answer))


@router.post("/voice/dial", response_class=Response)
async def dial_finished(request: Request) -> Response:
    """The forwarded call ended: answered, or missed (then voicemail, and the text-back SMS)."""
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    call_sid = _sid(form, "CallSid")
    status = form.get("DialCallStatus", "")
    duration = form.get("DialCallDuration", "")

    def finish() -> VoiceResponse:
        workspace_id, contact_id = _caller(hub, form)
        response = VoiceResponse()
        if status == ANSWERED:
            if contact_id is not None:
                hub.app.log_call(workspace_id, contact_id, call_sid=call_sid, kind="answered", now=now(),
                                 duration=int(duration) if duration.isascii() and duration.isdigit() else None)
            response.hangup()
            return response
        if contact_id is not None:
            hub.app.log_call(workspace_id, contact_id, call_sid=call_sid, kind="missed", now=now(),
                             to_number=identifiers.e164(form["To"]))
        return _voicemail(response, request, hub, hub.app.sms_settings(workspace_id).voicemail_greeting)

    return twiml(await run_in_threadpool(finish))


@router.post("/voice/recording", response_class=Response)
async def voicemail_recorded(request: Request) -> Response:
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    call_sid = _sid(form, "CallSid")
    url = form.get("RecordingUrl", "")
    duration = form.get("RecordingDuration", "")
    if url and not url.startswith(("https://", "http://")):
        raise HTTPException(422, "RecordingUrl must be an http(s) URL")

    def store() -> None:
        workspace_id, contact_id = _caller(hub, form)
        if contact_id is not None and url:
            seconds = int(duration) if duration.isascii() and duration.isdigit() else None
            hub.app.log_call(workspace_id, contact_id, call_sid=call_sid, kind="voicemail", now=now(),
                             duration=seconds, attachments=[{"url": url, "content_type": "audio/wav",
                                                             "duration": seconds}])

    await run_in_threadpool(store)
    response = VoiceResponse()
    response.hangup()
    return twiml(response)


@router.post("/voice/transcription", status_code=204, response_class=Response)
async def voicemail_transcribed(request: Request) -> Response:
    hub = _hub(request)
    form = await signed_form(request, hub.settings)
    call_sid = _sid(form, "CallSid")
    text = form.get("TranscriptionText", "")
    if len(text) > MAX_BODY or "\x00" in text:
        raise HTTPException(422, "TranscriptionText is too long")

    def store() -> None:
        workspace_id, contact_id = _caller(hub, form)
        if contact_id is not None and text and form.get("TranscriptionStatus", "completed") == "completed":
            hub.app.log_call(workspace_id, contact_id, call_sid=call_sid, kind="transcription", now=now(), body=text)

    await run_in_threadpool(store)
    return Response(status_code=204)
