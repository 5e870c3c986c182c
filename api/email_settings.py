"""Email configuration (SMTP relay, inbound webhook and listener), read from the mapping that
``api.settings.Settings.from_env`` passes in: that module alone touches the process environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapters.smtp_email import SECURITY_MODES, SmtpRelay

DEFAULT_MAX_BYTES = 10_000_000


class EmailSettingsError(ValueError):
    """An email setting is missing or invalid."""


@dataclass(frozen=True)
class EmailSettings:
    smtp: SmtpRelay | None = None  # None: outbound email is captured by the sandbox
    public_url: str | None = None  # base of links in emails (unsubscribe); default http://HOST:PORT
    inbound_secret: str | None = field(default=None, repr=False)
    max_bytes: int = DEFAULT_MAX_BYTES
    listener_enabled: bool = False
    listener_host: str = "127.0.0.1"
    listener_port: int = 2525

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmailSettings:
        return cls(
            smtp=_relay(env), public_url=(env.get("COMMHUB_PUBLIC_URL") or "").rstrip("/") or None,
            inbound_secret=env.get("COMMHUB_EMAIL_INBOUND_SECRET") or None,
            max_bytes=_integer(env, "COMMHUB_EMAIL_MAX_BYTES", DEFAULT_MAX_BYTES),
            listener_enabled=_flag(env, "COMMHUB_SMTP_LISTENER"),
            listener_host=env.get("COMMHUB_SMTP_LISTENER_HOST") or "127.0.0.1",
            listener_port=_integer(env, "COMMHUB_SMTP_LISTENER_PORT", 2525),
        )


def _relay(env: Mapping[str, str]) -> SmtpRelay | None:
    host = env.get("COMMHUB_SMTP_HOST") or None
    if host is None:
        return None
    security = (env.get("COMMHUB_SMTP_SECURITY") or "starttls").lower()
    if security not in SECURITY_MODES:
        raise EmailSettingsError(f"COMMHUB_SMTP_SECURITY must be one of {', '.join(SECURITY_MODES)}")
    from_address = env.get("COMMHUB_SMTP_FROM") or ""
    if "@" not in from_address:
        raise EmailSettingsError("COMMHUB_SMTP_FROM must be set to the sender address when COMMHUB_SMTP_HOST is")
    username = env.get("COMMHUB_SMTP_USERNAME") or None
    password = env.get("COMMHUB_SMTP_PASSWORD") or None
    if (username is None) != (password is None):
        raise EmailSettingsError("set both COMMHUB_SMTP_USERNAME and COMMHUB_SMTP_PASSWORD, or neither")
    return SmtpRelay(
        host=host, port=_integer(env, "COMMHUB_SMTP_PORT", 465 if security == "tls" else 587), security=security,
        username=username, password=password, from_address=from_address,
        timeout=float(_integer(env, "COMMHUB_SMTP_TIMEOUT", 30)), ca_file=env.get("COMMHUB_SMTP_CA_FILE") or None,
    )


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise EmailSettingsError(f"{name} must be a whole number")
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")
