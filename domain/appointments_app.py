"""Application commands for appointments, reminder policies and reminder replies (a CommHub mixin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from uuid import UUID

from domain.appointment import Appointment, appointment_id_for
from domain.consent import may_send
from domain.contact import Contact
from domain.conversation import Conversation
from domain.errors import AppointmentNotFoundError, ContactErasedError, ContactMergedError, ReminderPolicyNotFoundError
from domain.identifiers import Channel, Purpose
from domain.personal import readable
from domain.quiet_hours import next_allowed
from domain.reminders import (
    Decision,
    Policy,
    ReminderPolicies,
    decide,
    job_key,
    planned_at,
    reminder_message_id,
    render,
)
from domain.replies import Verdict

REPLY_LABELS = {Verdict.RESCHEDULE: "Reschedule request", Verdict.UNCLEAR: "Reminder reply"}
TARGET_STATUS = {"confirmed": "confirm", "checked_in": "check_in", "completed": "complete",
                 "cancelled": "cancel", "no_show": "mark_no_show"}


@dataclass(frozen=True)
class Booking:
    """One appointment to book or update, as an import or an integration describes it."""

    contact_id: UUID
    service: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str | None = None
    staff_id: UUID | None = None
    location: str | None = None
    notes: str | None = None
    external_id: str | None = None
    status: str = "booked"


class AppointmentCommands:
    """Mixed into CommHub: uses its ``_get``, ``save``, ``get_contact``, ``get_staff`` and ``_retrying``."""

    _get: Callable[..., Any]
    save: Callable[..., Any]
    get_contact: Callable[..., Contact]
    get_staff: Callable[..., Any]
    get_workspace: Callable[..., Any]
    _retrying: Callable[..., Any]
    _conversation_for: Callable[..., Conversation]
    consent_subject_of: Callable[..., Any]

    # Appointments --------------------------------------------------------------------------

    def get_appointment(self, workspace_id: UUID, appointment_id: UUID) -> Appointment:
        appointment = self._get(appointment_id, Appointment)
        if appointment is None or appointment.workspace_id != workspace_id:
            raise AppointmentNotFoundError("appointment not found")
        return appointment

    def book_appointment(
        self, workspace_id: UUID, appointment_id: UUID, booking: Booking, *, actor_id: UUID | None, now: datetime,
        source: str = "api",
    ) -> UUID:
        appointment = self._booked(workspace_id, appointment_id, booking, source, actor_id, now)
        self.save(appointment)
        return appointment.id

    def import_appointments(
        self, workspace_id: UUID, bookings: list[Booking], *, source: str, actor_id: UUID | None, now: datetime,
    ) -> list[tuple[UUID, str]]:
        """Book or update every appointment, all or nothing; one with a known external id is updated
        (moved, cancelled…) instead of booked twice. Returns (id, booked|updated|unchanged) each."""
        def attempt() -> list[tuple[UUID, str]]:
            loaded: dict[UUID, Appointment] = {}
            outcomes: list[tuple[UUID, str]] = []
            for booking in bookings:
                key = appointment_id_for(workspace_id, source, booking.external_id) if booking.external_id else None
                if key is None:
                    raise AppointmentNotFoundError("every imported appointment needs an external id")
                existing = loaded.get(key) or self._get(key, Appointment)
                if existing is not None and existing.workspace_id != workspace_id:
                    raise AppointmentNotFoundError("appointment not found")
                before = len(existing.pending_events) if existing is not None else 0
                if existing is None:
                    existing = self._booked(workspace_id, key, booking, source, actor_id, now)
                    outcome = "booked"
                else:
                    self._update(existing, booking, actor_id, now)
                    outcome = "updated" if len(existing.pending_events) > before else "unchanged"
                if booking.status != "booked" and booking.status != existing.status:
                    self._advance(existing, booking.status, actor_id, now)
                loaded[key] = existing
                outcomes.append((key, outcome))
            self.save(*loaded.values())
            return outcomes

        return self._retrying(attempt)  # type: ignore[no-any-return]

    def reschedule_appointment(
        self, workspace_id: UUID, appointment_id: UUID, *, starts_at: datetime, ends_at: datetime,
        time_zone: str | None, staff_id: UUID | None, location: str | None, actor_id: UUID | None, now: datetime,
    ) -> None:
        if staff_id is not None:
            self.get_staff(workspace_id, staff_id)
        self._appointment_change(workspace_id, appointment_id, lambda a: a.reschedule(
            starts_at, ends_at, time_zone or a.time_zone, staff_id, location, actor_id, now))

    def cancel_appointment(self, workspace_id: UUID, appointment_id: UUID, reason: str | None,
                           actor_id: UUID | None, now: datetime) -> None:
        self._appointment_change(workspace_id, appointment_id, lambda a: a.cancel(reason, actor_id, now))

    def confirm_appointment(self, workspace_id: UUID, appointment_id: UUID, actor_id: UUID | None, now: datetime,
                            via: str = "staff", message_id: UUID | None = None) -> bool:
        return self._appointment_change(  # type: ignore[no-any-return]
            workspace_id, appointment_id, lambda a: a.confirm(via, message_id, actor_id, now))

    def check_in_appointment(self, workspace_id: UUID, appointment_id: UUID, actor_id: UUID | None,
                             now: datetime) -> None:
        self._appointment_change(workspace_id, appointment_id, lambda a: a.check_in(actor_id, now))

    def complete_appointment(self, workspace_id: UUID, appointment_id: UUID, actor_id: UUID | None,
                             now: datetime) -> None:
        self._appointment_change(workspace_id, appointment_id, lambda a: a.complete(actor_id, now))

    def mark_no_show(self, workspace_id: UUID, appointment_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._appointment_change(workspace_id, appointment_id, lambda a: a.mark_no_show(actor_id, now))

    def record_write_back(self, workspace_id: UUID, appointment_id: UUID, change_key: str, status: str,
                          fhir_status: str, http_status: int | None, attempts: int, now: datetime) -> bool:
        """How writing a status change back to the appointment's source system ended (once per change)."""
        return self._appointment_change(  # type: ignore[no-any-return]
            workspace_id, appointment_id,
            lambda a: a.record_write_back(change_key, status, fhir_status, http_status, attempts, now))

    # Policies ------------------------------------------------------------------------------

    def reminder_policies(self, workspace_id: UUID, now: datetime) -> ReminderPolicies:
        self.get_workspace(workspace_id)
        book = self._get(ReminderPolicies.id_for(workspace_id), ReminderPolicies)
        return book if book is not None else ReminderPolicies.open(workspace_id, now)

    def save_reminder_policy(self, workspace_id: UUID, policy: Policy, now: datetime) -> None:
        self._policies_change(workspace_id, now, lambda book: book.save_policy(policy, now))

    def delete_reminder_policy(self, workspace_id: UUID, policy_id: UUID, now: datetime) -> None:
        def delete(book: ReminderPolicies) -> None:
            if book.policy(policy_id) is None:
                raise ReminderPolicyNotFoundError("reminder policy not found")
            book.delete_policy(policy_id, now)

        self._policies_change(workspace_id, now, delete)

    def set_quiet_hours(self, workspace_id: UUID, start: str | None, end: str | None, now: datetime) -> None:
        self._policies_change(workspace_id, now, lambda book: book.set_quiet_hours(start, end, now))

    # Sending reminders ---------------------------------------------------------------------

    def send_reminder(
        self, workspace_id: UUID, appointment_id: UUID, policy_id: UUID, planned: datetime, *,
        send_after: datetime, now: datetime,
    ) -> Decision:
        """Queue the reminder in the contact's conversation, or record once why it was skipped.

        Safe to call twice (two workers, a retry after a crash): the outcome is recorded on the
        appointment with the message in one transaction, and the message id derives from the job.
        """
        def attempt() -> Decision:
            appointment = self.get_appointment(workspace_id, appointment_id)
            key = job_key(appointment_id, policy_id, planned)
            book = self.reminder_policies(workspace_id, now)
            policy = book.policy(policy_id)
            contact = self.get_contact(workspace_id, appointment.contact_id)
            current = planned_at(policy, starts_at=appointment.starts_at, time_zone=appointment.time_zone,
                                 finished_at=appointment.finished_at, status=appointment.status) if policy else None
            channel = Channel(policy.channel) if policy else Channel.SMS
            purpose = Purpose(policy.purpose if policy else "transactional")
            consent = may_send(self.consent_subject_of(contact, purpose), channel, purpose, now)
            zone = readable(contact.time_zone) or appointment.time_zone
            decision = decide(
                policy=policy, planned=planned, current_plan=current, status=appointment.status,
                starts_at=appointment.starts_at, send_after=send_after, now=now, consent=consent,
                quiet_until=next_allowed(now, zone, book.quiet_hours), already=appointment.reminders.get(key),
            )
            if decision.action == "skip":
                appointment.record_reminder_skipped(key, policy_id, planned, decision.reason or "skipped", now)
                self.save(appointment)
            elif decision.action == "send":
                assert policy is not None
                conversation = self._conversation_for(workspace_id, contact.id, policy.channel, "default", now)
                message_id = reminder_message_id(key)
                conversation.send(message_id, self._render(policy, appointment, contact), None, policy.purpose, now)
                appointment.record_reminder_sent(key, policy_id, planned, message_id, conversation.id,
                                                 policy.channel, now)
                self.save(conversation, appointment)
            return decision

        return self._retrying(attempt)  # type: ignore[no-any-return]

    def answer_reminder_reply(
        self, workspace_id: UUID, appointment_id: UUID, conversation_id: UUID, message_id: UUID, verdict: Verdict,
        now: datetime,
    ) -> str:
        """A confirming reply confirms the appointment; anything else flags the conversation for the team."""
        if verdict is Verdict.CONFIRM:
            appointment = self.get_appointment(workspace_id, appointment_id)
            if appointment.status == "booked":
                self.confirm_appointment(workspace_id, appointment_id, None, now, via="reply", message_id=message_id)
                return "confirmed"
            if appointment.status == "confirmed":
                return "already_confirmed"
        label = REPLY_LABELS.get(verdict, REPLY_LABELS[Verdict.UNCLEAR])

        def flag() -> None:
            conversation = self._get(conversation_id, Conversation)
            if conversation is None or conversation.workspace_id != workspace_id:
                return
            conversation.reopen(None, now)
            conversation.label(label, None, now)
            self.save(conversation)

        self._retrying(flag)
        return "flagged"

    # Helpers -------------------------------------------------------------------------------

    def _render(self, policy: Policy, appointment: Appointment, contact: Contact) -> str:
        name = readable(contact.name, "") or ""
        return render(policy.template, {
            "first_name": name.split()[0] if name.split() else "",
            "service": readable(appointment.service, "") or "",
            "start_local": appointment.local_start().strftime("%a %d %b %Y, %H:%M"),
            "location": appointment.location,
            "workspace": self.get_workspace(appointment.workspace_id).name,
        })

    def _booked(self, workspace_id: UUID, appointment_id: UUID, booking: Booking, source: str,
                actor_id: UUID | None, now: datetime) -> Appointment:
        contact = self.get_contact(workspace_id, booking.contact_id)
        if contact.erased:
            raise ContactErasedError("contact was erased")
        if contact.merged_into is not None:
            raise ContactMergedError("contact was merged into another contact")
        if booking.staff_id is not None:
            self.get_staff(workspace_id, booking.staff_id)
        zone = booking.time_zone or readable(contact.time_zone) or self.get_workspace(workspace_id).time_zone
        return Appointment.book(
            appointment_id=appointment_id, workspace_id=workspace_id, contact_id=contact.id,
            staff_id=booking.staff_id, service=booking.service, location=booking.location,
            starts_at=booking.starts_at, ends_at=booking.ends_at, time_zone=zone, notes=booking.notes,
            source=source, external_id=booking.external_id, actor_id=actor_id, now=now,
        )

    def _update(self, appointment: Appointment, booking: Booking, actor_id: UUID | None, now: datetime) -> None:
        if booking.staff_id is not None:
            self.get_staff(appointment.workspace_id, booking.staff_id)
        if appointment.status in ("booked", "confirmed") and booking.status in ("booked", "confirmed"):
            appointment.reschedule(booking.starts_at, booking.ends_at, booking.time_zone or appointment.time_zone,
                                   booking.staff_id, booking.location, actor_id, now)

    @staticmethod
    def _advance(appointment: Appointment, status: str, actor_id: UUID | None, now: datetime) -> None:
        command = TARGET_STATUS.get(status)
        if command == "confirm":
            appointment.confirm("source", None, actor_id, now)
        elif command == "cancel":
            appointment.cancel(None, actor_id, now, via="source")
        elif command is not None:
            getattr(appointment, command)(actor_id, now, via="source")

    def _appointment_change(self, workspace_id: UUID, appointment_id: UUID,
                            command: Callable[[Appointment], Any]) -> Any:
        def attempt() -> Any:
            appointment = self.get_appointment(workspace_id, appointment_id)
            result = command(appointment)
            if appointment.pending_events:
                self.save(appointment)
            return result

        return self._retrying(attempt)

    def _policies_change(self, workspace_id: UUID, now: datetime, command: Callable[[ReminderPolicies], None]) -> None:
        def attempt() -> None:
            book = self.reminder_policies(workspace_id, now)
            command(book)
            if book.pending_events:
                self.save(book)

        self._retrying(attempt)
