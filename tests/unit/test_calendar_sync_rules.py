"""What a staff calendar should hold for an appointment (pure rules), and the iCalendar object pushed:
minimal by default, the name only when asked, nothing for someone else's, cancelled or erased
appointment, and a merge on conflict that keeps what the calendar added."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from icalendar import Calendar

from adapters import ics
from adapters.caldav_store import CaldavSettingInvalidError, check_collection_url
from api.caldav_settings import CaldavSettings, CaldavSettingsError
from domain.calendar_sync import (
    AppointmentState,
    desired_event,
    pushed_key,
    resource_name,
    worth_creating,
)

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)
STAFF, OTHER = uuid.uuid4(), uuid.uuid4()
STATE = AppointmentState(appointment_id=uuid.uuid4(), staff_id=STAFF, status="booked",
                         starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=1, minutes=45),
                         location="Room 2", revision=0)


def event_of(data: bytes):
    [vevent] = [c for c in Calendar.from_ical(data.decode()).subcomponents if c.name == "VEVENT"]
    return vevent


def test_the_event_says_appointment_with_time_place_and_id_and_nothing_about_the_person():
    event = desired_event(STATE, STAFF, contact_erased=False, contact_name=None)
    assert event is not None
    assert (event.summary, event.location, event.starts_at, event.ends_at) == (
        "Appointment", "Room 2", STATE.starts_at, STATE.ends_at)
    assert str(STATE.appointment_id) in event.description and event.uid.startswith(str(STATE.appointment_id))


def test_the_contact_name_is_in_the_title_only_when_the_workspace_includes_it():
    event = desired_event(STATE, STAFF, contact_erased=False, contact_name="Ada Lovelace")
    assert event is not None and event.summary == "Appointment: Ada Lovelace"


def test_a_cancelled_reassigned_or_erased_appointment_has_no_event_in_that_calendar():
    assert desired_event(replace(STATE, status="cancelled"), STAFF, contact_erased=False, contact_name=None) is None
    assert desired_event(replace(STATE, staff_id=OTHER), STAFF, contact_erased=False, contact_name=None) is None
    assert desired_event(STATE, STAFF, contact_erased=True, contact_name="Ada") is None
    assert desired_event(replace(STATE, staff_id=OTHER), OTHER, contact_erased=False, contact_name=None) is not None


def test_the_uid_is_stable_across_reschedules_and_differs_between_staff_calendars():
    moved = replace(STATE, starts_at=STATE.starts_at + timedelta(hours=3), revision=1)
    first = desired_event(STATE, STAFF, contact_erased=False, contact_name=None)
    second = desired_event(moved, STAFF, contact_erased=False, contact_name=None)
    assert first is not None and second is not None and first.uid == second.uid and second.sequence == 1
    assert resource_name(STATE.appointment_id, STAFF) != resource_name(STATE.appointment_id, OTHER)


def test_pushed_keys_change_with_the_appointment_and_with_the_name_only_when_it_is_included():
    assert pushed_key(3, None) == pushed_key(3, None) != pushed_key(4, None)
    assert pushed_key(3, 7) != pushed_key(3, None) and pushed_key(3, 7) != pushed_key(3, 8)


def test_an_appointment_that_already_ended_is_not_created_afterwards():
    event = desired_event(STATE, STAFF, contact_erased=False, contact_name=None)
    assert event is not None and worth_creating(event, NOW)
    assert not worth_creating(event, STATE.ends_at + timedelta(seconds=1))


def test_the_calendar_object_holds_one_vevent_in_utc_with_the_status():
    event = desired_event(replace(STATE, status="confirmed"), STAFF, contact_erased=False, contact_name=None)
    assert event is not None
    vevent = event_of(ics.calendar_object(event, NOW))
    assert vevent.decoded("dtstart") == STATE.starts_at and vevent.decoded("dtend") == STATE.ends_at
    assert str(vevent["summary"]) == "Appointment" and str(vevent["status"]) == "CONFIRMED"
    assert str(vevent["uid"]) == event.uid and str(vevent["location"]) == "Room 2"


def test_a_merge_replaces_our_properties_and_keeps_what_the_calendar_added():
    event = desired_event(STATE, STAFF, contact_erased=False, contact_name=None)
    assert event is not None
    theirs = Calendar.from_ical(ics.calendar_object(event, NOW).decode())
    [vevent] = [c for c in theirs.subcomponents if c.name == "VEVENT"]
    vevent["summary"] = "Renamed in the calendar app"
    vevent.add("categories", "Clinic")
    vevent["sequence"] = 5
    moved = desired_event(replace(STATE, starts_at=STATE.starts_at + timedelta(hours=2), revision=1), STAFF,
                          contact_erased=False, contact_name=None)
    assert moved is not None
    merged = event_of(ics.merged_object(theirs.to_ical(), moved, NOW))
    assert merged.decoded("dtstart") == moved.starts_at and str(merged["summary"]) == "Appointment"
    assert "Clinic" in merged["categories"].to_ical().decode() and int(merged["sequence"]) == 5


def test_a_copy_that_is_not_our_event_is_replaced_whole():
    event = desired_event(STATE, STAFF, contact_erased=False, contact_name=None)
    assert event is not None
    for remote in (b"not a calendar", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"):
        merged = event_of(ics.merged_object(remote, event, NOW))
        assert str(merged["uid"]) == event.uid


def test_collection_urls_must_be_https_except_to_this_machine_and_end_with_a_slash():
    assert check_collection_url("https://dav.example/cal/ada/work", allow_http=False) == "https://dav.example/cal/ada/work/"
    assert check_collection_url("http://127.0.0.1:5232/ada/work/", allow_http=False).endswith("/work/")
    assert check_collection_url("http://dav.lan/ada/", allow_http=True) == "http://dav.lan/ada/"
    for bad in ("http://dav.lan/ada/", "ftp://dav.example/", "https://user:pw@dav.example/", "https://dav.example/?q=1",
                "not a url", "https:///nohost"):
        with pytest.raises(CaldavSettingInvalidError):
            check_collection_url(bad, allow_http=False)


def test_caldav_settings_come_from_the_environment_and_refuse_nonsense():
    settings = CaldavSettings.from_env({"COMMHUB_CALDAV_TIMEOUT": "3", "COMMHUB_CALDAV_MAX_ATTEMPTS": "2",
                                        "COMMHUB_CALDAV_BASE_DELAY": "0.5", "COMMHUB_CALDAV_ALLOW_HTTP": "on",
                                        "COMMHUB_CALDAV_ALLOW_PRIVATE": "on"})
    assert settings == CaldavSettings(timeout=3.0, max_attempts=2, base_delay=0.5, allow_http=True, allow_private=True)
    assert CaldavSettings.from_env({}) == CaldavSettings()
    assert CaldavSettings().allow_private is False  # calendars on private addresses only when the operator says so
    for env in ({"COMMHUB_CALDAV_TIMEOUT": "-1"}, {"COMMHUB_CALDAV_BASE_DELAY": "soon"},
                {"COMMHUB_CALDAV_ALLOW_HTTP": "maybe"}, {"COMMHUB_CALDAV_TIMEOUT": "nan"},
                {"COMMHUB_CALDAV_ALLOW_PRIVATE": "yes please"}):
        with pytest.raises(CaldavSettingsError):
            CaldavSettings.from_env(env)


def test_no_answer_5xx_429_and_a_lasting_412_are_retried_other_refusals_are_final():
    from adapters.caldav import Outcome, _outcome

    assert all(Outcome(status).retryable for status in (None, 429, 500, 503, 412))
    assert not any(Outcome(status).retryable for status in (400, 401, 403, 404))
    assert Outcome(201).done and Outcome(204).done and not Outcome(None).done
    assert _outcome(httpx.Response(429, headers={"Retry-After": "7"}), 0).retry_after == 7.0
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    assert 100 < (_outcome(httpx.Response(503, headers={"Retry-After": later}), 0).retry_after or 0) <= 120
    assert _outcome(httpx.Response(503, headers={"Retry-After": "soon"}), 0).retry_after is None
