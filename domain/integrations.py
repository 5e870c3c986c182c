"""Integrations: API keys (issued with scopes, revoked) and webhook subscriptions (a URL, event
types and a signing secret sealed under the subscription's own data key), and their commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import ApiKeyNotFoundError, ApiKeyScopeInvalidError, WebhookNotFoundError
from domain.personal import SUBJECT, is_erased
from domain.webhooks import check_event_types, check_url

SCOPES: dict[str, str] = {
    "contacts:read": "list, search and read contacts, their timelines and consents",
    "contacts:write": "create and rectify contacts, add notes and tags, record consent",
    "conversations:read": "list, search and read conversations and their messages",
    "messages:send": "reply in a conversation (consent is checked as for staff)",
    "appointments:read": "list and read appointments",
    "appointments:write": "book, move, cancel, confirm, check in, complete appointments and mark no-shows",
    "webhooks:manage": "create, change, rotate, delete webhook subscriptions and read their deliveries",
}
MAX_NAME = 100


def check_key(name: str, scopes: list[str]) -> tuple[str, list[str]]:
    chosen = sorted(set(scopes))
    clean = name.strip() if isinstance(name, str) else ""
    if not clean or len(clean) > MAX_NAME or not chosen or any(s not in SCOPES for s in chosen):
        raise ApiKeyScopeInvalidError(f"give a name (1–{MAX_NAME} characters) and scopes from: {', '.join(SCOPES)}")
    return clean, chosen


class ApiKey(Aggregate):
    """A workspace's key for an integration. Only the SHA-256 digest of the secret is kept."""

    class Issued(Aggregate.Created):
        workspace_id: UUID
        name: str
        scopes: list[str]
        key_digest: str
        hint: str
        actor_id: UUID | None

    class Revoked(Aggregate.Event):
        workspace_id: UUID
        actor_id: UUID | None

        def apply(self, key: ApiKey) -> None:
            key.revoked_at = self.timestamp

    def __init__(self, workspace_id: UUID, name: str, scopes: list[str], key_digest: str, hint: str,
                 actor_id: UUID | None) -> None:
        self.workspace_id = workspace_id
        self.name = name
        self.scopes = list(scopes)
        self.key_digest = key_digest
        self.hint = hint
        self.revoked_at: datetime | None = None

    def revoke(self, actor_id: UUID | None, now: datetime) -> None:
        if self.revoked_at is None:
            self.trigger_event(self.Revoked, workspace_id=self.workspace_id, actor_id=actor_id, timestamp=now)


class WebhookSubscription(Aggregate):
    """A URL that receives the workspace's events of the chosen types, signed with its secret."""

    personal_state: ClassVar[tuple[str, ...]] = ("secret",)

    class Created(Aggregate.Created):
        workspace_id: UUID
        url: str
        event_types: list[str]
        description: str
        secret: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"secret": SUBJECT}

    class Changed(Aggregate.Event):
        workspace_id: UUID
        url: str
        event_types: list[str]
        description: str
        active: bool
        actor_id: UUID | None

        def apply(self, subscription: WebhookSubscription) -> None:
            subscription.url = self.url
            subscription.event_types = list(self.event_types)
            subscription.description = self.description
            subscription.active = self.active

    class SecretRotated(Aggregate.Event):
        workspace_id: UUID
        secret: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"secret": SUBJECT}

        def apply(self, subscription: WebhookSubscription) -> None:
            subscription.secret = self.secret

    class Deleted(Aggregate.Event):
        workspace_id: UUID
        actor_id: UUID | None

        def apply(self, subscription: WebhookSubscription) -> None:
            subscription.deleted = True
            subscription.active = False

    def __init__(self, workspace_id: UUID, url: str, event_types: list[str], description: str, secret: str,
                 actor_id: UUID | None) -> None:
        self.workspace_id = workspace_id
        self.url = url
        self.event_types = list(event_types)
        self.description = description
        self.secret = secret
        self.active = True
        self.deleted = False

    @property
    def signing_secret(self) -> str | None:
        return None if is_erased(self.secret) else self.secret


class IntegrationCommands:
    """Commands of API keys and webhook subscriptions; mixed into ``CommHub``."""

    _get: Callable[..., Any]
    save: Callable[..., Any]
    _retrying: Callable[..., Any]
    check_workspace: Callable[..., Any]

    def issue_api_key(self, workspace_id: UUID, key_id: UUID, *, name: str, scopes: list[str], key_digest: str,
                      hint: str, actor_id: UUID | None, now: datetime) -> ApiKey:
        self.check_workspace(workspace_id)
        clean, chosen = check_key(name, scopes)
        key = ApiKey._create(ApiKey.Issued, id=key_id, workspace_id=workspace_id, name=clean, scopes=chosen,
                             key_digest=key_digest, hint=hint, actor_id=actor_id, timestamp=now)
        self.save(key)
        return key

    def get_api_key(self, workspace_id: UUID, key_id: UUID) -> ApiKey:
        key: ApiKey | None = self._get(key_id, ApiKey)
        if key is None or key.workspace_id != workspace_id:
            raise ApiKeyNotFoundError("API key not found")
        return key

    def revoke_api_key(self, workspace_id: UUID, key_id: UUID, actor_id: UUID | None, now: datetime) -> ApiKey:
        def attempt() -> ApiKey:
            key = self.get_api_key(workspace_id, key_id)
            key.revoke(actor_id, now)
            self.save(key)
            return key

        revoked: ApiKey = self._retrying(attempt)
        return revoked

    def subscribe_webhook(self, workspace_id: UUID, subscription_id: UUID, *, url: str, event_types: list[str],
                          description: str, secret: str, actor_id: UUID | None,
                          now: datetime) -> WebhookSubscription:
        self.check_workspace(workspace_id)
        subscription = WebhookSubscription._create(
            WebhookSubscription.Created, id=subscription_id, workspace_id=workspace_id, url=check_url(url),
            event_types=check_event_types(event_types), description=description.strip(), secret=secret,
            actor_id=actor_id, timestamp=now)
        self.save(subscription)
        return subscription

    def get_webhook(self, workspace_id: UUID, subscription_id: UUID) -> WebhookSubscription:
        subscription: WebhookSubscription | None = self._get(subscription_id, WebhookSubscription)
        if subscription is None or subscription.workspace_id != workspace_id or subscription.deleted:
            raise WebhookNotFoundError("webhook subscription not found")
        return subscription

    def find_webhook(self, subscription_id: UUID) -> WebhookSubscription | None:
        """The subscription whatever its workspace or state (for the delivery worker, which checks both)."""
        found: WebhookSubscription | None = self._get(subscription_id, WebhookSubscription)
        return found

    def change_webhook(self, workspace_id: UUID, subscription_id: UUID, *, url: str | None,
                       event_types: list[str] | None, description: str | None, active: bool | None,
                       actor_id: UUID | None, now: datetime) -> WebhookSubscription:
        def attempt() -> WebhookSubscription:
            s = self.get_webhook(workspace_id, subscription_id)
            values = {"url": s.url if url is None else check_url(url),
                      "event_types": s.event_types if event_types is None else check_event_types(event_types),
                      "description": s.description if description is None else description.strip(),
                      "active": s.active if active is None else active}
            if values != {"url": s.url, "event_types": s.event_types, "description": s.description,
                          "active": s.active}:
                s.trigger_event(WebhookSubscription.Changed, workspace_id=workspace_id, actor_id=actor_id,
                                timestamp=now, **values)
                self.save(s)
            return s

        changed: WebhookSubscription = self._retrying(attempt)
        return changed

    def rotate_webhook_secret(self, workspace_id: UUID, subscription_id: UUID, *, secret: str,
                              actor_id: UUID | None, now: datetime) -> None:
        def attempt() -> None:
            s = self.get_webhook(workspace_id, subscription_id)
            s.trigger_event(WebhookSubscription.SecretRotated, workspace_id=workspace_id, secret=secret,
                            actor_id=actor_id, timestamp=now)
            self.save(s)

        self._retrying(attempt)

    def delete_webhook(self, workspace_id: UUID, subscription_id: UUID, actor_id: UUID | None,
                       now: datetime) -> None:
        def attempt() -> None:
            s = self.get_webhook(workspace_id, subscription_id)
            s.trigger_event(WebhookSubscription.Deleted, workspace_id=workspace_id, actor_id=actor_id,
                            timestamp=now)
            self.save(s)

        self._retrying(attempt)
