"""The commhub application: commands over workspaces, staff and contacts, persisted as events."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import Mapper
from eventsourcing.utils import Environment

from domain import identifiers
from domain.consent import SendDecision, may_send
from domain.contact import Contact
from domain.errors import ContactNotFoundError, StaffNotFoundError, WorkspaceNotFoundError
from domain.identifiers import Channel, Purpose
from domain.ports import KeyShredder
from domain.workspace import StaffMember, Workspace


class CommHub(Application):
    """All aggregates live in one application, so one notification log orders every event."""

    name = "commhub"
    snapshotting_intervals = {Contact: 100, StaffMember: 100}

    def __init__(
        self,
        env: dict[str, str],
        *,
        mapper_factory: Callable[[Application], Mapper] | None = None,
        shredder: KeyShredder | None = None,
    ) -> None:
        self._mapper_factory = mapper_factory
        self.shredder = shredder
        super().__init__(env)

    def construct_env(self, name: str, env: Any = None) -> Environment:
        """Configuration comes only from the composition root, never from os.environ."""
        values = dict(type(self).env)
        if self.snapshotting_intervals:
            values["IS_SNAPSHOTTING_ENABLED"] = "y"
        values.update(env or {})
        return Environment(name, values)

    def construct_mapper(self) -> Mapper:
        if self._mapper_factory is not None:
            return self._mapper_factory(self)
        return super().construct_mapper()

    # Workspaces and staff -------------------------------------------------------------------

    def create_workspace(self, *, workspace_id: UUID, name: str, slug: str, time_zone: str, now: datetime) -> UUID:
        workspace = Workspace.create(
            workspace_id=workspace_id, name=name.strip(), slug=identifiers.slug(slug),
            time_zone=identifiers.time_zone(time_zone), now=now,
        )
        self.save(workspace)
        return workspace.id

    def get_workspace(self, workspace_id: UUID) -> Workspace:
        workspace = self._get(workspace_id, Workspace)
        if workspace is None:
            raise WorkspaceNotFoundError("workspace not found")
        return workspace

    def add_staff(
        self, *, workspace_id: UUID, staff_id: UUID, name: str, email: str, role: str, password_hash: str,
        now: datetime,
    ) -> UUID:
        self.get_workspace(workspace_id)
        staff = StaffMember.create(
            staff_id=staff_id, workspace_id=workspace_id, name=name.strip(), email=identifiers.email(email),
            role=identifiers.role(role).value, password_hash=password_hash, now=now,
        )
        self.save(staff)
        return staff.id

    def get_staff(self, workspace_id: UUID, staff_id: UUID) -> StaffMember:
        staff = self._get(staff_id, StaffMember)
        if staff is None or staff.workspace_id != workspace_id:
            raise StaffNotFoundError("staff member not found")
        return staff

    def change_staff_role(self, workspace_id: UUID, staff_id: UUID, role: str, actor_id: UUID | None, now: datetime) -> None:
        staff = self.get_staff(workspace_id, staff_id)
        staff.change_role(identifiers.role(role).value, actor_id, now)
        self.save(staff)

    # Contacts ------------------------------------------------------------------------------

    def create_contact(
        self, *, workspace_id: UUID, contact_id: UUID, name: str, phone: str | None = None,
        email: str | None = None, time_zone: str | None = None, custom_fields: dict[str, str] | None = None,
        actor_id: UUID | None = None, now: datetime,
    ) -> UUID:
        self.get_workspace(workspace_id)
        contact = Contact.create(
            contact_id=contact_id, workspace_id=workspace_id, name=name.strip(),
            phone=identifiers.e164(phone) if phone else None,
            email=identifiers.email(email) if email else None,
            time_zone=identifiers.time_zone(time_zone) if time_zone else None,
            custom_fields=dict(custom_fields or {}), actor_id=actor_id, now=now,
        )
        self.save(contact)
        return contact.id

    def get_contact(self, workspace_id: UUID, contact_id: UUID) -> Contact:
        contact = self._get(contact_id, Contact)
        if contact is None or contact.workspace_id != workspace_id:
            raise ContactNotFoundError("contact not found")
        return contact

    def rectify_contact(
        self, workspace_id: UUID, contact_id: UUID, changes: dict[str, Any], actor_id: UUID | None, now: datetime,
    ) -> None:
        checked = dict(changes)
        if checked.get("phone"):
            checked["phone"] = identifiers.e164(checked["phone"])
        if checked.get("email"):
            checked["email"] = identifiers.email(checked["email"])
        if checked.get("time_zone"):
            checked["time_zone"] = identifiers.time_zone(checked["time_zone"])
        self._change(workspace_id, contact_id, lambda c: c.rectify(checked, actor_id, now))

    def tag_contact(self, workspace_id: UUID, contact_id: UUID, tag: str, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.tag(tag.strip(), actor_id, now))

    def untag_contact(self, workspace_id: UUID, contact_id: UUID, tag: str, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.untag(tag.strip(), actor_id, now))

    def add_note(
        self, workspace_id: UUID, contact_id: UUID, *, note_id: UUID, text: str, author_id: UUID | None, now: datetime,
    ) -> None:
        self._change(workspace_id, contact_id, lambda c: c.add_note(note_id, text, author_id, now))

    def grant_consent(
        self, workspace_id: UUID, contact_id: UUID, *, channel: str, purpose: str, source: str, wording: str,
        actor_id: UUID | None, now: datetime, ip_address: str | None = None, expires_at: datetime | None = None,
    ) -> None:
        ch, pu = identifiers.channel(channel), identifiers.purpose(purpose)
        self._change(workspace_id, contact_id, lambda c: c.grant_consent(
            ch, pu, source=source, wording=wording, actor_id=actor_id, ip_address=ip_address,
            expires_at=expires_at, now=now,
        ))

    def withdraw_consent(
        self, workspace_id: UUID, contact_id: UUID, *, channel: str, purpose: str, source: str, wording: str,
        actor_id: UUID | None, now: datetime, ip_address: str | None = None,
    ) -> None:
        ch, pu = identifiers.channel(channel), identifiers.purpose(purpose)
        self._change(workspace_id, contact_id, lambda c: c.withdraw_consent(
            ch, pu, source=source, wording=wording, actor_id=actor_id, ip_address=ip_address, now=now,
        ))

    def restrict_processing(self, workspace_id: UUID, contact_id: UUID, reason: str, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.restrict_processing(reason, actor_id, now))

    def lift_restriction(self, workspace_id: UUID, contact_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.lift_restriction(actor_id, now))

    def object_to_marketing(self, workspace_id: UUID, contact_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.object_to_marketing(actor_id, now))

    def withdraw_objection(self, workspace_id: UUID, contact_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._change(workspace_id, contact_id, lambda c: c.withdraw_objection(actor_id, now))

    def merge_contacts(
        self, workspace_id: UUID, survivor_id: UUID, duplicate_id: UUID, actor_id: UUID | None, now: datetime,
    ) -> None:
        survivor = self.get_contact(workspace_id, survivor_id)
        duplicate = self.get_contact(workspace_id, duplicate_id)
        survivor.absorb(duplicate, actor_id, now)
        duplicate.mark_merged_into(survivor.id, actor_id, now)
        self.save(survivor, duplicate)

    def may_send(self, workspace_id: UUID, contact_id: UUID, channel: str, purpose: str, now: datetime) -> SendDecision:
        contact = self.get_contact(workspace_id, contact_id)
        return may_send(contact.consent_subject(), Channel(channel), Purpose(purpose), now)

    # Erasure -------------------------------------------------------------------------------

    def erase_contact(
        self, workspace_id: UUID, contact_id: UUID, *, request_id: UUID, actor_id: UUID | None, now: datetime,
    ) -> list[UUID]:
        """Shred the keys of the contact (and of duplicates merged into it), then record it.

        Keys go first: once this returns, nothing of theirs can be read anywhere. If the
        process dies between the two steps, calling again completes it (shredding is idempotent).
        """
        contact = self.get_contact(workspace_id, contact_id)
        while contact.merged_into is not None:
            contact = self.get_contact(workspace_id, contact.merged_into)
        if contact.erased:
            return contact.subject_ids
        assert self.shredder is not None, "erasure needs a key shredder"
        for subject_id in contact.subject_ids:
            self.shredder.shred(subject_id, workspace_id, request_id, now)
        contact = self.get_contact(workspace_id, contact.id)  # reload: personal fields now read as erased
        contact.erase(request_id, actor_id, now)
        self.save(contact)
        return contact.subject_ids

    # Helpers -------------------------------------------------------------------------------

    def _change(self, workspace_id: UUID, contact_id: UUID, command: Callable[[Contact], None]) -> None:
        contact = self.get_contact(workspace_id, contact_id)
        command(contact)
        self.save(contact)

    def _get(self, aggregate_id: UUID, kind: type) -> Any:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None
