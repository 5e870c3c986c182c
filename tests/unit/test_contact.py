"""The Contact aggregate: given its past events, when a command runs, then these events are recorded."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from functools import reduce
from typing import Any, Callable, Sequence
from uuid import UUID, uuid4

import pytest

from domain.consent import Refusal, may_send
from domain.contact import PROFILE_FIELDS, Contact
from domain.errors import (
    ContactErasedError,
    ContactMergedError,
    ContactMergeInvalidError,
    FieldNotRectifiableError,
)
from domain.identifiers import Channel, Purpose
from domain.personal import ERASED, SUBJECT, is_erased, personal_fields

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)
AGENT = UUID("00000000-0000-4000-8000-00000000a9e1")
WORKSPACE = UUID("00000000-0000-4000-8000-0000000000f1")
SMS, EMAIL = Channel.SMS, Channel.EMAIL
TRANSACTIONAL, MARKETING = Purpose.TRANSACTIONAL, Purpose.MARKETING

# Distinctive personal values, so a test can tell whether any of them leaked into clear fields.
NAME = "Zelda Quixote-Marlowe"
PHONE = "+447700900417"
EMAIL_ADDRESS = "zelda.quixote@example.org"
IP_ADDRESS = "203.0.113.77"
NOTE_TEXT = "Allergic to latex gloves"
TAG = "needle-phobic"
REASON = "Disputes accuracy of her record"


def given_contact(
    *, name: str = NAME, phone: str | None = PHONE, email: str | None = EMAIL_ADDRESS,
    time_zone: str | None = "Europe/London", custom_fields: dict[str, str] | None = None,
    workspace_id: UUID = WORKSPACE,
) -> Contact:
    """A freshly created contact whose creation event has already been collected."""
    contact = Contact.create(
        contact_id=uuid4(), workspace_id=workspace_id, name=name, phone=phone, email=email, time_zone=time_zone,
        custom_fields=custom_fields if custom_fields is not None else {"insurer": "Bupa"}, actor_id=AGENT, now=NOW,
    )
    contact.collect_events()
    return contact


def grant(contact: Contact, channel: Channel, purpose: Purpose, *, at: datetime = NOW,
          expires_at: datetime | None = None) -> None:
    contact.grant_consent(
        channel, purpose, source="web_form", wording="Yes, send me offers", actor_id=None,
        ip_address=IP_ADDRESS, expires_at=expires_at, now=at,
    )


def withdraw(contact: Contact, channel: Channel, purpose: Purpose, *, at: datetime = NOW) -> None:
    contact.withdraw_consent(
        channel, purpose, source="sms_keyword", wording="STOP", actor_id=None, ip_address=None, now=at,
    )


def names(events: Sequence[object]) -> list[str]:
    return [type(event).__name__ for event in events]


def replay(events: Sequence[Any]) -> Contact:
    return reduce(lambda aggregate, event: event.mutate(aggregate), events, None)  # type: ignore[return-value]


def shredded(events: Sequence[Any], subject_id: UUID) -> list[Any]:
    """Copies of ``events`` as the sealing mapper reads them once ``subject_id``'s key is shredded."""
    copies = []
    for event in events:
        event = copy.deepcopy(event)
        for field, subject_attribute in personal_fields(type(event)).items():
            if getattr(event, subject_attribute) == subject_id:
                object.__setattr__(event, field, ERASED)
        copies.append(event)
    return copies


# Creation --------------------------------------------------------------------------------------


def test_creating_a_contact_records_contact_created_in_its_workspace() -> None:
    contact = Contact.create(
        contact_id=uuid4(), workspace_id=WORKSPACE, name=NAME, phone=PHONE, email=None, time_zone=None,
        custom_fields={}, actor_id=AGENT, now=NOW,
    )

    [created] = contact.collect_events()

    assert type(created) is Contact.Created
    assert created.workspace_id == WORKSPACE
    assert (created.name, created.phone, created.email) == (NAME, PHONE, None)
    assert created.timestamp == NOW
    assert (contact.name, contact.phone, contact.workspace_id) == (NAME, PHONE, WORKSPACE)


def test_changing_the_custom_fields_passed_in_does_not_change_the_contact() -> None:
    fields = {"insurer": "Bupa"}
    contact = given_contact(custom_fields=fields)

    fields["insurer"] = "AXA"

    assert contact.custom_fields == {"insurer": "Bupa"}


# What every event looks like -------------------------------------------------------------------


IRREGULAR_PARTICIPLES = {"Withdrawn", "Sent", "Held", "Made", "Taken"}


def every_command(contact: Contact, duplicate: Contact) -> None:
    """Run each command once, so the test below sees every kind of event the contact records."""
    contact.rectify({"name": "Zelda Q. Marlowe"}, AGENT, NOW)
    contact.tag(TAG, AGENT, NOW)
    contact.untag(TAG, AGENT, NOW)
    contact.add_note(uuid4(), NOTE_TEXT, AGENT, NOW)
    grant(contact, SMS, MARKETING)
    withdraw(contact, SMS, MARKETING)
    contact.restrict_processing(REASON, AGENT, NOW)
    contact.lift_restriction(AGENT, NOW)
    contact.object_to_marketing(AGENT, NOW)
    contact.withdraw_objection(AGENT, NOW)
    contact.absorb(duplicate, AGENT, NOW)
    duplicate.mark_merged_into(contact.id, AGENT, NOW)
    contact.erase(uuid4(), AGENT, NOW)


def test_every_contact_event_is_named_in_the_past_tense_and_carries_its_workspace() -> None:
    contact, duplicate = given_contact(), given_contact(name="Zed Quixote")

    every_command(contact, duplicate)
    events = [*contact.collect_events(), *duplicate.collect_events()]

    assert names(events) == [
        "Rectified", "Tagged", "Untagged", "NoteAdded", "ConsentGranted", "ConsentWithdrawn",
        "ProcessingRestricted", "RestrictionLifted", "MarketingObjected", "ObjectionWithdrawn", "Merged", "Erased",
        "MergedInto",
    ]
    for event in events:
        words = re.findall(r"[A-Z][a-z]*", type(event).__name__)
        assert any(word.endswith("ed") or word in IRREGULAR_PARTICIPLES for word in words), type(event).__name__
        assert event.workspace_id == WORKSPACE, type(event).__name__


@pytest.mark.parametrize(
    ("event_class", "expected"),
    [
        (Contact.Created, {"name": SUBJECT, "phone": SUBJECT, "email": SUBJECT, "time_zone": SUBJECT,
                           "custom_fields": SUBJECT, "date_of_birth": SUBJECT}),
        (Contact.Rectified, {"changes": SUBJECT}),
        (Contact.Tagged, {"tag": SUBJECT}),
        (Contact.Untagged, {"tag": SUBJECT}),
        (Contact.NoteAdded, {"text": SUBJECT}),
        (Contact.ConsentGranted, {"ip_address": SUBJECT, "source": SUBJECT, "wording": SUBJECT}),
        (Contact.ConsentWithdrawn, {"ip_address": SUBJECT, "source": SUBJECT, "wording": SUBJECT}),
        (Contact.ProcessingRestricted, {"reason": SUBJECT}),
        (Contact.RestrictionLifted, {}),
        (Contact.MarketingObjected, {}),
        (Contact.ObjectionWithdrawn, {}),
        (Contact.Merged, {"profile": "duplicate_id", "consents": "duplicate_id"}),
        (Contact.MergedInto, {}),
        (Contact.Erased, {}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else "",
)
def test_each_event_declares_exactly_the_personal_fields_it_carries(
    event_class: type, expected: dict[str, str],
) -> None:
    assert dict(personal_fields(event_class)) == expected


def test_no_personal_value_appears_in_a_field_left_in_clear() -> None:
    contact, duplicate = given_contact(), given_contact(name="Zed Quixote", phone=None)
    duplicate.add_note(uuid4(), "Prefers morning slots", AGENT, NOW)
    duplicate.collect_events()

    every_command(contact, duplicate)
    events = [*contact.collect_events(), *duplicate.collect_events()]

    secrets = [NAME, "Zelda Q. Marlowe", "Zed Quixote", PHONE, EMAIL_ADDRESS, IP_ADDRESS, NOTE_TEXT,
               "Prefers morning slots", TAG, REASON, "Bupa"]
    for event in events:
        sealed = personal_fields(type(event))
        clear = {field: value for field, value in vars(event).items() if field not in sealed}
        leaked = [secret for secret in secrets if secret in repr(clear)]
        assert not leaked, f"{type(event).__name__} carries personal data in clear fields"


def test_every_declared_data_subject_attribute_holds_a_subject_id() -> None:
    contact, duplicate = given_contact(), given_contact(name="Zed Quixote")

    every_command(contact, duplicate)

    for event in [*contact.collect_events(), *duplicate.collect_events()]:
        for field, subject_attribute in personal_fields(type(event)).items():
            assert field in vars(event), f"{type(event).__name__} has no field {field}"
            assert isinstance(getattr(event, subject_attribute), UUID)


# Rectification ---------------------------------------------------------------------------------


def test_rectifying_a_name_records_only_the_new_name() -> None:
    contact = given_contact()

    contact.rectify({"name": "Zelda Marlowe", "phone": PHONE, "email": EMAIL_ADDRESS}, AGENT, LATER)
    [rectified] = contact.collect_events()

    assert type(rectified) is Contact.Rectified
    assert rectified.changes == {"name": "Zelda Marlowe"}
    assert NAME not in repr(vars(rectified))
    assert rectified.actor_id == AGENT
    assert contact.name == "Zelda Marlowe"
    assert contact.phone == PHONE


def test_rectifying_to_the_same_values_records_nothing() -> None:
    contact = given_contact()

    contact.rectify({"name": NAME, "email": EMAIL_ADDRESS}, AGENT, LATER)

    assert contact.collect_events() == []


def test_rectifying_can_clear_an_email_address() -> None:
    contact = given_contact()

    contact.rectify({"email": None}, AGENT, LATER)

    assert contact.collect_events()[0].changes == {"email": None}
    assert contact.email is None
    assert may_send(contact.consent_subject(), EMAIL, TRANSACTIONAL, LATER).reason is Refusal.NO_ADDRESS


def test_rectifying_custom_fields_updates_and_removes_them_one_by_one() -> None:
    contact = given_contact(custom_fields={"insurer": "Bupa", "policy": "P-123", "gp": "Dr Who"})

    contact.rectify({"custom_fields": {"insurer": "AXA", "gp": None}}, AGENT, LATER)

    assert contact.custom_fields == {"insurer": "AXA", "policy": "P-123"}


def test_rectifying_custom_fields_records_only_the_ones_that_change() -> None:
    contact = given_contact(custom_fields={"insurer": "Bupa", "policy": "P-123"})

    contact.rectify({"custom_fields": {"insurer": "Bupa", "policy": "P-456"}}, AGENT, LATER)
    [rectified] = contact.collect_events()

    assert rectified.changes == {"custom_fields": {"policy": "P-456"}}


def test_rectifying_custom_fields_to_their_current_values_records_nothing() -> None:
    contact = given_contact(custom_fields={"insurer": "Bupa"})

    contact.rectify({"custom_fields": {"insurer": "Bupa"}}, AGENT, LATER)

    assert contact.collect_events() == []


@pytest.mark.parametrize("field", ["tags", "notes", "consents", "workspace_id", "erased", "id"])
def test_rectifying_a_field_that_is_not_part_of_the_profile_is_refused(field: str) -> None:
    contact = given_contact()

    with pytest.raises(FieldNotRectifiableError, match=field):
        contact.rectify({"name": "Someone Else", field: "x"}, AGENT, LATER)

    assert contact.collect_events() == []
    assert contact.name == NAME


def test_refused_rectification_names_the_field_but_not_the_value() -> None:
    contact = given_contact()

    with pytest.raises(FieldNotRectifiableError) as refused:
        contact.rectify({"nickname": "Zee the Secret"}, AGENT, LATER)

    assert "nickname" in str(refused.value)
    assert "Zee the Secret" not in str(refused.value)


# Tags and notes --------------------------------------------------------------------------------


def test_tagging_twice_records_one_tag() -> None:
    contact = given_contact()

    contact.tag(TAG, AGENT, NOW)
    contact.tag(TAG, AGENT, LATER)

    assert names(contact.collect_events()) == ["Tagged"]
    assert contact.tags == [TAG]


def test_untagging_removes_the_tag_and_untagging_an_absent_tag_records_nothing() -> None:
    contact = given_contact()
    contact.tag(TAG, AGENT, NOW)
    contact.collect_events()

    contact.untag(TAG, AGENT, LATER)
    contact.untag("never-there", AGENT, LATER)

    assert names(contact.collect_events()) == ["Untagged"]
    assert contact.tags == []


def test_adding_a_note_records_its_text_author_and_time() -> None:
    contact = given_contact()
    note_id = uuid4()

    contact.add_note(note_id, NOTE_TEXT, AGENT, LATER)
    [added] = contact.collect_events()

    assert type(added) is Contact.NoteAdded
    assert (added.note_id, added.text, added.author_id, added.timestamp) == (note_id, NOTE_TEXT, AGENT, LATER)
    assert NOTE_TEXT not in repr(vars(contact)), "notes live in the timeline, not in the aggregate or its snapshots"


# Consent, restriction, objection ---------------------------------------------------------------


def test_granting_marketing_consent_records_its_evidence_and_allows_marketing() -> None:
    contact = given_contact()
    expiry = NOW + timedelta(days=365)

    grant(contact, SMS, MARKETING, expires_at=expiry)
    [granted] = contact.collect_events()

    assert type(granted) is Contact.ConsentGranted
    assert (granted.channel, granted.purpose) == ("sms", "marketing")
    assert (granted.source, granted.wording, granted.ip_address) == ("web_form", "Yes, send me offers", IP_ADDRESS)
    assert granted.expires_at == expiry
    assert may_send(contact.consent_subject(), SMS, MARKETING, LATER).allowed
    assert may_send(contact.consent_subject(), SMS, MARKETING, expiry).reason is Refusal.EXPIRED


def test_stop_keyword_withdraws_sms_consent() -> None:
    contact = given_contact()
    grant(contact, SMS, TRANSACTIONAL)
    contact.collect_events()

    withdraw(contact, SMS, TRANSACTIONAL, at=LATER)
    [withdrawn] = contact.collect_events()

    assert type(withdrawn) is Contact.ConsentWithdrawn
    assert (withdrawn.channel, withdrawn.purpose, withdrawn.wording) == ("sms", "transactional", "STOP")
    assert may_send(contact.consent_subject(), SMS, TRANSACTIONAL, LATER).reason is Refusal.WITHDRAWN
    assert may_send(contact.consent_subject(), EMAIL, TRANSACTIONAL, LATER).allowed


def test_restricting_processing_blocks_every_send_until_lifted() -> None:
    contact = given_contact()
    grant(contact, EMAIL, MARKETING)
    contact.collect_events()

    contact.restrict_processing(REASON, AGENT, LATER)

    assert names(contact.collect_events()) == ["ProcessingRestricted"]
    assert contact.restriction_reason == REASON
    assert may_send(contact.consent_subject(), EMAIL, TRANSACTIONAL, LATER).reason is Refusal.RESTRICTED

    contact.lift_restriction(AGENT, LATER)

    assert names(contact.collect_events()) == ["RestrictionLifted"]
    assert contact.restriction_reason is None
    assert may_send(contact.consent_subject(), EMAIL, MARKETING, LATER).allowed


def test_lifting_a_restriction_that_is_not_in_place_records_nothing() -> None:
    contact = given_contact()

    contact.lift_restriction(AGENT, LATER)

    assert contact.collect_events() == []


def test_objecting_to_marketing_blocks_marketing_until_withdrawn_but_not_reminders() -> None:
    contact = given_contact()
    grant(contact, SMS, MARKETING)
    contact.collect_events()

    contact.object_to_marketing(AGENT, LATER)
    contact.object_to_marketing(AGENT, LATER)

    assert names(contact.collect_events()) == ["MarketingObjected"]
    assert may_send(contact.consent_subject(), SMS, MARKETING, LATER).reason is Refusal.OBJECTED
    assert may_send(contact.consent_subject(), SMS, TRANSACTIONAL, LATER).allowed

    contact.withdraw_objection(AGENT, LATER)
    contact.withdraw_objection(AGENT, LATER)

    assert names(contact.collect_events()) == ["ObjectionWithdrawn"]
    assert may_send(contact.consent_subject(), SMS, MARKETING, LATER).allowed


# Merging ---------------------------------------------------------------------------------------


def merge(survivor: Contact, duplicate: Contact, at: datetime = LATER) -> None:
    survivor.absorb(duplicate, AGENT, at)
    duplicate.mark_merged_into(survivor.id, AGENT, at)


def test_merging_records_merged_on_the_survivor_and_merged_into_on_the_duplicate() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")

    merge(survivor, duplicate)
    [merged], [merged_into] = survivor.collect_events(), duplicate.collect_events()

    assert type(merged) is Contact.Merged
    assert merged.duplicate_id == duplicate.id
    assert merged.profile["name"] == "Zed Quixote"
    assert type(merged_into) is Contact.MergedInto
    assert merged_into.survivor_id == survivor.id
    assert survivor.subject_ids == [survivor.id, duplicate.id]
    assert duplicate.merged_into == survivor.id


def test_merging_keeps_the_survivors_profile_and_fills_its_gaps_from_the_duplicate() -> None:
    survivor = given_contact(email=None, custom_fields={"insurer": "Bupa"})
    duplicate = given_contact(
        name="Zed Quixote", phone="+447700900999", email="zed@example.org",
        custom_fields={"insurer": "AXA", "gp": "Dr Who"},
    )

    merge(survivor, duplicate)

    assert (survivor.name, survivor.phone, survivor.email) == (NAME, PHONE, "zed@example.org")
    assert survivor.custom_fields == {"insurer": "Bupa", "gp": "Dr Who"}


def test_merging_takes_the_union_of_tags() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    survivor.tag("vip", AGENT, NOW)
    duplicate.tag("vip", AGENT, NOW)
    duplicate.tag(TAG, AGENT, NOW)

    merge(survivor, duplicate)

    assert survivor.tags == ["vip", TAG]
    assert duplicate.id in survivor.subject_ids, "the duplicate's notes stay readable through its subject id"


def test_merging_lets_the_duplicates_withdrawal_win_over_the_survivors_later_grant() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    withdraw(duplicate, SMS, MARKETING, at=NOW)
    grant(survivor, SMS, MARKETING, at=NOW + timedelta(minutes=5))

    merge(survivor, duplicate)

    assert may_send(survivor.consent_subject(), SMS, MARKETING, LATER).reason is Refusal.WITHDRAWN


def test_merging_keeps_the_survivors_withdrawal_over_the_duplicates_later_grant() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    withdraw(survivor, EMAIL, MARKETING, at=NOW)
    grant(duplicate, EMAIL, MARKETING, at=NOW + timedelta(minutes=5))

    merge(survivor, duplicate)

    assert may_send(survivor.consent_subject(), EMAIL, MARKETING, LATER).reason is Refusal.WITHDRAWN


def test_merging_two_grants_keeps_the_latest_one() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    grant(survivor, SMS, MARKETING, at=NOW, expires_at=NOW + timedelta(minutes=30))
    grant(duplicate, SMS, MARKETING, at=NOW + timedelta(minutes=5), expires_at=NOW + timedelta(days=365))

    merge(survivor, duplicate)

    assert may_send(survivor.consent_subject(), SMS, MARKETING, NOW + timedelta(days=1)).allowed


def test_merging_carries_over_the_duplicates_grant_for_a_channel_the_survivor_never_answered() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    grant(duplicate, EMAIL, MARKETING)

    merge(survivor, duplicate)

    assert may_send(survivor.consent_subject(), EMAIL, MARKETING, LATER).allowed


def test_merging_carries_over_the_duplicates_restriction_and_objection() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    grant(survivor, SMS, MARKETING)
    duplicate.object_to_marketing(AGENT, NOW)

    merge(survivor, duplicate)

    assert may_send(survivor.consent_subject(), SMS, MARKETING, LATER).reason is Refusal.OBJECTED

    other = given_contact(name="Zed Quixote")
    other.restrict_processing(REASON, AGENT, NOW)
    merge(survivor, other)

    assert survivor.restricted
    assert may_send(survivor.consent_subject(), SMS, TRANSACTIONAL, LATER).reason is Refusal.RESTRICTED


def test_a_contact_cannot_absorb_itself() -> None:
    contact = given_contact()

    with pytest.raises(ContactMergeInvalidError):
        contact.absorb(contact, AGENT, LATER)

    assert contact.collect_events() == []


def test_a_contact_cannot_absorb_a_contact_of_another_workspace() -> None:
    survivor, stranger = given_contact(), given_contact(workspace_id=uuid4())

    with pytest.raises(ContactMergeInvalidError):
        survivor.absorb(stranger, AGENT, LATER)

    assert survivor.collect_events() == []


def test_a_duplicate_already_merged_elsewhere_cannot_be_absorbed_again() -> None:
    first, second, duplicate = given_contact(), given_contact(), given_contact(name="Zed Quixote")
    merge(first, duplicate)

    with pytest.raises(ContactMergedError):
        second.absorb(duplicate, AGENT, LATER)


def test_absorbing_a_contact_that_had_absorbed_others_makes_their_data_subjects_ours_too() -> None:
    oldest, middle, survivor = given_contact(name="Zed Quixote"), given_contact(name="Z. Quixote"), given_contact()
    merge(middle, oldest)

    merge(survivor, middle)

    # Erasing the survivor must shred every key that protects data now shown on it, oldest's included.
    assert set(survivor.subject_ids) == {survivor.id, middle.id, oldest.id}


MERGED_DUPLICATE_REFUSES: dict[str, Callable[[Contact, Contact], None]] = {
    "rectify": lambda c, other: c.rectify({"name": "New"}, AGENT, LATER),
    "tag": lambda c, other: c.tag("vip", AGENT, LATER),
    "untag": lambda c, other: c.untag("vip", AGENT, LATER),
    "add_note": lambda c, other: c.add_note(uuid4(), "note", AGENT, LATER),
    "grant_consent": lambda c, other: grant(c, SMS, MARKETING, at=LATER),
    "restrict_processing": lambda c, other: c.restrict_processing(REASON, AGENT, LATER),
    "lift_restriction": lambda c, other: c.lift_restriction(AGENT, LATER),
    "withdraw_objection": lambda c, other: c.withdraw_objection(AGENT, LATER),
    "absorb": lambda c, other: c.absorb(other, AGENT, LATER),
    "be_absorbed": lambda c, other: other.absorb(c, AGENT, LATER),
    "mark_merged_into": lambda c, other: c.mark_merged_into(other.id, AGENT, LATER),
}


@pytest.mark.parametrize("command", MERGED_DUPLICATE_REFUSES.values(), ids=MERGED_DUPLICATE_REFUSES.keys())
def test_merged_duplicate_refuses_further_commands(command: Callable[[Contact, Contact], None]) -> None:
    survivor, duplicate, other = given_contact(), given_contact(name="Zed Quixote"), given_contact()
    merge(survivor, duplicate)
    duplicate.collect_events()

    with pytest.raises(ContactMergedError):
        command(duplicate, other)

    assert duplicate.collect_events() == []


def test_merged_duplicate_still_accepts_a_consent_withdrawal() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    merge(survivor, duplicate)
    duplicate.collect_events()

    withdraw(duplicate, SMS, TRANSACTIONAL, at=LATER)

    assert names(duplicate.collect_events()) == ["ConsentWithdrawn"]


def test_merged_duplicate_still_accepts_an_objection_to_marketing() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    merge(survivor, duplicate)
    duplicate.collect_events()

    duplicate.object_to_marketing(AGENT, LATER)

    assert names(duplicate.collect_events()) == ["MarketingObjected"]


def test_merged_duplicate_is_never_sent_anything() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    grant(duplicate, SMS, MARKETING)

    merge(survivor, duplicate)

    assert may_send(duplicate.consent_subject(), SMS, TRANSACTIONAL, LATER).reason is Refusal.MERGED


# Erasure ---------------------------------------------------------------------------------------


def test_erasing_records_erased_naming_every_subject_and_no_personal_data() -> None:
    survivor, duplicate = given_contact(), given_contact(name="Zed Quixote")
    merge(survivor, duplicate)
    survivor.collect_events()
    request_id = uuid4()

    survivor.erase(request_id, AGENT, LATER)
    [erased] = survivor.collect_events()

    assert type(erased) is Contact.Erased
    assert erased.request_id == request_id
    assert erased.subject_ids == [survivor.id, duplicate.id]
    assert erased.workspace_id == WORKSPACE
    assert personal_fields(Contact.Erased) == {}
    assert NAME not in repr(vars(erased))


def test_erased_contact_reads_as_erased_everywhere_personal() -> None:
    contact = given_contact()
    contact.tag(TAG, AGENT, NOW)
    contact.add_note(uuid4(), NOTE_TEXT, AGENT, NOW)
    contact.restrict_processing(REASON, AGENT, NOW)

    contact.erase(uuid4(), AGENT, LATER)

    assert contact.erased
    for attribute in (*PROFILE_FIELDS, "tags", "restriction_reason"):
        assert is_erased(getattr(contact, attribute)), attribute
    assert NAME not in repr(vars(contact))
    assert may_send(contact.consent_subject(), SMS, TRANSACTIONAL, LATER).reason is Refusal.ERASED


ERASED_CONTACT_REFUSES: dict[str, Callable[[Contact, Contact], None]] = {
    **MERGED_DUPLICATE_REFUSES,
    "withdraw_consent": lambda c, other: withdraw(c, SMS, TRANSACTIONAL, at=LATER),
    "object_to_marketing": lambda c, other: c.object_to_marketing(AGENT, LATER),
    "erase": lambda c, other: c.erase(uuid4(), AGENT, LATER),
}


@pytest.mark.parametrize("command", ERASED_CONTACT_REFUSES.values(), ids=ERASED_CONTACT_REFUSES.keys())
def test_erased_contact_refuses_every_command(command: Callable[[Contact, Contact], None]) -> None:
    contact, other = given_contact(), given_contact()
    contact.erase(uuid4(), AGENT, NOW)
    contact.collect_events()

    with pytest.raises(ContactErasedError):
        command(contact, other)

    assert contact.collect_events() == []


# Replaying events whose personal fields were shredded -----------------------------------------


def history_with_every_personal_field() -> tuple[Contact, list[Any]]:
    contact = Contact.create(
        contact_id=uuid4(), workspace_id=WORKSPACE, name=NAME, phone=PHONE, email=EMAIL_ADDRESS,
        time_zone="Europe/London", custom_fields={"insurer": "Bupa"}, actor_id=AGENT, now=NOW,
    )
    duplicate = given_contact(name="Zed Quixote", custom_fields={"gp": "Dr Who"})
    duplicate.tag("from-duplicate", AGENT, NOW)
    contact.rectify({"email": "zq@example.org", "custom_fields": {"policy": "P-1"}}, AGENT, NOW)
    contact.tag(TAG, AGENT, NOW)
    contact.tag("vip", AGENT, NOW)
    contact.untag("vip", AGENT, NOW)
    contact.add_note(uuid4(), NOTE_TEXT, AGENT, NOW)
    grant(contact, SMS, MARKETING)
    withdraw(contact, EMAIL, TRANSACTIONAL)
    contact.restrict_processing(REASON, AGENT, NOW)
    merge(contact, duplicate)
    return contact, list(contact.collect_events())


def test_replaying_unaltered_events_rebuilds_the_same_contact() -> None:
    contact, events = history_with_every_personal_field()

    rebuilt = replay(events)

    assert vars(rebuilt) == vars(contact)


def test_replaying_a_shredded_history_yields_erased_personal_fields_without_crashing() -> None:
    contact, events = history_with_every_personal_field()

    rebuilt = replay(shredded(shredded(events, contact.id), contact.absorbed[0]))

    assert rebuilt.id == contact.id and rebuilt.version == contact.version
    for field in PROFILE_FIELDS:
        assert is_erased(getattr(rebuilt, field)), field
    assert all(is_erased(tag) for tag in rebuilt.tags)
    assert [is_erased(e.text) for e in shredded(shredded(events, contact.id), contact.absorbed[0])
            if type(e) is Contact.NoteAdded] == [True]
    assert is_erased(rebuilt.restriction_reason)
    assert NAME not in repr(vars(rebuilt)) and NOTE_TEXT not in repr(vars(rebuilt))


def test_a_shredded_history_still_knows_consent_and_restriction_facts() -> None:
    contact, events = history_with_every_personal_field()

    rebuilt = replay(shredded(shredded(events, contact.id), contact.absorbed[0]))

    assert rebuilt.restricted
    assert rebuilt.consents.keys() == contact.consents.keys()
    assert rebuilt.consent_subject().addresses == frozenset()
    assert may_send(rebuilt.consent_subject(), SMS, TRANSACTIONAL, LATER).reason is Refusal.RESTRICTED


def test_shredding_only_the_duplicates_key_leaves_the_survivors_own_profile_readable() -> None:
    contact, events = history_with_every_personal_field()

    rebuilt = replay(shredded(events, contact.absorbed[0]))

    assert (rebuilt.name, rebuilt.phone, rebuilt.email) == (NAME, PHONE, "zq@example.org")
    assert rebuilt.custom_fields == {"insurer": "Bupa", "policy": "P-1"}
    assert "from-duplicate" not in rebuilt.tags


def test_a_shredded_history_followed_by_erased_replays_to_an_erased_contact() -> None:
    contact, events = history_with_every_personal_field()
    contact.erase(uuid4(), AGENT, LATER)
    events += contact.collect_events()

    rebuilt = replay(shredded(shredded(events, contact.id), contact.absorbed[0]))

    assert rebuilt.erased
    for attribute in Contact.personal_state:
        assert is_erased(getattr(rebuilt, attribute)), attribute
    with pytest.raises(ContactErasedError):
        rebuilt.tag("vip", AGENT, LATER)
