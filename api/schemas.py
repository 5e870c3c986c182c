"""Request bodies. Every field has bounds, so hostile input is refused with 422 before any work."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

Text = Field(min_length=1, max_length=20_000)


def _refuse_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    if isinstance(value, list):
        for item in value:
            _refuse_nul(item)
    return value


class Body(BaseModel):
    """Base of every request body: unknown fields and NUL characters (which PostgreSQL text refuses) are errors."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def no_nul_characters(cls, data: Any) -> Any:
        return _refuse_nul(data)


class LoginRequest(Body):
    workspace: str = Field(min_length=1, max_length=60)
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=256)


class ContactCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    time_zone: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, str] = Field(default_factory=dict, max_length=50)
    default_region: str | None = Field(default=None, min_length=2, max_length=2, description="e.g. GB, for national numbers")
    date_of_birth: date | None = Field(default=None, description="personal (sealed); flags minors when the guard is on")


class ContactUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=254)
    time_zone: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, str | None] | None = Field(default=None, max_length=50)
    default_region: str | None = Field(default=None, min_length=2, max_length=2)
    date_of_birth: date | None = None


class MergeRequest(Body):
    duplicate_id: UUID


class NoteRequest(Body):
    text: str = Text


class TagsRequest(Body):
    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)


class ConsentRequest(Body):
    channel: Literal["sms", "email", "voice", "webchat", "social"]
    purpose: Literal["transactional", "marketing"]
    granted: bool
    source: str = Field(min_length=1, max_length=200)
    wording: str = Field(min_length=1, max_length=2_000)
    expires_at: datetime | None = None


class RestrictionRequest(Body):
    restricted: bool
    reason: str | None = Field(default=None, max_length=2_000)


class ObjectionRequest(Body):
    objected: bool


class StartConversation(Body):
    channel: Literal["sms", "email", "voice", "webchat", "social"]


class ReplyRequest(Body):
    body: str = Text
    purpose: Literal["transactional", "marketing"] = "transactional"


class AssignRequest(Body):
    assignee_id: UUID | None


class LabelsRequest(Body):
    add: list[str] = Field(default_factory=list, max_length=20)
    remove: list[str] = Field(default_factory=list, max_length=20)


class SnoozeRequest(Body):
    until: datetime


class CannedResponseRequest(Body):
    title: str = Field(min_length=1, max_length=100)
    body: str = Text


class StaffCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254)
    role: Literal["owner", "admin", "agent", "compliance"]
    password: str = Field(min_length=10, max_length=256)


class StaffUpdate(Body):
    role: Literal["owner", "admin", "agent", "compliance"]


class SandboxAttachment(Body):
    """A file sent with a simulated message (base64); stored sealed under the contact's key."""

    filename: str = Field(min_length=1, max_length=200)
    content_type: str = Field(default="application/octet-stream", max_length=100)
    content_base64: str = Field(min_length=1, max_length=700_000)


class SandboxInbound(Body):
    channel: Literal["sms", "email", "webchat", "social"] = "sms"
    sender: str = Field(min_length=3, max_length=254, alias="from")
    name: str | None = Field(default=None, max_length=200)
    body: str = Text
    provider_message_id: str | None = Field(default=None, max_length=100)
    default_region: str | None = Field(default=None, min_length=2, max_length=2)
    attachments: list[SandboxAttachment] = Field(default_factory=list, max_length=5)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SandboxStored(BaseModel):
    """What the sandbox answers: the ids of what the message landed in (documentation only)."""

    contact_id: UUID
    conversation_id: UUID
    message_id: UUID
    duplicate: bool = Field(description="true when provider_message_id was seen before and nothing was stored")


class ContactSearch(Body):
    """Search terms are personal data, so they travel in a body, never in a URL."""

    q: str | None = Field(default=None, max_length=100)
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class ConversationSearch(Body):
    view: Literal["all", "open", "closed", "mine", "unassigned", "snoozed"] = "open"
    label: str | None = Field(default=None, max_length=40)
    channel: Literal["sms", "email", "voice", "webchat", "social"] | None = None
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class WidgetSettingsRequest(Body):
    allowed_origins: list[str] = Field(default_factory=list, max_length=20,
                                       description="scheme://host[:port] of each site that embeds the widget")
    privacy_policy_url: str | None = Field(default=None, max_length=500)


class WidgetSecretRotation(Body):
    grace_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400,
                               description="how long the replaced secret keeps verifying identities")
