"""What the widget websocket needs from the rest of commhub, as blocking calls (run in a thread):
the widget's settings by public key (cached briefly), opening a visitor session, storing visitor
messages and offline-form enquiries, and the thread's history from the messages read model."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

from adapters.identifiers import normalise_email
from adapters.widget_visitors import VisitorStore
from api.bootstrap import Hub
from api.live import LiveFeed
from api.rate_limit import BucketMap
from domain.contact import Contact
from domain.conversation import conversation_id_for
from domain.errors import MessageBodyInvalidError
from domain.identifiers import Channel
from domain.widget import NOTICE, OFFLINE_CONSENT, WIDGET_NAMESPACE
from domain.widget_identity import IdentitySecret, verify_identity

CONFIG_CACHE_SECONDS = 2.0
HISTORY_ON_LOAD = 200
HISTORY_ON_RESUME = 1000


@dataclass(frozen=True)
class WidgetConfig:
    workspace_id: UUID
    public_key: str
    allowed_origins: frozenset[str]
    privacy_policy_url: str | None
    workspace_name: str
    secrets: tuple[IdentitySecret, ...]

    @property
    def notice(self) -> str:
        return NOTICE.format(name=self.workspace_name)

    @property
    def offline_consent(self) -> str:
        return OFFLINE_CONSENT.format(name=self.workspace_name)


@dataclass
class VisitorSession:
    config: WidgetConfig
    ip: str | None
    contact_id: UUID | None = None
    user_id: str | None = None  # a verified host-site user; never logged
    new_token: str | None = None  # to hand to the browser once
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def conversation_id(self) -> UUID | None:
        return None if self.contact_id is None else conversation_id_for(self.contact_id, Channel.WEBCHAT.value)


class WidgetGateway:
    def __init__(self, hub: Hub, feed: LiveFeed) -> None:
        settings = hub.settings
        self.hub = hub
        self.feed = feed
        self.visitors: VisitorStore = hub.extras["visitors"]
        self.max_chars = settings.widget_max_message_chars
        self.identity_lifetime = timedelta(seconds=settings.widget_identity_max_seconds)
        per_connection = settings.widget_messages_per_minute
        self.connection_messages = BucketMap(max(5.0, per_connection / 2), per_connection)
        self.ip_messages = BucketMap(max(10.0, settings.widget_ip_messages_per_minute / 2),
                                     settings.widget_ip_messages_per_minute)
        self.ip_connections = BucketMap(max(10.0, settings.widget_ip_connections_per_minute),
                                        settings.widget_ip_connections_per_minute)
        self._configs: dict[str, tuple[WidgetConfig | None, float]] = {}
        self.connections = 0  # open visitor sockets in this process (for /metrics)
        self.subscriptions = 0  # of which following a conversation on the live feed

    # Settings ----------------------------------------------------------------------------------

    def config(self, public_key: str) -> WidgetConfig | None:
        """The widget for ``public_key`` (None if unknown); cached a few seconds per process, so a
        changed allowlist or a rotated secret applies everywhere within that time."""
        cached = self._configs.get(public_key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        widget = self.hub.app.widget_for_key(public_key)
        config = None
        if widget is not None:
            workspace = self.hub.app.get_workspace(widget.workspace_id)
            config = WidgetConfig(widget.workspace_id, public_key, frozenset(widget.allowed_origins),
                                  widget.privacy_policy_url, workspace.name, tuple(widget.identity_secrets()))
        if len(self._configs) > 10_000:
            self._configs.clear()
        self._configs[public_key] = (config, time.monotonic() + CONFIG_CACHE_SECONDS)
        return config

    # Sessions ----------------------------------------------------------------------------------

    def open(self, config: WidgetConfig, hello: dict[str, Any], ip: str | None, now: datetime) -> VisitorSession:
        """A session for the visitor saying ``hello``; raises if a given identity is forged or expired.

        A token bound to a verified user opens their thread only together with that user's identity."""
        session = VisitorSession(config, ip)
        identity = hello.get("identity")
        if identity is not None:
            if not isinstance(identity, dict):
                identity = {}
            verified = verify_identity(identity.get("user_id"), identity.get("expires"), identity.get("signature"),
                                       list(config.secrets), now, self.identity_lifetime)
            session.user_id = verified.user_id
            session.contact_id = self.visitors.identity_contact(config.workspace_id, verified.user_id)
            return session
        token = hello.get("visitor_token")
        if isinstance(token, str) and 0 < len(token) <= 100:
            visitor = self.visitors.resolve(config.workspace_id, token, now)
            if visitor is not None and not visitor.verified:
                session.contact_id = visitor.contact_id
        return session

    def ensure_contact(self, session: VisitorSession, now: datetime) -> UUID:
        """The session's contact, created on the visitor's first message (with the notice as evidence)."""
        with session.lock:
            if session.contact_id is not None:
                return session.contact_id
            config = session.config
            candidate = uuid4()
            if session.user_id is not None:
                owner = self.visitors.contact_for_identity(config.workspace_id, session.user_id, candidate)
                if owner != candidate and self.hub.app._get(owner, Contact) is not None:
                    session.contact_id = owner
                    return owner
                candidate = owner  # ours, or claimed by a process that died before creating the contact
            name = "Web user" if session.user_id is not None else f"Web visitor {candidate.hex[:4]}"
            fields = {"web_user_id": session.user_id} if session.user_id is not None else {}
            try:
                self.hub.app.add_visitor(config.workspace_id, contact_id=candidate, name=name, custom_fields=fields,
                                         notice=config.notice, ip_address=session.ip, now=now)
            except Exception:
                if session.user_id is not None and self.hub.app._get(candidate, Contact) is None:
                    self.visitors.forget_identity(config.workspace_id, session.user_id, candidate)
                raise
            if session.user_id is None:
                session.new_token = self.visitors.issue(config.workspace_id, candidate, False, now)
            session.contact_id = candidate
            return candidate

    # Messages ----------------------------------------------------------------------------------

    def check_body(self, body: object) -> str:
        if not isinstance(body, str) or not body.strip() or "\x00" in body:
            raise MessageBodyInvalidError("message must be non-empty text")
        if len(body) > self.max_chars:
            raise MessageBodyInvalidError(f"message must be at most {self.max_chars} characters")
        return body

    def receive(self, session: VisitorSession, client_id: str, body: str, now: datetime) -> UUID:
        """Store a visitor message once: a resent ``client_id`` answers with the first message's id."""
        contact_id = self.ensure_contact(session, now)
        _, message_id, _ = self.hub.app.receive_message(
            workspace_id=session.config.workspace_id, contact_id=contact_id, channel=Channel.WEBCHAT.value,
            body=body, now=now, message_id=self._message_id(contact_id, client_id),
            provider_message_id=f"widget/{contact_id}/{client_id}",
        )
        return message_id

    def offline(self, session: VisitorSession, client_id: str, email: str, body: str, now: datetime) -> UUID:
        contact_id = self.ensure_contact(session, now)
        message_id = self._message_id(contact_id, client_id)
        self.hub.app.leave_offline_message(
            session.config.workspace_id, contact_id, email=normalise_email(email), body=body,
            wording=session.config.offline_consent, ip_address=session.ip, message_id=message_id,
            provider_message_id=f"widget/{contact_id}/{client_id}", now=now,
        )
        return message_id

    def history(self, session: VisitorSession, after: int, head: int) -> list[dict[str, Any]]:
        """The thread's messages after ``after`` up to ``head`` (the last ones only on a fresh load)."""
        newest_first = after == 0
        with self.hub.database.connection() as conn:
            rows = conn.execute(
                "SELECT message_id, kind, body, at, position FROM commhub_messages WHERE conversation_id = %s"
                " AND kind IN ('in', 'out') AND position > %s AND position <= %s AND body IS NOT NULL"
                f" ORDER BY position {'DESC' if newest_first else 'ASC'} LIMIT %s",
                (session.conversation_id, after, head, HISTORY_ON_LOAD if newest_first else HISTORY_ON_RESUME),
            ).fetchall()
        if newest_first:
            rows.reverse()
        return [message_frame(position, message_id, kind, body, at) for message_id, kind, body, at, position in rows]

    @staticmethod
    def _message_id(contact_id: UUID, client_id: str) -> UUID:
        return uuid5(WIDGET_NAMESPACE, f"{contact_id}/{client_id}")

    @staticmethod
    def new_public_key() -> str:
        return "wk_" + secrets.token_urlsafe(18)


def message_frame(position: int, message_id: Any, kind: str, body: str, at: Any) -> dict[str, Any]:
    return {"type": "message", "position": position, "message_id": str(message_id),
            "direction": "in" if kind == "in" else "out", "body": body,
            "at": at.isoformat() if hasattr(at, "isoformat") else at}


def live_frame(update: dict[str, Any]) -> dict[str, Any] | None:
    """What a visitor may see of a live update of their conversation: messages and agents typing."""
    kind = update.get("type")
    if kind == "conversation.typing":
        return {"type": "typing", "who": "agent"} if update.get("who") == "agent" else None
    if kind in ("conversation.message_received", "conversation.message_sent") and update.get("body"):
        return message_frame(update["position"], update["message_id"],
                             "in" if kind == "conversation.message_received" else "out", update["body"], update["at"])
    return None
