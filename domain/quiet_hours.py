"""Quiet hours: the part of the day, in the contact's own time zone, when no message may be sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from domain.errors import QuietHoursInvalidError

HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class QuietHours:
    """From ``start`` until ``end`` local time; a window may cross midnight (21:00–08:00)."""

    start: time
    end: time

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        return cls(_clock(start), _clock(end))

    def covers(self, local: time) -> bool:
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


def is_quiet(quiet: QuietHours | None, time_zone: str, now: datetime) -> bool:
    """Whether ``now`` falls in the quiet hours of someone living in ``time_zone``."""
    if quiet is None:
        return False
    local = now.astimezone(ZoneInfo(time_zone)).time().replace(tzinfo=None)
    return quiet.covers(local)
