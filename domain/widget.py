"""The web chat widget of a workspace: its public key, allowed origins, privacy policy link and the
secrets that sign visitor identities (rotated with a grace period), plus the commands that use them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Callable, ClassVar
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain import identifiers
from domain.contact import Contact
from domain.conversation import InboundReceipt
from domain.errors import (
    WidgetKeyTakenError,
    WidgetNotConfiguredError,
    WidgetOriginInvalidError,
    WidgetPrivacyUrlInvalidError,
)
from domain.identifiers import Channel, Purpose
from domain.personal import SUBJECT, is_erased
from domain.widget_identity import IdentitySecret

WIDGET_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/web-widget")
KEY_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/web-widget-key")
ORIGIN = re.compile(r"^https?://[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")
MAX_ORIGINS = 20
MAX_URL = 500
NOTICE = ("Messages you send here are stored by {name} so that its team can answer you. "
          "How your data is handled is explained in the privacy policy.")
OFFLINE_CONSENT = "I agree that {name} may answer this enquiry by email at the address I gave."


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it in the Origin header."""
    origin = value.strip().lower().rstrip("/") if isinstance(value, str) else ""
    if not ORIGIN.fullmatch(origin):
        raise WidgetOriginInvalidError("an allowed origin is scheme://host[:port], e.g. https://www.example.com")
    return origin


def check_origins(values: list[str]) -> list[str]:
    if len(values) > MAX_ORIGINS:
        raise WidgetOriginInvalidError(f"at most {MAX_ORIGINS} allowed origins")
    return sorted({normalise_origin(v) for v in values})


def check_privacy_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) and len(value) <= MAX_URL else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc or re.search(r"[\s<>\"']", value):
        raise WidgetPrivacyUrlInvalidError("the privacy policy URL must be an http(s) URL of at most 500 characters")
    return value


class WebWidget(Aggregate):
    """A workspace's chat widget. Its id derives from the workspace id: one widget per workspace.

    Identity secrets are sealed under a data key of the widget's own, like personal fields.
    """

    personal_state: ClassVar[tuple[str, ...]] = ("secrets",)

    class Enabled(Aggregate.Created):
        workspace_id: UUID
        public_key: str
        allowed_origins: list[str]
        privacy_policy_url: str | None

    class SettingsChanged(Aggregate.Event):
        workspace_id: UUID
        allowed_origins: list[str]
        privacy_policy_url: str | None
        actor_id: UUID | None

        def apply(self, widget: WebWidget) -> None:
            widget.allowed_origins = list(self.allowed_origins)
            widget.privacy_policy_url = self.privacy_policy_url

    class SecretRotated(Aggregate.Event):
        """A new identity secret; the one it replaces stays valid until ``previous_valid_until``."""

        workspace_id: UUID
        secret_id: UUID
        secret: str
        previous_valid_until: datetime | None
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"secret": SUBJECT}

        def apply(self, widget: WebWidget) -> None:
            kept = [s for s in widget.current_secrets[:1] if self.previous_valid_until is not None]
            for previous in kept:
                previous["valid_until"] = self.previous_valid_until
            widget.secrets = [{"secret_id": self.secret_id, "secret": self.secret, "created_at": self.timestamp,
                               "valid_until": None}, *kept]

    def __init__(self, workspace_id: UUID, public_key: str, allowed_origins: list[str],
                 privacy_policy_url: str | None) -> None:
        self.workspace_id = workspace_id
        self.public_key = public_key
        self.allowed_origins = list(allowed_origins)
        self.privacy_policy_url = privacy_policy_url
        self.secrets: list[dict[str, Any]] = []

    @staticmethod
    def id_for(workspace_id: UUID) -> UUID:
        return uuid5(WIDGET_NAMESPACE, str(workspace_id))

    @classmethod
    def enable(cls, *, workspace_id: UUID, public_key: str, allowed_origins: list[str],
               privacy_policy_url: str | None, now: datetime) -> WebWidget:
        return cls._create(cls.Enabled, id=cls.id_for(workspace_id), workspace_id=workspace_id, public_key=public_key,
                           allowed_origins=allowed_origins, privacy_policy_url=privacy_policy_url, timestamp=now)

    @property
    def current_secrets(self) -> list[dict[str, Any]]:
        if is_erased(self.secrets):
            self.secrets = []
        return self.secrets

    def change(self, allowed_origins: list[str], privacy_policy_url: str | None, actor_id: UUID | None,
               now: datetime) -> None:
        if allowed_origins != self.allowed_origins or privacy_policy_url != self.privacy_policy_url:
            self.trigger_event(self.SettingsChanged, workspace_id=self.workspace_id, allowed_origins=allowed_origins,
                               privacy_policy_url=privacy_policy_url, actor_id=actor_id, timestamp=now)

    def rotate_secret(self, secret_id: UUID, secret: str, grace: timedelta, actor_id: UUID | None,
                      now: datetime) -> None:
        """Start signing with ``secret``; the current one keeps working for ``grace`` (zero: not at all)."""
        keep_previous = bool(self.current_secrets) and grace > timedelta(0)
        self.trigger_event(self.SecretRotated, workspace_id=self.workspace_id, secret_id=secret_id, secret=secret,
                           previous_valid_until=now + grace if keep_previous else None, actor_id=actor_id,
                           timestamp=now)

    def identity_secrets(self) -> list[IdentitySecret]:
        return [IdentitySecret(s["secret"], s["valid_until"]) for s in self.current_secrets]


class WidgetKey(Aggregate):
    """Reserves a widget public key: its id derives from the key, so the key routes to one workspace."""

    class Reserved(Aggregate.Created):
        workspace_id: UUID

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id

    @staticmethod
    def id_for(public_key: str) -> UUID:
        return uuid5(KEY_NAMESPACE, public_key)

    @classmethod
    def reserve(cls, public_key: str, workspace_id: UUID, now: datetime) -> WidgetKey:
        return cls._create(cls.Reserved, id=cls.id_for(public_key), workspace_id=workspace_id, timestamp=now)


class WidgetCommands:
    """Commands of the widget; mixed into ``CommHub`` (uses its ``_get``, ``save`` and ``_retrying``)."""

    _get: Callable[..., Any]
    save: Callable[..., Any]
    _retrying: Callable[..., Any]
    _conversation_for: Callable[..., Any]
    get_workspace: Callable[..., Any]
    get_contact: Callable[..., Any]

    def configure_widget(
        self, workspace_id: UUID, *, public_key: str, allowed_origins: list[str], privacy_policy_url: str | None,
        actor_id: UUID | None, now: datetime,
    ) -> WebWidget:
        """Change the widget's settings, enabling it with ``public_key`` the first time."""
        self.get_workspace(workspace_id)
        origins, url = check_origins(allowed_origins), check_privacy_url(privacy_policy_url)
        widget = self._get(WebWidget.id_for(workspace_id), WebWidget)
        if widget is not None:
            widget.change(origins, url, actor_id, now)
            self.save(widget)
            return widget
        widget = WebWidget.enable(workspace_id=workspace_id, public_key=public_key, allowed_origins=origins,
                                  privacy_policy_url=url, now=now)
        try:
            self.save(widget, WidgetKey.reserve(public_key, workspace_id, now))
        except IntegrityError:
            raise WidgetKeyTakenError("the widget was enabled concurrently; read it again") from None
        return widget

    def get_widget(self, workspace_id: UUID) -> WebWidget:
        widget = self._get(WebWidget.id_for(workspace_id), WebWidget)
        if widget is None:
            raise WidgetNotConfiguredError("the web chat widget is not set up in this workspace")
        return widget

    def widget_for_key(self, public_key: str) -> WebWidget | None:
        reservation = self._get(WidgetKey.id_for(public_key), WidgetKey)
        return None if reservation is None else self._get(WebWidget.id_for(reservation.workspace_id), WebWidget)

    def rotate_widget_secret(self, workspace_id: UUID, *, secret_id: UUID, secret: str, grace: timedelta,
                             actor_id: UUID | None, now: datetime) -> None:
        def attempt() -> None:
            widget = self.get_widget(workspace_id)
            widget.rotate_secret(secret_id, secret, grace, actor_id, now)
            self.save(widget)

        self._retrying(attempt)

    def add_visitor(
        self, workspace_id: UUID, *, contact_id: UUID, name: str, custom_fields: dict[str, str], notice: str,
        ip_address: str | None, now: datetime,
    ) -> UUID:
        """A new contact for a web chat visitor, with the pre-chat notice they accepted as evidence."""
        self.get_workspace(workspace_id)
        contact = Contact.create(contact_id=contact_id, workspace_id=workspace_id, name=name, phone=None, email=None,
                                 time_zone=None, custom_fields=custom_fields, actor_id=None, now=now)
        contact.grant_consent(Channel.WEBCHAT, Purpose.TRANSACTIONAL, source="web chat pre-chat notice",
                              wording=notice, actor_id=None, ip_address=ip_address, expires_at=None, now=now)
        self.save(contact)
        return contact.id

    def leave_offline_message(
        self, workspace_id: UUID, contact_id: UUID, *, email: str, body: str, wording: str, ip_address: str | None,
        message_id: UUID, provider_message_id: str, now: datetime,
    ) -> UUID:
        """The offline form: the visitor's email, their consent to be answered by email (with its evidence)
        and their message, saved together or not at all; a resent form (same provider message id) is
        stored once."""
        address = identifiers.email(email)
        channel = Channel.WEBCHAT.value
        receipt_id = InboundReceipt.id_for(workspace_id, channel, provider_message_id)

        def attempt() -> UUID:
            stored: InboundReceipt | None = self._get(receipt_id, InboundReceipt)
            if stored is not None:
                return stored.conversation_id
            contact = self.get_contact(workspace_id, contact_id)
            contact.rectify({"email": address}, None, now)
            contact.grant_consent(Channel.EMAIL, Purpose.TRANSACTIONAL, source="web chat offline form",
                                  wording=wording, actor_id=None, ip_address=ip_address, expires_at=None, now=now)
            conversation = self._conversation_for(workspace_id, contact_id, channel, "default", now)
            conversation.receive(message_id, body, [], provider_message_id, now)
            self.save(contact, conversation, InboundReceipt.record(
                workspace_id=workspace_id, channel=channel, provider_message_id=provider_message_id,
                message_id=message_id, conversation_id=conversation.id, now=now))
            return conversation.id

        return self._retrying(attempt)
