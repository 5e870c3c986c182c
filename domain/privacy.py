"""Privacy workflows in the domain: erasure requests (with legal holds), retention policies.

An erasure request moves requested → (refused: legal hold) | shredded → completed; the certificate
it completes with names ids, counts and times only, so it outlives the erasure it proves.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Callable
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.contact import Contact
from domain.errors import (
    ErasureNotFoundError,
    ErasureReasonInvalidError,
    ReferenceInvalidError,
    RetentionPolicyInvalidError,
)

RETENTION_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/retention-policy")
REFERENCE = re.compile(r"[A-Za-z0-9._:/#-]{1,64}")
MAX_RETENTION_DAYS = 36_500


class ErasureReason(StrEnum):
    """Grounds for erasure (GDPR art. 17(1)) plus the retention policy; a closed list, so no free text
    about the person can enter a certificate."""

    DATA_SUBJECT_REQUEST = "data_subject_request"
    NO_LONGER_NECESSARY = "no_longer_necessary"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    OBJECTION = "objection"
    UNLAWFUL_PROCESSING = "unlawful_processing"
    LEGAL_OBLIGATION = "legal_obligation"
    RETENTION_POLICY = "retention_policy"


def check_reason(reason: str) -> str:
    try:
        return ErasureReason(reason).value
    except ValueError:
        raise ErasureReasonInvalidError(f"reason must be one of {', '.join(r.value for r in ErasureReason)}") from None


def check_reference(reference: str) -> str:
    if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
        raise ReferenceInvalidError("reference must be 1-64 letters, digits or . _ : / # - (e.g. a ticket number)")
    return reference


class ErasureRequest(Aggregate):
    """One request to erase a contact, and how far it got."""

    class Requested(Aggregate.Created):
        workspace_id: UUID
        contact_id: UUID
        reason: str
        reference: str
        requested_by: UUID | None

    class Refused(Aggregate.Event):
        workspace_id: UUID
        why: str

        def apply(self, request: ErasureRequest) -> None:
            request.status = "refused"
            request.refusal = self.why

    class KeysShredded(Aggregate.Event):
        """The data keys are gone; ``erased_position`` is where ``Contact.Erased`` sits in the log."""

        workspace_id: UUID
        subject_ids: list[UUID]
        erased_position: int
        outbound_cancelled: int
        files_deleted: int

        def apply(self, request: ErasureRequest) -> None:
            request.status = "shredded"
            request.subject_ids = list(self.subject_ids)
            request.erased_position = self.erased_position
            request.outbound_cancelled = self.outbound_cancelled
            request.files_deleted = self.files_deleted
            request.shredded_at = self.timestamp

    class Completed(Aggregate.Event):
        """Every projection passed the erasure; the signed certificate is kept with the request."""

        workspace_id: UUID
        certificate: dict[str, Any]

        def apply(self, request: ErasureRequest) -> None:
            request.status = "completed"
            request.certificate = self.certificate
            request.completed_at = self.timestamp

    def __init__(self, workspace_id: UUID, contact_id: UUID, reason: str, reference: str, requested_by: UUID | None) -> None:
        self.workspace_id = workspace_id
        self.contact_id = contact_id
        self.reason = reason
        self.reference = reference
        self.requested_by = requested_by
        self.status = "requested"
        self.refusal: str | None = None
        self.subject_ids: list[UUID] = []
        self.erased_position = 0
        self.outbound_cancelled = 0
        self.files_deleted = 0
        self.shredded_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.certificate: dict[str, Any] | None = None

    @classmethod
    def request(cls, *, erasure_id: UUID, workspace_id: UUID, contact_id: UUID, reason: str, reference: str,
                requested_by: UUID | None, now: datetime) -> ErasureRequest:
        return cls._create(cls.Requested, id=erasure_id, workspace_id=workspace_id, contact_id=contact_id,
                           reason=check_reason(reason), reference=check_reference(reference),
                           requested_by=requested_by, timestamp=now)

    def refuse(self, why: str, now: datetime) -> None:
        if self.status == "requested":
            self.trigger_event(self.Refused, workspace_id=self.workspace_id, why=why, timestamp=now)

    def shredded(self, subject_ids: list[UUID], erased_position: int, outbound_cancelled: int, files_deleted: int,
                 now: datetime) -> None:
        if self.status == "requested":
            self.trigger_event(self.KeysShredded, workspace_id=self.workspace_id, subject_ids=subject_ids,
                               erased_position=erased_position, outbound_cancelled=outbound_cancelled,
                               files_deleted=files_deleted, timestamp=now)

    def complete(self, certificate: dict[str, Any], now: datetime) -> None:
        if self.status == "shredded":
            self.trigger_event(self.Completed, workspace_id=self.workspace_id, certificate=certificate, timestamp=now)

    @property
    def requested_at(self) -> datetime:
        return self.created_on


class RetentionPolicy(Aggregate):
    """A workspace's retention periods; its id derives from the workspace id (one per workspace)."""

    class Created(Aggregate.Created):
        workspace_id: UUID

    class Changed(Aggregate.Event):
        workspace_id: UUID
        erase_inactive_after_days: int | None
        delete_bodies_after_days: int | None
        actor_id: UUID | None

        def apply(self, policy: RetentionPolicy) -> None:
            policy.erase_inactive_after_days = self.erase_inactive_after_days
            policy.delete_bodies_after_days = self.delete_bodies_after_days

    class BodiesExpired(Aggregate.Event):
        """Message bodies, previews and attachment files older than ``before`` leave the read models
        (the sealed bodies in the events stay until their contact is erased)."""

        workspace_id: UUID
        before: datetime

        def apply(self, policy: RetentionPolicy) -> None:
            policy.bodies_expired_before = self.before

    def __init__(self, workspace_id: UUID) -> None:
        self.workspace_id = workspace_id
        self.erase_inactive_after_days: int | None = None
        self.delete_bodies_after_days: int | None = None
        self.bodies_expired_before: datetime | None = None

    @staticmethod
    def id_for(workspace_id: UUID) -> UUID:
        return uuid5(RETENTION_NAMESPACE, str(workspace_id))

    @classmethod
    def create(cls, workspace_id: UUID, now: datetime) -> RetentionPolicy:
        return cls._create(cls.Created, id=cls.id_for(workspace_id), workspace_id=workspace_id, timestamp=now)

    def change(self, erase_inactive_after_days: int | None, delete_bodies_after_days: int | None,
               actor_id: UUID | None, now: datetime) -> None:
        for days in (erase_inactive_after_days, delete_bodies_after_days):
            if days is not None and not (isinstance(days, int) and 1 <= days <= MAX_RETENTION_DAYS):
                raise RetentionPolicyInvalidError("retention periods must be whole days between 1 and 36,500")
        self.trigger_event(self.Changed, workspace_id=self.workspace_id,
                           erase_inactive_after_days=erase_inactive_after_days,
                           delete_bodies_after_days=delete_bodies_after_days, actor_id=actor_id, timestamp=now)

    def expire_bodies(self, before: datetime, now: datetime) -> None:
        if self.bodies_expired_before is None or before > self.bodies_expired_before:
            self.trigger_event(self.BodiesExpired, workspace_id=self.workspace_id, before=before, timestamp=now)


class PrivacyCommands:
    """Commands of the privacy workflows; mixed into ``CommHub``."""

    get_contact: Callable[..., Contact]
    save: Callable[..., Any]
    _get: Callable[..., Any]
    _change: Callable[..., None]

    def place_legal_hold(self, workspace_id: UUID, contact_id: UUID, reference: str, actor_id: UUID | None,
                         now: datetime) -> None:
        """Hold the contact's family (a merged duplicate's hold goes to the contact it was merged into)."""
        checked = check_reference(reference)
        survivor = self.survivor_of(workspace_id, contact_id)
        self._change(workspace_id, survivor.id, lambda c: c.place_legal_hold(checked, actor_id, now))

    def lift_legal_hold(self, workspace_id: UUID, contact_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        survivor = self.survivor_of(workspace_id, contact_id)
        self._change(workspace_id, survivor.id, lambda c: c.lift_legal_hold(actor_id, now))

    def survivor_of(self, workspace_id: UUID, contact_id: UUID) -> Contact:
        """The contact itself, or the contact it was merged into (whose family an erasure covers)."""
        contact = self.get_contact(workspace_id, contact_id)
        while contact.merged_into is not None:
            contact = self.get_contact(workspace_id, contact.merged_into)
        return contact

    def request_erasure(
        self, workspace_id: UUID, contact_id: UUID, *, erasure_id: UUID, reason: str, reference: str,
        requested_by: UUID | None, now: datetime,
    ) -> ErasureRequest:
        """Record the request and check legal holds: a held contact's request is recorded as refused."""
        survivor = self.survivor_of(workspace_id, contact_id)
        request = ErasureRequest.request(erasure_id=erasure_id, workspace_id=workspace_id, contact_id=contact_id,
                                         reason=reason, reference=reference, requested_by=requested_by, now=now)
        if survivor.legal_hold:
            request.refuse("legal_hold", now)
        self.save(request)
        return request

    def get_erasure(self, workspace_id: UUID, erasure_id: UUID) -> ErasureRequest:
        request = self._get(erasure_id, ErasureRequest)
        if request is None or request.workspace_id != workspace_id:
            raise ErasureNotFoundError("erasure request not found")
        return request

    def record_erasure_shredded(self, workspace_id: UUID, erasure_id: UUID, *, subject_ids: list[UUID],
                                erased_position: int, outbound_cancelled: int, files_deleted: int,
                                now: datetime) -> ErasureRequest:
        request = self.get_erasure(workspace_id, erasure_id)
        request.shredded(subject_ids, erased_position, outbound_cancelled, files_deleted, now)
        self.save(request)
        return request

    def complete_erasure(self, workspace_id: UUID, erasure_id: UUID, certificate: dict[str, Any],
                         now: datetime) -> ErasureRequest:
        request = self.get_erasure(workspace_id, erasure_id)
        request.complete(certificate, now)
        self.save(request)
        return request

    def retention_policy(self, workspace_id: UUID) -> RetentionPolicy | None:
        return self._get(RetentionPolicy.id_for(workspace_id), RetentionPolicy)

    def set_retention_policy(self, workspace_id: UUID, *, erase_inactive_after_days: int | None,
                             delete_bodies_after_days: int | None, actor_id: UUID | None,
                             now: datetime) -> RetentionPolicy:
        policy = self.retention_policy(workspace_id) or RetentionPolicy.create(workspace_id, now)
        policy.change(erase_inactive_after_days, delete_bodies_after_days, actor_id, now)
        self.save(policy)
        return policy

    def expire_bodies(self, workspace_id: UUID, before: datetime, now: datetime) -> bool:
        policy = self.retention_policy(workspace_id) or RetentionPolicy.create(workspace_id, now)
        policy.expire_bodies(before, now)
        if not policy.pending_events:
            return False
        self.save(policy)
        return True
