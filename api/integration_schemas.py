"""Request bodies of API keys and webhook subscriptions (bounded, unknown fields refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas import Body
from domain.integrations import SCOPES
from domain.webhooks import EVENT_TYPES, MAX_URL

Scope = Literal[tuple(SCOPES)]  # type: ignore[valid-type]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


class ApiKeyCreate(Body):
    name: str = Field(min_length=1, max_length=100, description="what the key is for, e.g. the integration's name")
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))


class WebhookCreate(Body):
    url: str = Field(min_length=8, max_length=MAX_URL, description="http(s) URL that receives signed POSTs")
    event_types: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: str = Field(default="", max_length=200)


class WebhookChange(Body):
    url: str | None = Field(default=None, min_length=8, max_length=MAX_URL)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES))
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = None
