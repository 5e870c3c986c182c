"""Configuration: the one place that reads the process environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from api.caldav_settings import CaldavSettings
from api.email_settings import EmailSettings
from api.meta_settings import MetaSettings

DEFAULT_DATA_DIR = ".commhub"


class SettingsError(ValueError):
    """A configuration value is missing or invalid."""


WORKER_MODES = ("on", "process", "off")


@dataclass(frozen=True)
class Settings:
    """Everything commhub reads from its environment, validated once at start-up."""

    database_url: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    db_schema: str = "public"
    kek: str | None = field(default=None, repr=False)
    kek_file: Path | None = None
    previous_keks: tuple[str, ...] = field(default=(), repr=False)
    key_cache_seconds: float = 300.0
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    pool_size: int = 5
    request_threads: int = 4
    log_format: str = "json"
    workers: str = "process"  # process: a child `commhub worker`; on: in this process; off: none
    ready_max_lag: int = 10_000
    metrics_token: str | None = field(default=None, repr=False)
    parent_pid: int | None = None  # COMMHUB_PARENT_PID: set by `commhub serve` for its child worker
    shutdown_seconds: float = 20.0
    reminder_poll_seconds: float = 5.0
    fhir_webhook_secret: str | None = field(default=None, repr=False)
    retention_interval_seconds: float = 3600.0
    erasure_wait_seconds: float = 30.0
    email: EmailSettings = field(default_factory=EmailSettings)
    public_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_api_url: str = "https://api.twilio.com"
    twilio_from: str | None = None
    twilio_timeout: float = 10.0
    outbox_max_attempts: int = 8
    outbox_base_delay: float = 2.0
    outbox_concurrency: int = 4
    outbox_lease_seconds: float = 60.0
    widget_messages_per_minute: float = 20.0
    widget_ip_messages_per_minute: float = 60.0
    widget_ip_connections_per_minute: float = 30.0
    widget_max_message_chars: int = 2000
    widget_identity_max_seconds: float = 86400.0
    webhook_allow_private: bool = False
    fhir_allow_private: bool = False  # FHIR write-back to private, loopback or link-local addresses
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 8
    webhook_base_delay: float = 5.0
    webhook_max_delay: float = 3600.0
    webhook_keep_days: float = 30.0  # finished deliveries are removed this long after; 0 keeps them
    socket_recheck_seconds: float = 15.0  # how often an open agent websocket re-checks its token
    caldav: CaldavSettings = field(default_factory=CaldavSettings)
    meta: MetaSettings = field(default_factory=MetaSettings)

    @property
    def twilio_enabled(self) -> bool:
        """Real SMS needs both credentials; without them SMS is captured by the sandbox."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def public_base_url(self) -> str:
        """The URL providers call us at (behind a proxy: COMMHUB_PUBLIC_URL), without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_kek_file(self) -> Path:
        return self.kek_file or self.data_dir / "kek.key"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        schema = env.get("COMMHUB_DB_SCHEMA", "public")
        if not schema.replace("_", "").isalnum():
            raise SettingsError("COMMHUB_DB_SCHEMA must contain only letters, digits and '_'")
        kek = env.get("COMMHUB_KEK") or None
        if kek is not None and kek.strip().lower() in {"changeme", "secret", "kek", "default"}:
            raise SettingsError("COMMHUB_KEK is a placeholder; generate one with `commhub keys generate`")
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=Path(env.get("COMMHUB_DATA_DIR", DEFAULT_DATA_DIR)),
            db_schema=schema,
            kek=kek,
            kek_file=Path(env["COMMHUB_KEK_FILE"]) if env.get("COMMHUB_KEK_FILE") else None,
            previous_keks=tuple(k for k in env.get("COMMHUB_PREVIOUS_KEKS", "").split(",") if k),
            key_cache_seconds=_number(env, "COMMHUB_KEY_CACHE_SECONDS", 300.0),
            host=env.get("COMMHUB_HOST", "127.0.0.1"),
            port=int(_number(env, "COMMHUB_PORT", 8000)),
            log_level=env.get("COMMHUB_LOG_LEVEL", "info").lower(),
            pool_size=int(_number(env, "COMMHUB_DB_POOL_SIZE", 5)),
            request_threads=max(1, int(_number(env, "COMMHUB_REQUEST_THREADS", 4))),
            log_format=_choice(env, "COMMHUB_LOG_FORMAT", ("json", "text"), "json"),
            workers=_choice(env, "COMMHUB_WORKERS", WORKER_MODES, "process"),
            ready_max_lag=int(_number(env, "COMMHUB_READY_MAX_LAG", 10_000)),
            metrics_token=env.get("COMMHUB_METRICS_TOKEN") or None,
            parent_pid=int(env["COMMHUB_PARENT_PID"]) if env.get("COMMHUB_PARENT_PID", "").isdigit() else None,
            shutdown_seconds=_number(env, "COMMHUB_SHUTDOWN_SECONDS", 20.0),
            reminder_poll_seconds=_number(env, "COMMHUB_REMINDER_POLL_SECONDS", 5.0) or 5.0,
            fhir_webhook_secret=_fhir_secret(env.get("COMMHUB_FHIR_WEBHOOK_SECRET") or None),
            retention_interval_seconds=_number(env, "COMMHUB_RETENTION_INTERVAL_SECONDS", 3600.0),
            erasure_wait_seconds=_number(env, "COMMHUB_ERASURE_WAIT_SECONDS", 30.0),
            email=EmailSettings.from_env(env),
            public_url=_url(env, "COMMHUB_PUBLIC_URL"),
            twilio_account_sid=env.get("COMMHUB_TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("COMMHUB_TWILIO_AUTH_TOKEN") or None,
            twilio_api_url=_url(env, "COMMHUB_TWILIO_API_URL") or "https://api.twilio.com",
            twilio_from=env.get("COMMHUB_TWILIO_FROM") or None,
            twilio_timeout=_number(env, "COMMHUB_TWILIO_TIMEOUT", 10.0),
            outbox_max_attempts=max(1, int(_number(env, "COMMHUB_OUTBOX_MAX_ATTEMPTS", 8))),
            outbox_base_delay=_number(env, "COMMHUB_OUTBOX_BASE_DELAY", 2.0),
            outbox_concurrency=max(1, int(_number(env, "COMMHUB_OUTBOX_CONCURRENCY", 4))),
            outbox_lease_seconds=max(1.0, _number(env, "COMMHUB_OUTBOX_LEASE_SECONDS", 60.0)),
            widget_messages_per_minute=_number(env, "COMMHUB_WIDGET_MESSAGES_PER_MINUTE", 20.0),
            widget_ip_messages_per_minute=_number(env, "COMMHUB_WIDGET_IP_MESSAGES_PER_MINUTE", 60.0),
            widget_ip_connections_per_minute=_number(env, "COMMHUB_WIDGET_IP_CONNECTIONS_PER_MINUTE", 30.0),
            widget_max_message_chars=int(_number(env, "COMMHUB_WIDGET_MAX_MESSAGE_CHARS", 2000)),
            widget_identity_max_seconds=_number(env, "COMMHUB_WIDGET_IDENTITY_MAX_SECONDS", 86400.0),
            webhook_allow_private=_choice(env, "COMMHUB_WEBHOOK_ALLOW_PRIVATE", ("on", "off"), "off") == "on",
            fhir_allow_private=_choice(env, "COMMHUB_FHIR_ALLOW_PRIVATE", ("on", "off"), "off") == "on",
            webhook_timeout=_number(env, "COMMHUB_WEBHOOK_TIMEOUT", 10.0) or 10.0,
            webhook_max_attempts=max(1, int(_number(env, "COMMHUB_WEBHOOK_MAX_ATTEMPTS", 8))),
            webhook_base_delay=_number(env, "COMMHUB_WEBHOOK_BASE_DELAY", 5.0),
            webhook_max_delay=_number(env, "COMMHUB_WEBHOOK_MAX_DELAY", 3600.0),
            webhook_keep_days=_number(env, "COMMHUB_WEBHOOK_KEEP_DAYS", 30.0),
            socket_recheck_seconds=_number(env, "COMMHUB_SOCKET_RECHECK_SECONDS", 15.0) or 15.0,
            caldav=CaldavSettings.from_env(env),
            meta=MetaSettings.from_env(env),
        )


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _fhir_secret(value: str | None) -> str | None:
    if value is not None and len(value) < 32:
        raise SettingsError("COMMHUB_FHIR_WEBHOOK_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative")
    return value


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must start with http:// or https://")
    return raw.rstrip("/") if raw else None


def child_environment(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides``, for a commhub process it starts."""
    return {**os.environ, **overrides}
