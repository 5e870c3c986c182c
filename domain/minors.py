"""The under-age guard: a workspace may flag contacts younger than a threshold (16 by default) and
exclude them from marketing. Ages are counted on the calendar of the contact's own time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.errors import DateOfBirthInvalidError, MinimumAgeInvalidError

DEFAULT_MINIMUM_AGE = 16
OLDEST = 130  # years: an older date of birth is a typing error


@dataclass(frozen=True)
class MinorsGuard:
    """A workspace's setting: off, or on with the age below which a contact counts as a minor."""

    enabled: bool = False
    minimum_age: int = DEFAULT_MINIMUM_AGE


def local_date(now: datetime, time_zone: str | None) -> date:
    """Today's date where the contact lives (UTC when their zone is unknown)."""
    return now.astimezone(ZoneInfo(time_zone) if time_zone else timezone.utc).date()


def age_on(date_of_birth: date, today: date) -> int:
    """Completed years on ``today``. Someone born on 29 February has their birthday on 1 March in
    common years (the later reading, so nobody is counted of age a day early)."""
    return today.year - date_of_birth.year - ((today.month, today.day) < (date_of_birth.month, date_of_birth.day))


def is_minor(date_of_birth: date | None, now: datetime, time_zone: str | None, guard: MinorsGuard) -> bool:
    """Whether the guard flags this contact now. Without a known date of birth nobody is flagged."""
    if not guard.enabled or not isinstance(date_of_birth, date):
        return False
    return age_on(date_of_birth, local_date(now, time_zone)) < guard.minimum_age


def check_date_of_birth(value: date, now: datetime) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise DateOfBirthInvalidError("date of birth must be a calendar date, e.g. 2011-05-31")
    latest = (now + timedelta(days=1)).date()  # someone born today somewhere east of UTC
    if value > latest or value.year < now.year - OLDEST:
        raise DateOfBirthInvalidError(f"date of birth must be a past date within the last {OLDEST} years")
    return value


def check_minimum_age(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 25:
        raise MinimumAgeInvalidError("the minimum age must be a whole number of years from 1 to 25")
    return value


class _App(Protocol):
    def get_workspace(self, workspace_id: UUID) -> Any: ...
    def save(self, *objs: Any, **kwargs: Any) -> Any: ...


class MinorsCommands:
    """Commands of the under-age guard, mixed into ``CommHub``."""

    def set_minors_guard(self: _App, workspace_id: UUID, *, enabled: bool, minimum_age: int = DEFAULT_MINIMUM_AGE,
                         actor_id: UUID | None, now: datetime) -> MinorsGuard:
        workspace = self.get_workspace(workspace_id)
        workspace.set_minors_guard(enabled, check_minimum_age(minimum_age), actor_id, now)
        self.save(workspace)
        return workspace.minors_guard

    def minors_guard(self: _App, workspace_id: UUID) -> MinorsGuard:
        return self.get_workspace(workspace_id).minors_guard

    def consent_subject_of(self: _App, contact: Any, purpose: str) -> Any:
        """What the send decision needs about ``contact``: for marketing, with its workspace's guard and
        home time zone (other purposes skip loading the workspace: the guard concerns marketing only)."""
        if purpose != "marketing":
            return contact.consent_subject()
        workspace = self.get_workspace(contact.workspace_id)
        return contact.consent_subject(workspace.minors_guard, workspace.time_zone)
