"""Quiet hours: a daily window, in a person's own time zone, when no reminder may reach them.

Pure functions over plain values, so any channel can ask them (SMS, email, reminders).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from domain.errors import QuietHoursInvalidError

HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` to ``end`` local time; a window past midnight (21:00–08:00) is allowed."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        """Strict ``HH:MM`` times, as staff type them in settings."""
        return cls(_clock(start), _clock(end))

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _clock(value: str) -> time:
    match = HH_MM.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise QuietHoursInvalidError("quiet hours must be given as HH:MM, e.g. 21:00")
    return time(int(match.group(1)), int(match.group(2)))


def is_quiet(instant: datetime, zone: str, quiet: QuietHours | None) -> bool:
    if quiet is None:
        return False
    return quiet.contains(instant.astimezone(ZoneInfo(zone)).time().replace(tzinfo=None))


def next_allowed(instant: datetime, zone: str, quiet: QuietHours | None) -> datetime:
    """``instant`` itself when allowed, else the first moment the window ends (in UTC)."""
    if not is_quiet(instant, zone, quiet):
        return instant
    assert quiet is not None
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz)
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=tz)
    return end.astimezone(timezone.utc)


def last_allowed_before(instant: datetime, zone: str, quiet: QuietHours | None) -> datetime:
    """``instant`` itself when allowed, else the last minute before the window began (in UTC)."""
    if not is_quiet(instant, zone, quiet):
        return instant
    assert quiet is not None
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz)
    start = datetime.combine(local.date(), quiet.start, tzinfo=tz)
    if start > local:
        start = datetime.combine(local.date() - timedelta(days=1), quiet.start, tzinfo=tz)
    return (start - timedelta(minutes=1)).astimezone(timezone.utc)


def parse_quiet_hours(start: str | None, end: str | None) -> QuietHours | None:
    """``"21:00"``, ``"08:00"`` → a window; both empty → none. Raises ValueError on anything else."""
    if not start and not end:
        return None
    if not start or not end:
        raise ValueError("quiet hours need both a start and an end")
    return QuietHours(time.fromisoformat(start), time.fromisoformat(end))
