"""Calendar feeds (per staff member, at a secret URL), and the FHIR R4 appointment webhook."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from datetime import timedelta

from fastapi import Header, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from adapters import fhir, ics
from adapters.calendar_feeds import CalendarFeeds
from adapters.identifiers import normalise_email, normalise_phone
from api.appointment_schemas import FeedRequest
from api.bootstrap import Hub
from api.deps import Conn, Contacts, HubDep, Settings_, now, settle
from api.present import plain
from api.routing import APIRouter
from domain.appointments_app import Booking
from domain.errors import WorkspaceNotFoundError
from projections import appointment_queries as queries

router = APIRouter(tags=["calendar"])
FEED_MAX_EVENTS = 20_000  # a safety bound on one feed; a window of two years of a busy diary stays under it
MAX_WEBHOOK_BYTES = 200_000


def feeds(hub: Hub) -> CalendarFeeds:
    return hub.extras["calendar_feeds"]  # type: ignore[no-any-return]


@router.post("/api/v1/calendar/feeds", status_code=201)
def create_feed(body: FeedRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """A secret feed URL for one staff member (yourself, or anyone if you manage staff). Shown once."""
    if body.staff_id != principal.staff_id and principal.role not in ("owner", "admin"):
        raise HTTPException(403, "Only owners and admins create feeds for other staff members")
    hub.app.get_staff(principal.workspace_id, body.staff_id)
    feed_id, token = feeds(hub).issue(principal.workspace_id, body.staff_id, now())
    return {"feed_id": str(feed_id), "staff_id": str(body.staff_id), "url": f"/calendar/{token}.ics"}


@router.get("/api/v1/calendar/feeds")
def list_feeds(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    return {"items": plain(feeds(hub).list(principal.workspace_id))}


@router.delete("/api/v1/calendar/feeds/{feed_id}", status_code=204)
def revoke_feed(feed_id: UUID, principal: Settings_, hub: HubDep) -> None:
    if not feeds(hub).revoke(principal.workspace_id, feed_id, now()):
        raise HTTPException(404, "Calendar feed not found")


@router.get("/calendar/{token}.ics", include_in_schema=True)
def calendar_feed(
    token: str, hub: HubDep, conn: Conn,
    past_days: int = Query(default=30, ge=0, le=366, description="Appointments that started up to this many days ago"),
    future_days: int = Query(default=365, ge=1, le=1096, description="Appointments starting up to this many days ahead"),
) -> Response:
    """The staff member's appointments as iCalendar: service, place and time, never the patient's name.
    By default from 30 days ago to 365 days ahead (``?past_days=…&future_days=…`` to change it)."""
    owner = feeds(hub).resolve(token) if 20 <= len(token) <= 100 else None
    if owner is None:
        raise HTTPException(404, "Calendar feed not found")
    workspace_id, staff_id = owner
    at = now()
    rows = queries.list_appointments(conn, workspace_id, staff_id=staff_id, starts_from=at - timedelta(days=past_days),
                                     starts_before=at + timedelta(days=future_days), limit=FEED_MAX_EVENTS)
    body = ics.feed(hub.app.get_workspace(workspace_id).name, rows, at)
    return Response(body, media_type="text/calendar; charset=utf-8")


@router.get("/api/v1/integrations/fhir")
def fhir_settings(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """Where and how an EHR/PMS pushes FHIR R4 appointments to this workspace (see docs/fhir.md)."""
    master = hub.settings.fhir_webhook_secret
    if master is None:
        raise HTTPException(404, "The FHIR webhook is off: set COMMHUB_FHIR_WEBHOOK_SECRET to turn it on")
    workspace = hub.app.get_workspace(principal.workspace_id)
    return {"url": "/webhooks/fhir/appointment", "workspace_header": "X-Commhub-Workspace",
            "workspace": workspace.slug, "signature_header": "X-Commhub-Signature",
            "secret": fhir.workspace_secret(master, principal.workspace_id)}


@router.post("/webhooks/fhir/appointment", openapi_extra={
    "requestBody": {"content": {"application/fhir+json": {"schema": {"type": "object"}}}, "required": True}})
async def fhir_appointment(
    request: Request, hub: HubDep, workspace: str = Header(default="", alias="X-Commhub-Workspace", max_length=60),
    signature: str | None = Header(default=None, alias="X-Commhub-Signature", max_length=200),
) -> dict[str, Any]:
    """An EHR books, moves or cancels an appointment: signed with the workspace's HMAC secret,
    idempotent on ``Appointment.id`` (a repeated push changes nothing)."""
    master = hub.settings.fhir_webhook_secret
    body = await request.body()
    if master is None:
        raise HTTPException(404, "The FHIR webhook is off")
    try:
        workspace_id = await run_in_threadpool(hub.app.workspace_for_slug, workspace) if workspace else None
    except WorkspaceNotFoundError:
        workspace_id = None
    if workspace_id is None or not fhir.verify(fhir.workspace_secret(master, workspace_id), body, signature):
        raise HTTPException(401, "Signature or workspace is not valid")
    if len(body) > MAX_WEBHOOK_BYTES:
        raise HTTPException(413, "FHIR payload is too large")
    try:
        pushed = fhir.parse(json.loads(body))
    except (ValueError, RecursionError) as error:
        detail = str(error) if isinstance(error, fhir.FhirInvalidError) else "the body is not JSON"
        raise HTTPException(422, detail) from None
    return await run_in_threadpool(_store_fhir, hub, workspace_id, pushed)


def _store_fhir(hub: Hub, workspace_id: UUID, pushed: fhir.FhirAppointment) -> dict[str, Any]:
    patient = pushed.patient
    kind, value = ("phone", normalise_phone(patient.phone)) if patient.phone else (
        "email", normalise_email(patient.email or ""))
    at = now()
    contact_id = hub.app.find_or_create_contact(workspace_id, kind=kind, value=value, name=patient.name, now=at)
    if patient.birth_date:
        contact = hub.app.get_contact(workspace_id, contact_id)
        if (contact.custom_fields or {}).get("birth_date") != patient.birth_date:
            hub.app.rectify_contact(workspace_id, contact_id, {"custom_fields": {"birth_date": patient.birth_date}},
                                    None, at)
    [(appointment_id, outcome)] = hub.app.import_appointments(workspace_id, [Booking(
        contact_id=contact_id, service=pushed.service, starts_at=pushed.starts_at, ends_at=pushed.ends_at,
        staff_id=pushed.staff_id, location=pushed.location, external_id=pushed.external_id, status=pushed.status,
    )], source="fhir", actor_id=None, now=at)
    settle(hub)
    return {"appointment_id": str(appointment_id), "contact_id": str(contact_id), "outcome": outcome}
