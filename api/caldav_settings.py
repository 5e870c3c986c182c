"""CalDAV calendar sync configuration, read from the mapping that ``api.settings.Settings.from_env``
passes in: that module alone touches the process environment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


class CaldavSettingsError(ValueError):
    """A CalDAV setting is invalid."""


@dataclass(frozen=True)
class CaldavSettings:
    timeout: float = 10.0  # seconds per request to a calendar server
    max_attempts: int = 8  # attempts of one push (network errors, 5xx, 429) before it is marked failed
    base_delay: float = 2.0  # seconds before the first retry; doubles each attempt, ±50% jitter
    allow_http: bool = False  # plain http to calendar servers other than this machine
    allow_private: bool = False  # calendar servers at private, loopback or link-local addresses

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CaldavSettings:
        return cls(
            timeout=_positive(env, "COMMHUB_CALDAV_TIMEOUT", 10.0),
            max_attempts=max(1, int(_positive(env, "COMMHUB_CALDAV_MAX_ATTEMPTS", 8))),
            base_delay=_positive(env, "COMMHUB_CALDAV_BASE_DELAY", 2.0),
            allow_http=_switch(env, "COMMHUB_CALDAV_ALLOW_HTTP"),
            allow_private=_switch(env, "COMMHUB_CALDAV_ALLOW_PRIVATE"),
        )


def _switch(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "off").strip().lower()
    if value not in ("on", "off"):
        raise CaldavSettingsError(f"{name} must be on or off")
    return value == "on"


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise CaldavSettingsError(f"{name} must be a number") from None
    if not math.isfinite(value) or value <= 0:
        raise CaldavSettingsError(f"{name} must be a positive number")
    return value
