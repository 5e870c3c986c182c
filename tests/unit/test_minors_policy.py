"""The under-age guard: who counts as a minor, on whose calendar, and what it stops."""

from __future__ import annotations

from datetime import date, datetime, timezone
from uuid import UUID, uuid4

import pytest

from domain.consent import ConsentRecord, ConsentSubject, Refusal, may_send
from domain.contact import Contact
from domain.errors import DateOfBirthInvalidError, MinimumAgeInvalidError
from domain.identifiers import Channel, Purpose
from domain.minors import MinorsGuard, age_on, check_date_of_birth, check_minimum_age, is_minor
from domain.workspace import Workspace

ON = MinorsGuard(enabled=True)
BORN = date(2010, 6, 15)  # sixteen on 15 June 2026
SMS, MARKETING, TRANSACTIONAL = Channel.SMS, Purpose.MARKETING, Purpose.TRANSACTIONAL
WORKSPACE = UUID("00000000-0000-4000-8000-0000000000f1")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def subscriber(date_of_birth: date | None, time_zone: str | None = "Europe/London",
               guard: MinorsGuard = ON) -> ConsentSubject:
    """A contact who opted in to marketing texts."""
    record = ConsentRecord(granted=True, at=at("2026-01-01T00:00:00+00:00"), source="form", wording="Offers",
                           actor_id=None)
    return ConsentSubject(consents={("sms", "marketing"): record}, addresses=frozenset({"phone"}),
                          date_of_birth=date_of_birth, time_zone=time_zone, minors_guard=guard)


def test_a_contact_turns_sixteen_at_midnight_on_their_birthday_in_their_own_time_zone() -> None:
    assert is_minor(BORN, at("2026-06-14T23:59:59+01:00"), "Europe/London", ON)
    assert not is_minor(BORN, at("2026-06-15T00:00:00+01:00"), "Europe/London", ON)


def test_the_same_instant_is_a_birthday_in_auckland_and_the_day_before_in_los_angeles() -> None:
    instant = at("2026-06-14T12:30:00+00:00")  # 00:30 on the 15th in Auckland, 05:30 on the 14th in Los Angeles
    assert not is_minor(BORN, instant, "Pacific/Auckland", ON)
    assert is_minor(BORN, instant, "America/Los_Angeles", ON)


def test_without_a_time_zone_birthdays_are_counted_in_utc() -> None:
    assert is_minor(BORN, at("2026-06-14T23:30:00+00:00"), None, ON)
    assert not is_minor(BORN, at("2026-06-15T00:00:00+00:00"), None, ON)


def test_someone_born_on_29_february_comes_of_age_on_1_march_in_a_common_year() -> None:
    leapling, eighteen = date(2008, 2, 29), MinorsGuard(enabled=True, minimum_age=18)  # 18 in 2026, a common year
    assert is_minor(leapling, at("2026-02-28T23:59:00+00:00"), None, eighteen)
    assert not is_minor(leapling, at("2026-03-01T00:00:00+00:00"), None, eighteen)
    assert age_on(leapling, date(2024, 2, 28)) == 15 and age_on(leapling, date(2024, 2, 29)) == 16  # a leap year


def test_nobody_is_flagged_when_the_guard_is_off_or_the_date_of_birth_is_unknown() -> None:
    child = date(2020, 1, 1)
    assert not is_minor(child, at("2026-11-01T09:00:00+00:00"), None, MinorsGuard(enabled=False))
    assert not is_minor(None, at("2026-11-01T09:00:00+00:00"), None, ON)


def test_the_threshold_is_the_workspaces_choice() -> None:
    seventeen = date(2009, 1, 1)
    now = at("2026-11-01T09:00:00+00:00")
    assert not is_minor(seventeen, now, None, ON)
    assert is_minor(seventeen, now, None, MinorsGuard(enabled=True, minimum_age=18))


def test_marketing_to_a_minor_is_refused_with_its_own_reason_even_with_consent() -> None:
    decision = may_send(subscriber(BORN), SMS, MARKETING, at("2026-06-14T20:00:00+00:00"))
    assert not decision and decision.reason is Refusal.MINOR
    assert str(decision.reason) == "under_minimum_age_for_marketing"


def test_transactional_messages_still_reach_a_minor() -> None:
    assert may_send(subscriber(BORN), SMS, TRANSACTIONAL, at("2026-06-14T20:00:00+00:00")).allowed


def test_marketing_is_allowed_from_the_first_minute_of_the_sixteenth_birthday() -> None:
    assert may_send(subscriber(BORN), SMS, MARKETING, at("2026-06-14T23:00:00+00:00")).allowed  # midnight in London
    assert not may_send(subscriber(BORN), SMS, MARKETING, at("2026-06-14T22:59:59+00:00"))


def test_an_objection_is_reported_before_the_age_and_the_age_before_missing_consent() -> None:
    objected = ConsentSubject(consents={}, objected_to_marketing=True, addresses=frozenset({"phone"}),
                              date_of_birth=BORN, minors_guard=ON)
    assert may_send(objected, SMS, MARKETING, at("2026-01-01T00:00:00+00:00")).reason is Refusal.OBJECTED
    unconsented = ConsentSubject(consents={}, addresses=frozenset({"phone"}), date_of_birth=BORN, minors_guard=ON)
    assert may_send(unconsented, SMS, MARKETING, at("2026-01-01T00:00:00+00:00")).reason is Refusal.MINOR


@pytest.mark.parametrize("value", [date(2030, 1, 1), date(1890, 1, 1), datetime(2010, 1, 1, tzinfo=timezone.utc), "2010-01-01"])
def test_a_date_of_birth_in_the_future_too_long_ago_or_not_a_date_is_refused(value: object) -> None:
    with pytest.raises(DateOfBirthInvalidError):
        check_date_of_birth(value, at("2026-11-01T09:00:00+00:00"))  # type: ignore[arg-type]


def test_a_baby_born_today_east_of_utc_is_accepted() -> None:
    assert check_date_of_birth(date(2026, 11, 2), at("2026-11-01T20:00:00+00:00")) == date(2026, 11, 2)


@pytest.mark.parametrize("value", [0, 26, -1, True, 16.5])
def test_a_minimum_age_outside_1_to_25_years_is_refused(value: object) -> None:
    with pytest.raises(MinimumAgeInvalidError):
        check_minimum_age(value)  # type: ignore[arg-type]


def test_a_workspace_records_a_guard_change_once_and_reads_as_off_before_any() -> None:
    workspace = Workspace.create(workspace_id=WORKSPACE, name="Clinic", slug="clinic", time_zone="Europe/London",
                                 now=at("2026-01-01T00:00:00+00:00"))
    assert workspace.minors_guard == MinorsGuard(enabled=False, minimum_age=16)
    workspace.set_minors_guard(True, 16, None, at("2026-01-02T00:00:00+00:00"))
    workspace.set_minors_guard(True, 16, None, at("2026-01-03T00:00:00+00:00"))
    changes = [e for e in workspace.collect_events() if isinstance(e, Workspace.MinorsGuardChanged)]
    assert len(changes) == 1 and workspace.minors_guard == ON


def test_a_contact_without_a_time_zone_is_counted_on_the_workspaces_calendar() -> None:
    contact = Contact.create(contact_id=uuid4(), workspace_id=WORKSPACE, name="Teen", phone="+447700900001",
                             email=None, time_zone=None, custom_fields={}, actor_id=None,
                             now=at("2026-01-01T00:00:00+00:00"), date_of_birth=BORN)
    subject = contact.consent_subject(ON, "Pacific/Auckland")
    assert subject.time_zone == "Pacific/Auckland" and subject.date_of_birth == BORN
    assert may_send(subject, SMS, MARKETING, at("2026-06-14T12:30:00+00:00")).reason is Refusal.NO_CONSENT  # of age there


def test_a_date_of_birth_is_rectified_like_any_profile_field_and_erased_with_the_rest() -> None:
    contact = Contact.create(contact_id=uuid4(), workspace_id=WORKSPACE, name="Teen", phone=None, email=None,
                             time_zone=None, custom_fields={}, actor_id=None, now=at("2026-01-01T00:00:00+00:00"))
    assert contact.date_of_birth is None
    contact.rectify({"date_of_birth": BORN}, None, at("2026-01-02T00:00:00+00:00"))
    assert contact.date_of_birth == BORN
    assert "date_of_birth" in Contact.Created.personal and "date_of_birth" in Contact.personal_state
