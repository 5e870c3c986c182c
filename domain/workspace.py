"""Workspaces (tenants) and their staff members."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.minors import DEFAULT_MINIMUM_AGE, MinorsGuard
from domain.personal import SUBJECT

SLUG_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/workspace-slug")


class Workspace(Aggregate):
    """A business using commhub; every other aggregate names the workspace it belongs to."""

    class Created(Aggregate.Created):
        name: str
        slug: str
        time_zone: str

    class Renamed(Aggregate.Event):
        name: str

        def apply(self, workspace: Workspace) -> None:
            workspace.name = self.name

    class CannedResponseSaved(Aggregate.Event):
        response_id: UUID
        title: str
        body: str

        def apply(self, workspace: Workspace) -> None:
            workspace.canned_responses[str(self.response_id)] = {"title": self.title, "body": self.body}

    class CannedResponseDeleted(Aggregate.Event):
        response_id: UUID

        def apply(self, workspace: Workspace) -> None:
            workspace.canned_responses.pop(str(self.response_id), None)

    def __init__(self, name: str, slug: str, time_zone: str) -> None:
        self.name = name
        self.slug = slug
        self.time_zone = time_zone
        self.canned_responses: dict[str, dict[str, str]] = {}

    def save_canned_response(self, response_id: UUID, title: str, body: str, now: datetime) -> None:
        self.trigger_event(self.CannedResponseSaved, response_id=response_id, title=title, body=body, timestamp=now)

    def delete_canned_response(self, response_id: UUID, now: datetime) -> None:
        if str(response_id) in self.canned_responses:
            self.trigger_event(self.CannedResponseDeleted, response_id=response_id, timestamp=now)

    @property
    def workspace_id(self) -> UUID:
        return self.id

    @classmethod
    def create(cls, *, workspace_id: UUID, name: str, slug: str, time_zone: str, now: datetime) -> Workspace:
        return cls._create(cls.Created, id=workspace_id, name=name, slug=slug, time_zone=time_zone, timestamp=now)

    def rename(self, name: str, now: datetime) -> None:
        self.trigger_event(self.Renamed, name=name, timestamp=now)

    # The under-age guard (class defaults: workspaces and snapshots from before it read as "off").
    minors_guard_enabled: bool = False
    minors_minimum_age: int = DEFAULT_MINIMUM_AGE

    class MinorsGuardChanged(Aggregate.Event):
        enabled: bool
        minimum_age: int
        actor_id: UUID | None

        def apply(self, workspace: Workspace) -> None:
            workspace.minors_guard_enabled = self.enabled
            workspace.minors_minimum_age = self.minimum_age

    @property
    def minors_guard(self) -> MinorsGuard:
        return MinorsGuard(self.minors_guard_enabled, self.minors_minimum_age)

    def set_minors_guard(self, enabled: bool, minimum_age: int, actor_id: UUID | None, now: datetime) -> None:
        if self.minors_guard != MinorsGuard(enabled, minimum_age):
            self.trigger_event(self.MinorsGuardChanged, enabled=enabled, minimum_age=minimum_age, actor_id=actor_id,
                               timestamp=now)


class WorkspaceSlug(Aggregate):
    """Reserves a slug: its id derives from the slug, so a second workspace with it cannot be saved."""

    class Reserved(Aggregate.Created):
        workspace_id: UUID

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id

    @staticmethod
    def id_for(slug: str) -> UUID:
        return uuid5(SLUG_NAMESPACE, slug)

    @classmethod
    def reserve(cls, slug: str, workspace_id: UUID, now: datetime) -> WorkspaceSlug:
        return cls._create(cls.Reserved, id=cls.id_for(slug), workspace_id=workspace_id, timestamp=now)


class StaffMember(Aggregate):
    """A person who works in a workspace: an owner, admin, agent or compliance officer.

    Staff are data subjects too: their name, email and password hash are sealed under their own key.
    """

    personal_state: ClassVar[tuple[str, ...]] = ("name", "email", "password_hash")

    class Created(Aggregate.Created):
        workspace_id: UUID
        name: str
        email: str
        role: str
        password_hash: str
        personal: ClassVar[dict[str, str]] = {"name": SUBJECT, "email": SUBJECT, "password_hash": SUBJECT}

    class RoleChanged(Aggregate.Event):
        workspace_id: UUID
        role: str
        actor_id: UUID | None

        def apply(self, staff: StaffMember) -> None:
            staff.role = self.role

    class PasswordChanged(Aggregate.Event):
        workspace_id: UUID
        password_hash: str
        personal: ClassVar[dict[str, str]] = {"password_hash": SUBJECT}

        def apply(self, staff: StaffMember) -> None:
            staff.password_hash = self.password_hash

    class Deactivated(Aggregate.Event):
        workspace_id: UUID
        actor_id: UUID | None

        def apply(self, staff: StaffMember) -> None:
            staff.active = False

    def __init__(self, workspace_id: UUID, name: str, email: str, role: str, password_hash: str) -> None:
        self.workspace_id = workspace_id
        self.name = name
        self.email = email
        self.role = role
        self.password_hash = password_hash
        self.active = True

    @classmethod
    def create(
        cls, *, staff_id: UUID, workspace_id: UUID, name: str, email: str, role: str, password_hash: str, now: datetime
    ) -> StaffMember:
        return cls._create(
            cls.Created,
            id=staff_id,
            workspace_id=workspace_id,
            name=name,
            email=email,
            role=role,
            password_hash=password_hash,
            timestamp=now,
        )

    def change_role(self, role: str, actor_id: UUID | None, now: datetime) -> None:
        self.trigger_event(self.RoleChanged, workspace_id=self.workspace_id, role=role, actor_id=actor_id, timestamp=now)

    def change_password(self, password_hash: str, now: datetime) -> None:
        self.trigger_event(self.PasswordChanged, workspace_id=self.workspace_id, password_hash=password_hash, timestamp=now)

    def deactivate(self, actor_id: UUID | None, now: datetime) -> None:
        self.trigger_event(self.Deactivated, workspace_id=self.workspace_id, actor_id=actor_id, timestamp=now)
