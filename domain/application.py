"""The commhub application: commands over workspaces, staff and contacts, persisted as events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, TypeVar
from uuid import UUID, uuid4

from contextvars import ContextVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import IntegrityError, Mapper
from eventsourcing.utils import Environment

from domain import identifiers
from domain.appointments_app import AppointmentCommands
from domain.consent import SendDecision, may_send
from domain.contact import Contact
from domain.conversation import Conversation, InboundReceipt, check_body, conversation_id_for
from domain.email import EmailCommands
from domain.errors import (
    CannedResponseNotFoundError,
    ContactErasedError,
    ContactNotFoundError,
    ConversationNotFoundError,
    StaffNotFoundError,
    WorkspaceNotFoundError,
    WorkspaceSlugTakenError,
)
from domain.identifiers import Channel, Purpose
from domain.integrations import IntegrationCommands
from domain.minors import MinorsCommands, check_date_of_birth
from domain.ports import ContactHandles, KeyShredder
from domain.privacy import PrivacyCommands
from domain.recent import RecentConversations
from domain.sms import COMPLIANCE, SmsCommands, compliance_decision
from domain.social_commands import SocialCommands
from domain.voice import VoiceCommands
from domain.widget import WidgetCommands
from domain.workspace import StaffMember, Workspace, WorkspaceSlug

last_position: ContextVar[int] = ContextVar("last_position", default=0)
"""Notification id of the last event saved in this context: read models are current once they pass it."""

RETRIES = 5
T = TypeVar("T")


class Owners:
    """The workspace of each aggregate this process has loaded. An aggregate never changes
    workspace and is never deleted, so a hit proves the id exists in that workspace — and nothing
    more (it may since have been merged or erased): commands that only need ownership skip
    reloading it. Holds ids only, no personal data."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._seen: dict[tuple[str, UUID], UUID] = {}

    def owns(self, kind: type, aggregate_id: UUID, workspace_id: UUID) -> bool:
        return self._seen.get((kind.__name__, aggregate_id)) == workspace_id

    def remember(self, kind: type, aggregate_id: UUID, workspace_id: UUID) -> None:
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[(kind.__name__, aggregate_id)] = workspace_id


class _Collected(ProcessingEvent[UUID]):
    """The events of one save. eventsourcing tells aggregates from events with ``isinstance`` against
    runtime-checkable protocols, which Python 3.11 answers by walking the protocols' attributes
    (~20 µs per aggregate saved; an inbound message saves two). Our aggregates are all
    ``BaseAggregate`` subclasses (an ordinary class check); anything else takes the library's path."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


class CommHub(WidgetCommands, MinorsCommands, AppointmentCommands, EmailCommands, SmsCommands, VoiceCommands,
             PrivacyCommands, SocialCommands, IntegrationCommands, Application):
    """All aggregates live in one application, so one notification log orders every event."""

    name = "commhub"
    snapshotting_intervals = {Contact: 100, StaffMember: 100, Conversation: 200, Workspace: 100}

    def __init__(
        self,
        env: dict[str, str],
        *,
        mapper_factory: Callable[[Application], Mapper] | None = None,
        shredder: KeyShredder | None = None,
        handles: ContactHandles | None = None,
    ) -> None:
        self._mapper_factory = mapper_factory
        self.shredder = shredder
        self.handles = handles
        self.owners = Owners()
        self.recent = RecentConversations()  # see domain/recent.py: only for commands that always append
        if shredder is not None:
            self.recent.live = shredder.watch(self.recent.forget)
        super().__init__(env)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """eventsourcing's ``Application.save``, step for step, collecting the events with
        ``_Collected`` (which knows our aggregates without runtime protocol checks)."""
        prepare = getattr(self.mapper, "prepare", None)
        if prepare is not None:  # lets the sealing mapper fetch every key of this save at once
            prepare([e for obj in objs if obj is not None for e in getattr(obj, "pending_events", [obj])])
        processing = _Collected()
        processing.collect_events(*objs, **kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        if recordings:
            last_position.set(max(r.notification.id for r in recordings))
        return recordings

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
        try:
            self.save(workspace, WorkspaceSlug.reserve(slug, workspace_id, now))
        except IntegrityError:
            raise WorkspaceSlugTakenError("another workspace already uses this slug") from None
        return workspace.id

    def workspace_for_slug(self, slug: str) -> UUID:
        reservation = self._get(WorkspaceSlug.id_for(slug), WorkspaceSlug)
        if reservation is None:
            raise WorkspaceNotFoundError("workspace not found")
        return reservation.workspace_id

    def save_canned_response(self, workspace_id: UUID, response_id: UUID, title: str, body: str, now: datetime) -> None:
        workspace = self.get_workspace(workspace_id)
        workspace.save_canned_response(response_id, title.strip(), check_body(body), now)
        self.save(workspace)

    def delete_canned_response(self, workspace_id: UUID, response_id: UUID, now: datetime) -> None:
        workspace = self.get_workspace(workspace_id)
        if str(response_id) not in workspace.canned_responses:
            raise CannedResponseNotFoundError("canned response not found")
        workspace.delete_canned_response(response_id, now)
        self.save(workspace)

    def get_workspace(self, workspace_id: UUID) -> Workspace:
        workspace = self._get(workspace_id, Workspace)
        if workspace is None:
            raise WorkspaceNotFoundError("workspace not found")
        self.owners.remember(Workspace, workspace.id, workspace.id)
        return workspace

    def check_workspace(self, workspace_id: UUID) -> None:
        if not self.owners.owns(Workspace, workspace_id, workspace_id):
            self.get_workspace(workspace_id)

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
        actor_id: UUID | None = None, now: datetime, date_of_birth: date | None = None,
    ) -> UUID:
        self.check_workspace(workspace_id)
        contact = Contact.create(
            date_of_birth=check_date_of_birth(date_of_birth, now) if date_of_birth is not None else None,
            contact_id=contact_id, workspace_id=workspace_id, name=name.strip(),
            phone=identifiers.e164(phone) if phone else None,
            email=identifiers.email(email) if email else None,
            time_zone=identifiers.time_zone(time_zone) if time_zone else None,
            custom_fields=dict(custom_fields or {}), actor_id=actor_id, now=now,
        )
        self.save(contact)
        self.owners.remember(Contact, contact.id, workspace_id)
        return contact.id

    def get_contact(self, workspace_id: UUID, contact_id: UUID) -> Contact:
        contact = self._get(contact_id, Contact)
        if contact is None or contact.workspace_id != workspace_id:
            raise ContactNotFoundError("contact not found")
        self.owners.remember(Contact, contact.id, workspace_id)
        return contact

    def check_contact(self, workspace_id: UUID, contact_id: UUID) -> None:
        """Raise unless the contact exists in this workspace (without loading it when known)."""
        if not self.owners.owns(Contact, contact_id, workspace_id):
            self.get_contact(workspace_id, contact_id)

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
        if checked.get("date_of_birth") is not None:
            checked["date_of_birth"] = check_date_of_birth(checked["date_of_birth"], now)
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
        if self.shredder is not None and self.shredder.is_erased(survivor.id):
            raise ContactErasedError("contact was erased")  # its erasure is in progress
        survivor.absorb(duplicate, actor_id, now)
        duplicate.mark_merged_into(survivor.id, actor_id, now)
        self.save(survivor, duplicate)

    def may_send(self, workspace_id: UUID, contact_id: UUID, channel: str, purpose: str, now: datetime) -> SendDecision:
        contact = self.get_contact(workspace_id, contact_id)
        subject = self.consent_subject_of(contact, purpose)
        if purpose == COMPLIANCE:
            return compliance_decision(subject)
        return may_send(subject, Channel(channel), Purpose(purpose), now)

    # Conversations -------------------------------------------------------------------------

    def get_conversation(self, workspace_id: UUID, conversation_id: UUID) -> Conversation:
        conversation = self._get(conversation_id, Conversation)
        if conversation is None or conversation.workspace_id != workspace_id:
            raise ConversationNotFoundError("conversation not found")
        return conversation

    def start_conversation(self, workspace_id: UUID, contact_id: UUID, channel: str, now: datetime) -> UUID:
        """The contact's conversation on ``channel``, started if it does not exist yet."""
        contact = self.get_contact(workspace_id, contact_id)
        identifiers.channel(channel)
        conversation = self._conversation_for(workspace_id, contact.id, channel, "default", now)
        if conversation.pending_events:
            try:
                self.save(conversation)
            except IntegrityError:
                pass  # started concurrently
        return conversation.id

    def find_or_create_contact(
        self, workspace_id: UUID, *, kind: str, value: str, name: str | None, now: datetime,
    ) -> UUID:
        """The contact owning this phone number or email, created on first contact."""
        assert self.handles is not None, "inbound routing needs the contact handle index"
        checked = identifiers.e164(value) if kind == "phone" else identifiers.email(value)
        found = self.handles.find(workspace_id, kind, checked)
        claimed = False
        if found is None:
            fresh = uuid4()
            found = self.handles.claim(workspace_id, kind, checked, fresh)
            claimed = found == fresh  # a new id claimed here: no contact can have it yet
        if claimed or not self._contact_exists(workspace_id, found):  # or claimed by a process that died before creating
            try:
                self.create_contact(
                    workspace_id=workspace_id, contact_id=found, name=(name or "").strip() or checked,
                    **{kind: checked}, now=now,
                )
            except IntegrityError:
                pass  # created concurrently under the same claimed id
        return found

    def receive_message(
        self, *, workspace_id: UUID, contact_id: UUID, channel: str, body: str, now: datetime,
        message_id: UUID | None = None, provider_message_id: str | None = None,
        attachments: list[dict[str, Any]] | None = None, thread: str = "default",
    ) -> tuple[UUID, UUID, bool]:
        """Store an inbound message; returns (conversation id, message id, whether it was new).

        A repeated ``provider_message_id`` stores nothing and returns the first message's ids.
        """
        self.check_contact(workspace_id, contact_id)
        identifiers.channel(channel)
        message_id = message_id or uuid4()
        def attempt() -> tuple[UUID, UUID, bool]:
            conversation, loan = self._inbound_conversation(workspace_id, contact_id, channel, thread, now)
            conversation.receive(message_id, body, list(attachments or []), provider_message_id, now)
            pending: list[Any] = [conversation]
            if provider_message_id:
                pending.append(InboundReceipt.record(
                    workspace_id=workspace_id, channel=channel, provider_message_id=provider_message_id,
                    message_id=message_id, conversation_id=conversation.id, now=now,
                ))
            try:
                self.save(*pending)
                self.recent.keep(conversation, loan)
            except IntegrityError:  # a retried delivery (the receipt exists), or a concurrent append
                if provider_message_id:
                    receipt = self._get(InboundReceipt.id_for(workspace_id, channel, provider_message_id),
                                        InboundReceipt)
                    if receipt is not None:
                        return receipt.conversation_id, receipt.message_id, False
                raise
            return conversation.id, message_id, True

        return self._retrying(attempt)

    def reply(
        self, workspace_id: UUID, conversation_id: UUID, *, body: str, author_id: UUID | None, now: datetime,
        message_id: UUID | None = None, purpose: str = "transactional",
    ) -> tuple[UUID, SendDecision]:
        """Queue an outbound message, or record why it may not be sent."""
        message_id = message_id or uuid4()
        check_body(body)
        def attempt() -> tuple[UUID, SendDecision]:
            conversation = self.get_conversation(workspace_id, conversation_id)
            contact = self.get_contact(workspace_id, conversation.contact_id)
            decision = self._send_or_refuse(conversation, contact, message_id, body, purpose, now, author_id)
            self.save(conversation)
            return message_id, decision

        return self._retrying(attempt)

    def _send_or_refuse(self, conversation: Conversation, contact: Contact, message_id: UUID, body: str,
                        purpose: str, now: datetime, author_id: UUID | None = None) -> SendDecision:
        """Every free-text send: consent and quiet hours, then Meta's 24-hour window; queued, or
        recorded as refused with the reason (the conversation is saved by the caller)."""
        decision = self.channel_decision(contact, conversation.channel, purpose, now)
        decision = self.social_window(conversation, decision, now)
        if decision.allowed:
            conversation.send(message_id, body, author_id, purpose, now)
        else:
            conversation.refuse(message_id, "" if contact.erased else body, author_id, purpose,
                                str(decision.reason), now)
        return decision

    def record_delivery(
        self, workspace_id: UUID, conversation_id: UUID, message_id: UUID, status: str, error_code: str | None,
        now: datetime,
    ) -> bool:
        return self._conversation_change(
            workspace_id, conversation_id, lambda c: c.update_delivery(message_id, status, error_code, now)
        )

    def assign_conversation(self, workspace_id: UUID, conversation_id: UUID, assignee_id: UUID | None,
                            actor_id: UUID | None, now: datetime) -> None:
        if assignee_id is not None:
            self.get_staff(workspace_id, assignee_id)
        self._conversation_change(workspace_id, conversation_id, lambda c: c.assign(assignee_id, actor_id, now))

    def close_conversation(self, workspace_id: UUID, conversation_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.close(actor_id, now))

    def reopen_conversation(self, workspace_id: UUID, conversation_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.reopen(actor_id, now))

    def label_conversation(self, workspace_id: UUID, conversation_id: UUID, label: str, actor_id: UUID | None,
                           now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.label(label, actor_id, now))

    def unlabel_conversation(self, workspace_id: UUID, conversation_id: UUID, label: str, actor_id: UUID | None,
                             now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.unlabel(label, actor_id, now))

    def snooze_conversation(self, workspace_id: UUID, conversation_id: UUID, until: datetime, actor_id: UUID | None,
                            now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.snooze(until, actor_id, now))

    def add_conversation_note(self, workspace_id: UUID, conversation_id: UUID, *, note_id: UUID, text: str,
                              author_id: UUID | None, now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.add_note(note_id, text, author_id, now))

    def mark_conversation_read(self, workspace_id: UUID, conversation_id: UUID, reader_id: UUID | None,
                               now: datetime) -> None:
        self._conversation_change(workspace_id, conversation_id, lambda c: c.mark_read(reader_id, now))

    def _conversation_for(self, workspace_id: UUID, contact_id: UUID, channel: str, thread: str, now: datetime) -> Conversation:
        existing = self._get(conversation_id_for(contact_id, channel, thread), Conversation)
        if existing is not None:
            return existing
        return Conversation.start(workspace_id=workspace_id, contact_id=contact_id, channel=channel, thread=thread, now=now)

    def _inbound_conversation(self, workspace_id: UUID, contact_id: UUID, channel: str, thread: str,
                              now: datetime) -> tuple[Conversation, int]:
        """The conversation for a command that always appends to it (an inbound message), from the
        copy this process saved last when there is one (domain/recent.py); save it, then hand it
        back with ``self.recent.keep(conversation, loan)``."""
        kept, loan = self.recent.take(conversation_id_for(contact_id, channel, thread))
        if kept is not None and kept.workspace_id == workspace_id:
            return kept, loan
        return self._conversation_for(workspace_id, contact_id, channel, thread, now), loan

    def _conversation_change(self, workspace_id: UUID, conversation_id: UUID, command: Callable[[Conversation], Any]) -> Any:
        def attempt() -> Any:
            conversation = self.get_conversation(workspace_id, conversation_id)
            result = command(conversation)
            self.save(conversation)
            return result

        return self._retrying(attempt)

    @staticmethod
    def _retrying(attempt: Callable[[], T]) -> T:
        """Run a load-decide-save attempt again when another writer got to the aggregate first."""
        for _ in range(RETRIES - 1):
            try:
                return attempt()
            except IntegrityError:
                continue
        return attempt()

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
        shredded: set[UUID] = set()
        while True:  # a merge saved meanwhile adds subjects: shred until the family is complete
            for subject_id in contact.subject_ids:
                if subject_id not in shredded:
                    self.shredder.shred(subject_id, workspace_id, request_id, now)
                    shredded.add(subject_id)
            contact = self.get_contact(workspace_id, contact.id)  # reload: personal fields now read as erased
            if set(contact.subject_ids) <= shredded:
                break
        contact.erase(request_id, actor_id, now)
        try:
            self.save(contact)
        except IntegrityError:  # something was appended meanwhile: record the erasure on the new version
            return self.erase_contact(workspace_id, contact.id, request_id=request_id, actor_id=actor_id, now=now)
        return contact.subject_ids

    # Helpers -------------------------------------------------------------------------------

    def _change(self, workspace_id: UUID, contact_id: UUID, command: Callable[[Contact], None]) -> None:
        contact = self.get_contact(workspace_id, contact_id)
        command(contact)
        self.save(contact)

    def _contact_exists(self, workspace_id: UUID, contact_id: UUID) -> bool:
        if self.owners.owns(Contact, contact_id, workspace_id):
            return True
        contact = self._get(contact_id, Contact)
        return contact is not None and contact.workspace_id == workspace_id

    def _get(self, aggregate_id: UUID, kind: type) -> Any:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, kind) else None
