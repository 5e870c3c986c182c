"""Appointments: book, list, read, move, cancel, confirm, check in, complete, no-show, and import."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from fastapi import HTTPException, Query, Request

from adapters import ics
from adapters.identifiers import normalise_email, normalise_phone
from api.appointment_schemas import AppointmentBatch, AppointmentCreate, CancelRequest, RescheduleRequest
from api.deps import Conn, Contacts, HubDep, now, settle
from api.present import plain
from api.routing import APIRouter
from domain.appointments_app import Booking
from projections import appointment_queries as queries

router = APIRouter(prefix="/api/v1/appointments", tags=["appointments"])
MAX_ICS_BYTES = 1_000_000


def _row(conn: Any, workspace_id: UUID, appointment_id: UUID) -> dict[str, Any]:
    row = queries.get_appointment(conn, workspace_id, appointment_id)
    if row is None:
        raise HTTPException(404, "Appointment not found")
    return plain(row)


@router.post("", status_code=201)
def book(body: AppointmentCreate, principal: Contacts, hub: HubDep, conn: Conn) -> dict[str, Any]:
    appointment_id = hub.app.book_appointment(principal.workspace_id, uuid4(), Booking(
        contact_id=body.contact_id, service=body.service, starts_at=body.starts_at, ends_at=body.ends_at,
        time_zone=body.time_zone, staff_id=body.staff_id, location=body.location, notes=body.notes,
    ), actor_id=principal.staff_id, now=now())
    settle(hub)
    return _row(conn, principal.workspace_id, appointment_id)


@router.get("")
def list_appointments(
    principal: Contacts, conn: Conn, contact_id: UUID | None = None, staff_id: UUID | None = None,
    starts_from: datetime | None = Query(default=None, alias="from"),
    starts_before: datetime | None = Query(default=None, alias="before"),
    status: Literal["booked", "confirmed", "checked_in", "completed", "cancelled", "no_show"] | None = None,
    limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    """Appointments by start time; filter by contact, staff member, time window and status."""
    for value in (starts_from, starts_before):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, "from and before must include a time zone offset")
    rows = queries.list_appointments(conn, principal.workspace_id, contact_id=contact_id, staff_id=staff_id,
                                     starts_from=starts_from, starts_before=starts_before, status=status, limit=limit)
    return {"items": plain(rows)}


@router.get("/{appointment_id}")
def get_appointment(appointment_id: UUID, principal: Contacts, conn: Conn) -> dict[str, Any]:
    row = _row(conn, principal.workspace_id, appointment_id)
    row["reminders"] = plain(queries.reminder_jobs(conn, principal.workspace_id, appointment_id))
    row["write_backs"] = plain(queries.write_backs(conn, principal.workspace_id, appointment_id))
    return row


@router.post("/{appointment_id}/reschedule")
def reschedule(appointment_id: UUID, body: RescheduleRequest, principal: Contacts, hub: HubDep,
               conn: Conn) -> dict[str, Any]:
    """Move it; reminders are planned again for the new time and it needs confirming again."""
    hub.app.reschedule_appointment(principal.workspace_id, appointment_id, starts_at=body.starts_at,
                                   ends_at=body.ends_at, time_zone=body.time_zone, staff_id=body.staff_id,
                                   location=body.location, actor_id=principal.staff_id, now=now())
    settle(hub)
    return _row(conn, principal.workspace_id, appointment_id)


@router.post("/{appointment_id}/cancel")
def cancel(appointment_id: UUID, body: CancelRequest, principal: Contacts, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.cancel_appointment(principal.workspace_id, appointment_id, body.reason, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal.workspace_id, appointment_id)


def _transition(name: str, method: str) -> None:
    def change(appointment_id: UUID, principal: Contacts, hub: HubDep, conn: Conn) -> dict[str, Any]:
        getattr(hub.app, method)(principal.workspace_id, appointment_id, principal.staff_id, now())
        settle(hub)
        return _row(conn, principal.workspace_id, appointment_id)

    change.__name__ = name.replace("-", "_")
    router.post(f"/{{appointment_id}}/{name}", name=name)(change)


for _name, _method in (("confirm", "confirm_appointment"), ("check-in", "check_in_appointment"),
                       ("complete", "complete_appointment"), ("no-show", "mark_no_show")):
    _transition(_name, _method)


@router.post("/import", status_code=201)
def import_batch(body: AppointmentBatch, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Book or update many appointments at once, all or nothing; ``external_id`` makes it repeatable."""
    bookings = [Booking(
        contact_id=a.contact_id, service=a.service, starts_at=a.starts_at, ends_at=a.ends_at, time_zone=a.time_zone,
        staff_id=a.staff_id, location=a.location, notes=a.notes, external_id=a.external_id, status=a.status,
    ) for a in body.appointments]
    outcomes = hub.app.import_appointments(principal.workspace_id, bookings, source="import",
                                           actor_id=principal.staff_id, now=now())
    settle(hub)
    return {"items": [{"appointment_id": str(i), "outcome": o} for i, o in outcomes]}


@router.post("/import/ics", status_code=201, openapi_extra={
    "requestBody": {"content": {"text/calendar": {"schema": {"type": "string"}}}, "required": True}})
async def import_ics(request: Request, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Upload an .ics file (``Content-Type: text/calendar``): each VEVENT with an ATTENDEE
    (mailto: or tel:) becomes an appointment of that contact; its UID makes a re-upload update it."""
    data = await request.body()
    if not data or len(data) > MAX_ICS_BYTES:
        raise HTTPException(422, "Send an iCalendar file of at most 1 MB as the request body")
    return await _import_ics(data, principal, hub)


async def _import_ics(data: bytes, principal: Any, hub: Any) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    workspace = await run_in_threadpool(hub.app.get_workspace, principal.workspace_id)
    try:
        entries = ics.read(data, workspace.time_zone)
    except ics.CalendarInvalidError as error:
        raise HTTPException(422, str(error)) from None
    addresses = [("email", normalise_email(e.email)) if e.email else ("phone", normalise_phone(e.phone or ""))
                 for e in entries]  # every address checked before anything is stored

    def store() -> list[tuple[UUID, str]]:
        at = now()
        bookings = []
        for entry, (kind, value) in zip(entries, addresses):
            contact_id = hub.app.find_or_create_contact(principal.workspace_id, kind=kind, value=value,
                                                        name=entry.name, now=at)
            bookings.append(Booking(contact_id=contact_id, service=entry.service, starts_at=entry.starts_at,
                                    ends_at=entry.ends_at, time_zone=entry.time_zone, location=entry.location,
                                    external_id=entry.uid, status=entry.status))
        outcomes: list[tuple[UUID, str]] = hub.app.import_appointments(
            principal.workspace_id, bookings, source="ics", actor_id=principal.staff_id, now=at)
        settle(hub)  # in this thread: it knows the position this request wrote
        return outcomes

    outcomes = await run_in_threadpool(store)
    return {"items": [{"appointment_id": str(i), "outcome": o} for i, o in outcomes]}
