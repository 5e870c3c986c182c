"""Contacts: the people a business talks to, with their profile, notes, tags and consents."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.consent import ConsentRecord, ConsentSubject
from domain.errors import (
    ConsentExpiryInvalidError,
    ContactErasedError,
    ContactMergedError,
    ContactMergeInvalidError,
    FieldNotRectifiableError,
)
from domain.identifiers import Channel, Purpose
from domain.minors import MinorsGuard
from domain.personal import ERASED, SUBJECT, is_erased

PROFILE_FIELDS = ("name", "phone", "email", "time_zone", "custom_fields", "date_of_birth")


def _key(channel: str, purpose: str) -> str:
    return f"{channel}:{purpose}"


def _writable(contact: Contact, attribute: str, empty: Any) -> Any:
    """The container held in ``attribute``, replaced by ``empty`` if a snapshot left it erased."""
    value = getattr(contact, attribute)
    if is_erased(value):
        value = empty
        setattr(contact, attribute, value)
    return value


class Contact(Aggregate):
    """A customer or patient; the data subject of everything recorded about them."""

    personal_state: ClassVar[tuple[str, ...]] = (
        "name", "phone", "email", "time_zone", "custom_fields", "tags", "restriction_reason", "consents",
        "date_of_birth",
    )
    date_of_birth: date | None = None  # class default: contacts and snapshots from before it was recorded

    class Event(Aggregate.Event):
        workspace_id: UUID

    class Created(Aggregate.Created):
        workspace_id: UUID
        name: str
        phone: str | None
        email: str | None
        time_zone: str | None
        custom_fields: dict[str, str]
        actor_id: UUID | None
        date_of_birth: date | None = None
        personal: ClassVar[dict[str, str]] = {
            "name": SUBJECT, "phone": SUBJECT, "email": SUBJECT, "time_zone": SUBJECT, "custom_fields": SUBJECT,
            "date_of_birth": SUBJECT,
        }

    class Rectified(Event):
        """Profile fields corrected; the old values stay sealed in the events that set them."""

        changes: dict[str, Any]
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"changes": SUBJECT}

        def apply(self, contact: Contact) -> None:
            if is_erased(self.changes):
                for field in PROFILE_FIELDS:
                    setattr(contact, field, ERASED)
                return
            for field, value in self.changes.items():
                if field == "custom_fields":
                    fields = _writable(contact, "custom_fields", {})
                    for name, custom in value.items():
                        if custom is None:
                            fields.pop(name, None)
                        else:
                            fields[name] = custom
                else:
                    setattr(contact, field, value)

    class Tagged(Event):
        tag: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"tag": SUBJECT}

        def apply(self, contact: Contact) -> None:
            tags = _writable(contact, "tags", [])
            if self.tag not in tags:
                tags.append(self.tag)

    class Untagged(Event):
        tag: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"tag": SUBJECT}

        def apply(self, contact: Contact) -> None:
            tags = _writable(contact, "tags", [])
            if self.tag in tags:
                tags.remove(self.tag)

    class NoteAdded(Event):
        """A note about the contact. Notes are not kept in the aggregate (no rule needs them, and
        snapshots would grow with every note): the timeline projection lists them."""

        note_id: UUID
        text: str
        author_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"text": SUBJECT}

    class ConsentGranted(Event):
        channel: str
        purpose: str
        source: str
        wording: str
        actor_id: UUID | None
        ip_address: str | None
        expires_at: datetime | None
        personal: ClassVar[dict[str, str]] = {"ip_address": SUBJECT, "source": SUBJECT, "wording": SUBJECT}

        def apply(self, contact: Contact) -> None:
            _writable(contact, "consents", {})[_key(self.channel, self.purpose)] = {
                "granted": True, "at": self.timestamp, "source": self.source, "wording": self.wording,
                "actor_id": self.actor_id, "expires_at": self.expires_at,
            }

    class ConsentWithdrawn(Event):
        channel: str
        purpose: str
        source: str
        wording: str
        actor_id: UUID | None
        ip_address: str | None
        personal: ClassVar[dict[str, str]] = {"ip_address": SUBJECT, "source": SUBJECT, "wording": SUBJECT}

        def apply(self, contact: Contact) -> None:
            _writable(contact, "consents", {})[_key(self.channel, self.purpose)] = {
                "granted": False, "at": self.timestamp, "source": self.source, "wording": self.wording,
                "actor_id": self.actor_id, "expires_at": None,
            }

    class ProcessingRestricted(Event):
        reason: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"reason": SUBJECT}

        def apply(self, contact: Contact) -> None:
            contact.restricted = True
            contact.restriction_reason = self.reason

    class RestrictionLifted(Event):
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.restricted = False
            contact.restriction_reason = None

    class MarketingObjected(Event):
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.objected_to_marketing = True

    class ObjectionWithdrawn(Event):
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.objected_to_marketing = False

    class Merged(Event):
        """A duplicate was merged in; its profile stays sealed under the duplicate's own key."""

        duplicate_id: UUID
        duplicate_subject_ids: list[UUID]
        profile: dict[str, Any]
        consents: dict[str, dict[str, Any]]
        restricted: bool
        objected_to_marketing: bool
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"profile": "duplicate_id", "consents": "duplicate_id"}

        def apply(self, contact: Contact) -> None:
            contact.absorbed.extend(s for s in self.duplicate_subject_ids if s not in contact.absorbed)
            contact.restricted = contact.restricted or self.restricted
            contact.objected_to_marketing = contact.objected_to_marketing or self.objected_to_marketing
            if not is_erased(self.consents):
                consents = _writable(contact, "consents", {})
                for key, theirs in self.consents.items():
                    consents[key] = _stricter(consents.get(key), theirs)
            if is_erased(self.profile):
                return
            for field in ("phone", "email", "time_zone", "date_of_birth"):
                if getattr(contact, field) is None and self.profile.get(field):
                    setattr(contact, field, self.profile[field])
            fields = _writable(contact, "custom_fields", {})
            for name, value in self.profile.get("custom_fields", {}).items():
                fields.setdefault(name, value)
            tags = _writable(contact, "tags", [])
            tags.extend(t for t in self.profile.get("tags", []) if t not in tags)

    class MergedInto(Event):
        survivor_id: UUID
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.merged_into = self.survivor_id

    class LegalHoldPlaced(Event):
        """Their data must be kept (litigation, a regulator's request): erasure is refused until lifted."""

        reference: str
        actor_id: UUID | None
        personal: ClassVar[dict[str, str]] = {"reference": SUBJECT}

        def apply(self, contact: Contact) -> None:
            contact.legal_hold = True

    class LegalHoldLifted(Event):
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.legal_hold = False

    class Erased(Event):
        """The contact's data keys were shredded: every personal field of theirs now reads as erased."""

        request_id: UUID
        subject_ids: list[UUID]
        actor_id: UUID | None

        def apply(self, contact: Contact) -> None:
            contact.erased = True
            for attribute in Contact.personal_state:
                setattr(contact, attribute, ERASED)

    legal_hold = False  # a class default, so snapshots taken before legal holds existed still load

    def __init__(
        self,
        workspace_id: UUID,
        name: str,
        phone: str | None,
        email: str | None,
        time_zone: str | None,
        custom_fields: dict[str, str],
        date_of_birth: date | None = None,
    ) -> None:
        self.workspace_id = workspace_id
        self.date_of_birth = date_of_birth
        self.name = name
        self.phone = phone
        self.email = email
        self.time_zone = time_zone
        self.custom_fields = custom_fields if is_erased(custom_fields) else dict(custom_fields)
        self.tags: list[str] = []
        self.consents: dict[str, dict[str, Any]] = {}
        self.restricted = False
        self.restriction_reason: str | None = None
        self.objected_to_marketing = False
        self.merged_into: UUID | None = None
        self.absorbed: list[UUID] = []
        self.erased = False

    @classmethod
    def create(
        cls,
        *,
        contact_id: UUID,
        workspace_id: UUID,
        name: str,
        phone: str | None,
        email: str | None,
        time_zone: str | None,
        custom_fields: dict[str, str],
        actor_id: UUID | None,
        now: datetime,
        date_of_birth: date | None = None,
    ) -> Contact:
        return cls._create(
            cls.Created, id=contact_id, workspace_id=workspace_id, name=name, phone=phone, email=email,
            time_zone=time_zone, custom_fields=dict(custom_fields), actor_id=actor_id, timestamp=now,
            date_of_birth=date_of_birth,
        )

    # Commands -----------------------------------------------------------------------------

    def rectify(self, changes: dict[str, Any], actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        unknown = set(changes) - set(PROFILE_FIELDS)
        if unknown:
            raise FieldNotRectifiableError(f"cannot rectify: {', '.join(sorted(unknown))}")
        changed = {k: v for k, v in changes.items() if k != "custom_fields" and getattr(self, k) != v}
        custom = {
            name: value for name, value in (changes.get("custom_fields") or {}).items()
            if self.custom_fields.get(name) != value
        }
        if custom:
            changed["custom_fields"] = custom
        if changed:
            self._trigger(self.Rectified, changes=changed, actor_id=actor_id, timestamp=now)

    def tag(self, tag: str, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        if tag not in self.tags:
            self._trigger(self.Tagged, tag=tag, actor_id=actor_id, timestamp=now)

    def untag(self, tag: str, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        if tag in self.tags:
            self._trigger(self.Untagged, tag=tag, actor_id=actor_id, timestamp=now)

    def add_note(self, note_id: UUID, text: str, author_id: UUID | None, now: datetime) -> None:
        self._check_active()
        self._trigger(self.NoteAdded, note_id=note_id, text=text, author_id=author_id, timestamp=now)

    def grant_consent(
        self, channel: Channel, purpose: Purpose, *, source: str, wording: str, actor_id: UUID | None,
        ip_address: str | None, expires_at: datetime | None, now: datetime,
    ) -> None:
        self._check_active()
        if expires_at is not None and expires_at.tzinfo is None:
            raise ConsentExpiryInvalidError("expires_at must include a time zone offset")
        self._trigger(
            self.ConsentGranted, channel=channel.value, purpose=purpose.value, source=source, wording=wording,
            actor_id=actor_id, ip_address=ip_address, expires_at=expires_at, timestamp=now,
        )

    def withdraw_consent(
        self, channel: Channel, purpose: Purpose, *, source: str, wording: str, actor_id: UUID | None,
        ip_address: str | None, now: datetime,
    ) -> None:
        self._check_active(allow_merged=True)
        self._trigger(
            self.ConsentWithdrawn, channel=channel.value, purpose=purpose.value, source=source, wording=wording,
            actor_id=actor_id, ip_address=ip_address, timestamp=now,
        )

    def restrict_processing(self, reason: str, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        self._trigger(self.ProcessingRestricted, reason=reason, actor_id=actor_id, timestamp=now)

    def lift_restriction(self, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        if self.restricted:
            self._trigger(self.RestrictionLifted, actor_id=actor_id, timestamp=now)

    def object_to_marketing(self, actor_id: UUID | None, now: datetime) -> None:
        self._check_active(allow_merged=True)
        if not self.objected_to_marketing:
            self._trigger(self.MarketingObjected, actor_id=actor_id, timestamp=now)

    def withdraw_objection(self, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        if self.objected_to_marketing:
            self._trigger(self.ObjectionWithdrawn, actor_id=actor_id, timestamp=now)

    def absorb(self, duplicate: Contact, actor_id: UUID | None, now: datetime) -> None:
        """Merge ``duplicate`` into this contact (call ``duplicate.mark_merged_into`` too)."""
        self._check_active()
        duplicate._check_active()
        if duplicate.id == self.id or duplicate.workspace_id != self.workspace_id:
            raise ContactMergeInvalidError("a contact can only be merged with another contact of its workspace")
        profile = {
            "name": duplicate.name, "phone": duplicate.phone, "email": duplicate.email,
            "time_zone": duplicate.time_zone, "custom_fields": dict(duplicate.custom_fields),
            "tags": list(duplicate.tags), "date_of_birth": duplicate.date_of_birth,
        }
        self._trigger(
            self.Merged, duplicate_id=duplicate.id, duplicate_subject_ids=duplicate.subject_ids, profile=profile, consents=dict(duplicate.consents),
            restricted=duplicate.restricted, objected_to_marketing=duplicate.objected_to_marketing,
            actor_id=actor_id, timestamp=now,
        )

    def mark_merged_into(self, survivor_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        self._check_active()
        self._trigger(self.MergedInto, survivor_id=survivor_id, actor_id=actor_id, timestamp=now)

    def place_legal_hold(self, reference: str, actor_id: UUID | None, now: datetime) -> None:
        self._check_active(allow_merged=True)
        if not self.legal_hold:
            self._trigger(self.LegalHoldPlaced, reference=reference, actor_id=actor_id, timestamp=now)

    def lift_legal_hold(self, actor_id: UUID | None, now: datetime) -> None:
        if self.legal_hold:
            self._trigger(self.LegalHoldLifted, actor_id=actor_id, timestamp=now)

    def erase(self, request_id: UUID, actor_id: UUID | None, now: datetime) -> None:
        if self.erased:
            raise ContactErasedError("contact already erased")
        self._trigger(
            self.Erased, request_id=request_id, subject_ids=self.subject_ids, actor_id=actor_id, timestamp=now,
        )

    # Queries ------------------------------------------------------------------------------

    @property
    def subject_ids(self) -> list[UUID]:
        """Every data subject whose key protects data of this contact (itself and merged duplicates)."""
        return [self.id, *self.absorbed]

    def consent_subject(self, guard: MinorsGuard = MinorsGuard(), home_time_zone: str | None = None) -> ConsentSubject:
        if self.erased or is_erased(self.consents):
            return ConsentSubject(consents={}, erased=True)
        addresses = frozenset(f for f in ("phone", "email") if getattr(self, f) and not is_erased(getattr(self, f)))
        consents = {
            tuple(key.split(":", 1)): ConsentRecord(
                granted=r["granted"], at=r["at"], source=r["source"], wording=r["wording"],
                actor_id=r["actor_id"], expires_at=r["expires_at"],
            )
            for key, r in self.consents.items()
        }
        return ConsentSubject(
            consents=consents, restricted=self.restricted, objected_to_marketing=self.objected_to_marketing,
            erased=self.erased, merged=self.merged_into is not None, addresses=addresses,
            date_of_birth=self.date_of_birth, time_zone=self.time_zone or home_time_zone, minors_guard=guard,
        )

    def _check_active(self, *, allow_merged: bool = False) -> None:
        if self.erased:
            raise ContactErasedError("contact was erased")
        if self.merged_into is not None and not allow_merged:
            raise ContactMergedError("contact was merged into another contact")

    def _trigger(self, event_class: type[Aggregate.Event], **kwargs: Any) -> None:
        self.trigger_event(event_class, workspace_id=self.workspace_id, **kwargs)


def _stricter(ours: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    """When merging consents, a withdrawal on either side wins; otherwise the latest grant."""
    if ours is None:
        return theirs
    if not ours["granted"] or not theirs["granted"]:
        return ours if not ours["granted"] else theirs
    return theirs if theirs["at"] > ours["at"] else ours
