"""Meta (Messenger, Instagram, WhatsApp) configuration, read from the mapping that
``api.settings.Settings.from_env`` passes in: that module alone touches the process environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v21.0"


class MetaSettingsError(ValueError):
    """A Meta setting is missing or invalid."""


@dataclass(frozen=True)
class MetaSettings:
    app_secret: str | None = field(default=None, repr=False)  # signs webhooks; without it: sandbox
    verify_token: str | None = field(default=None, repr=False)  # the webhook subscription handshake
    graph_url: str = DEFAULT_GRAPH_URL
    timeout: float = 10.0
    profile_lookup: bool = True  # name Messenger/Instagram contacts from their Graph profile

    @property
    def enabled(self) -> bool:
        """Real sends need the app secret (webhooks are verified with it); otherwise they are captured."""
        return self.app_secret is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetaSettings:
        graph_url = (env.get("COMMHUB_META_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/")
        if not graph_url.startswith(("http://", "https://")):
            raise MetaSettingsError("COMMHUB_META_GRAPH_URL must start with http:// or https://")
        raw_timeout = env.get("COMMHUB_META_TIMEOUT") or "10"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise MetaSettingsError("COMMHUB_META_TIMEOUT must be a number of seconds") from None
        if not 0 < timeout <= 300:
            raise MetaSettingsError("COMMHUB_META_TIMEOUT must be between 0 and 300 seconds")
        lookup = (env.get("COMMHUB_META_PROFILE_LOOKUP") or "on").strip().lower()
        if lookup not in ("on", "off"):
            raise MetaSettingsError("COMMHUB_META_PROFILE_LOOKUP must be on or off")
        return cls(app_secret=env.get("COMMHUB_META_APP_SECRET") or None,
                   verify_token=env.get("COMMHUB_META_VERIFY_TOKEN") or None, graph_url=graph_url, timeout=timeout,
                   profile_lookup=lookup == "on")
