"""Value checks for the identifiers the domain accepts: E.164 numbers, emails, channels, roles."""

from __future__ import annotations

import re
from enum import StrEnum
from zoneinfo import available_timezones

from domain.errors import (
    ChannelInvalidError,
    EmailAddressInvalidError,
    PhoneNumberInvalidError,
    PurposeInvalidError,
    StaffRoleInvalidError,
    TimeZoneInvalidError,
    WorkspaceSlugInvalidError,
)

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"
    WEBCHAT = "webchat"
    SOCIAL = "social"


class Purpose(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"
    COMPLIANCE = "compliance"


def e164(value: str) -> str:
    """An already normalised E.164 number (adapters.identifiers normalises user input)."""
    if not isinstance(value, str) or not E164.fullmatch(value):
        raise PhoneNumberInvalidError("phone number must be in E.164 form, e.g. +447700900123")
    return value


def email(value: str) -> str:
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.fullmatch(value):
        raise EmailAddressInvalidError("email address is not valid")
    return value


def channel(value: str) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise ChannelInvalidError(f"channel must be one of {', '.join(Channel)}") from None


def purpose(value: str) -> Purpose:
    try:
        return Purpose(value)
    except ValueError:
        raise PurposeInvalidError(f"purpose must be one of {', '.join(Purpose)}") from None


def role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise StaffRoleInvalidError(f"role must be one of {', '.join(Role)}") from None


def time_zone(value: str) -> str:
    if value not in _zones():
        raise TimeZoneInvalidError("time zone must be an IANA name such as Europe/London")
    return value


def slug(value: str) -> str:
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        raise WorkspaceSlugInvalidError("slug must be 3-40 lowercase letters, digits or hyphens")
    return value


_ZONES: set[str] = set()
_NOT_ZONES = {"localtime", "Factory", "posixrules"}  # host aliases, not IANA names


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones() - _NOT_ZONES)
    return _ZONES
