"""Request bodies for appointments, reminder policies and calendar feeds (bounded like every body)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field

from api.schemas import Body


def _sane(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone offset")
    if not 1971 <= value.year <= 2200:
        raise ValueError("must be between the years 1971 and 2200")
    return value


Instant = Annotated[datetime, AfterValidator(_sane)]


class AppointmentCreate(Body):
    contact_id: UUID
    service: str = Field(min_length=1, max_length=200)
    starts_at: Instant
    ends_at: Instant
    time_zone: str | None = Field(default=None, max_length=64, description="IANA zone; default the contact's")
    staff_id: UUID | None = None
    location: str | None = Field(default=None, max_length=200)
    notes: str | None = Field(default=None, max_length=5_000)


class AppointmentImport(AppointmentCreate):
    external_id: str = Field(min_length=1, max_length=200, description="The id in the system it comes from")
    status: Literal["booked", "confirmed", "checked_in", "completed", "cancelled", "no_show"] = "booked"


class AppointmentBatch(Body):
    appointments: list[AppointmentImport] = Field(min_length=1, max_length=1_000)


class RescheduleRequest(Body):
    starts_at: Instant
    ends_at: Instant
    time_zone: str | None = Field(default=None, max_length=64)
    staff_id: UUID | None = None
    location: str | None = Field(default=None, max_length=200)


class CancelRequest(Body):
    reason: str | None = Field(default=None, max_length=500)


class PolicyRequest(Body):
    kind: Literal["before", "after_completion", "no_show"]
    offset_minutes: int = Field(ge=0, le=86_400, description="Whole days keep the local time of day")
    channel: Literal["sms", "email"]
    template: str = Field(min_length=1, max_length=1_000)
    grace_minutes: int = Field(default=60, ge=1, le=10_080)
    purpose: Literal["transactional", "marketing"] = "transactional"
    enabled: bool = True


class QuietHoursRequest(Body):
    start: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str | None = Field(default=None, pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class FeedRequest(Body):
    staff_id: UUID
