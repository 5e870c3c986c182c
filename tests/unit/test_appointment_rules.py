"""Appointments and reminder rules without I/O: life cycle, planning across DST, quiet hours,
templates, the send decision and the meaning of replies."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta, timezone

import pytest

from domain.appointment import Appointment
from domain.consent import ALLOWED, Refusal, SendDecision
from domain.errors import (
    AppointmentTimeInvalidError,
    AppointmentTransitionInvalidError,
    ReminderPolicyInvalidError,
)
from domain.quiet_hours import QuietHours, is_quiet, next_allowed
from domain.reminders import Policy, check_template, decide, plan, planned_at, render
from domain.replies import Verdict, classify

UTC = timezone.utc
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
START = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # Monday 10:00 in London, the day after clocks go forward


def booked(starts_at: datetime = START) -> Appointment:
    return Appointment.book(
        appointment_id=uuid.uuid4(), workspace_id=uuid.uuid4(), contact_id=uuid.uuid4(), staff_id=None,
        service="Physio", location="Room 1", starts_at=starts_at, ends_at=starts_at + timedelta(minutes=30),
        time_zone="Europe/London", actor_id=None, now=NOW)


def policy(kind: str = "before", minutes: int = 120, grace: int = 60) -> Policy:
    return Policy(uuid.uuid4(), kind, minutes, "sms", "Hi {first_name}", grace_minutes=grace)


def test_an_appointment_is_confirmed_checked_in_and_completed_and_then_cannot_be_cancelled():
    appointment = booked()
    appointment.confirm("staff", None, None, NOW)
    appointment.check_in(None, NOW)
    appointment.complete(None, NOW)
    assert appointment.status == "completed"
    with pytest.raises(AppointmentTransitionInvalidError):
        appointment.cancel(None, None, NOW)


def test_a_reschedule_asks_for_confirmation_again_and_the_same_time_again_changes_nothing():
    appointment = booked()
    appointment.confirm("reply", None, None, NOW)
    later = START + timedelta(days=1)
    assert appointment.reschedule(later, later + timedelta(hours=1), "Europe/London", None, None, None, NOW)
    assert appointment.status == "booked"
    assert not appointment.reschedule(later, later + timedelta(hours=1), "Europe/London", None, None, None, NOW)


@pytest.mark.parametrize("starts, ends", [
    (START, START), (START, START - timedelta(minutes=1)), (START.replace(tzinfo=None), START + timedelta(hours=1)),
    (START, START + timedelta(days=8)),
])
def test_an_appointment_needs_an_aware_start_before_its_end(starts, ends):
    with pytest.raises(AppointmentTimeInvalidError):
        Appointment.book(appointment_id=uuid.uuid4(), workspace_id=uuid.uuid4(), contact_id=uuid.uuid4(),
                         staff_id=None, service="x", location=None, starts_at=starts, ends_at=ends,
                         time_zone="Europe/London", actor_id=None, now=NOW)


def test_whole_day_offsets_keep_the_local_hour_across_the_clock_change_and_hours_are_exact():
    two_days = planned_at(policy(minutes=2 * 1440), starts_at=START, time_zone="Europe/London", finished_at=None,
                          status="booked")
    two_hours = planned_at(policy(minutes=120), starts_at=START, time_zone="Europe/London", finished_at=None,
                           status="booked")
    assert two_days == datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # 10:00 GMT: 49 real hours before 10:00 BST
    assert START - two_hours == timedelta(hours=2)


def test_follow_ups_are_planned_after_completion_or_a_no_show_and_never_for_a_cancelled_appointment():
    follow_up, no_show = policy("after_completion", 24 * 60), policy("no_show", 30)
    done = datetime(2026, 3, 30, 10, 0, tzinfo=UTC)
    assert planned_at(follow_up, starts_at=START, time_zone="Europe/London", finished_at=done,
                      status="completed") == done + timedelta(days=1)
    assert planned_at(no_show, starts_at=START, time_zone="Europe/London", finished_at=done,
                      status="no_show") == done + timedelta(minutes=30)
    assert plan([policy(), follow_up, no_show], starts_at=START, time_zone="Europe/London", finished_at=None,
                status="cancelled", quiet=None, since=NOW) == []


def test_quiet_hours_span_midnight_and_end_at_their_local_end():
    quiet = QuietHours(time(21, 0), time(8, 0))
    assert is_quiet(datetime(2026, 7, 1, 20, 30, tzinfo=UTC), "Europe/London", quiet)  # 21:30 BST
    assert not is_quiet(datetime(2026, 7, 1, 7, 0, tzinfo=UTC), "Europe/London", quiet)  # 08:00 BST
    evening_in_new_york = datetime(2026, 7, 1, 23, 0, tzinfo=UTC)  # 19:00 EDT: allowed
    assert next_allowed(evening_in_new_york, "America/New_York", quiet) == evening_in_new_york
    assert next_allowed(datetime(2026, 7, 2, 3, 0, tzinfo=UTC), "America/New_York", quiet) == \
        datetime(2026, 7, 2, 12, 0, tzinfo=UTC)  # 23:00 EDT → 08:00 EDT


def test_templates_render_placeholders_as_plain_text_and_refuse_anything_else():
    values = {"first_name": "{service}", "service": "Physio"}
    assert render("Hi {first_name}, {{literally}} your {service}", values) == "Hi {service}, {literally} your Physio"
    for bad in ("{first_name.__class__}", "{0}", "{service!r}", "{start_local:%Y}", "unclosed {", ""):
        with pytest.raises(ReminderPolicyInvalidError):
            check_template(bad)


def decision(**changes):
    planned = START - timedelta(hours=2)
    values = dict(policy=policy(), planned=planned, current_plan=planned, status="booked", starts_at=START,
                  send_after=planned, now=planned + timedelta(minutes=1), consent=ALLOWED, quiet_until=planned,
                  already=None)
    values.update(changes)
    return decide(**values)


def test_the_send_decision_refuses_cancelled_moved_late_and_unconsented_reminders():
    planned = START - timedelta(hours=2)
    assert decision().action == "send"
    assert (decision(current_plan=None, status="cancelled").reason) == "cancelled"
    assert decision(current_plan=planned + timedelta(days=1)).reason == "rescheduled"
    assert decision(now=planned + timedelta(minutes=61)).reason == "too_late"
    assert decision(consent=SendDecision(False, Refusal.WITHDRAWN)).reason == "consent_withdrawn"
    assert decision(already="sent").action == "done"
    deferred = decision(quiet_until=planned + timedelta(minutes=30))
    assert (deferred.action, deferred.until) == ("defer", planned + timedelta(minutes=30))


@pytest.mark.parametrize("reply", ["C", "c", "CONFIRM", "Confirm.", " yes! ", "Y", "ok", "OK 👍", "👍", "👍🏽",
                                   "yes please", "Yes, thanks!", "✅"])
def test_affirmative_replies_confirm(reply):
    assert classify(reply) is Verdict.CONFIRM


@pytest.mark.parametrize("reply, verdict", [("R", Verdict.RESCHEDULE), ("reschedule please", Verdict.RESCHEDULE),
                                            ("can we do Friday?", Verdict.UNCLEAR), ("no", Verdict.UNCLEAR),
                                            ("yes but later", Verdict.UNCLEAR)])
def test_reschedule_requests_and_anything_unclear_are_not_confirmations(reply, verdict):
    assert classify(reply) is verdict


@pytest.mark.parametrize("keyword", ["STOP", "stop", "START", "HELP", "Unsubscribe", "cancel"])
def test_sms_keywords_are_left_to_the_sms_channel(keyword):
    assert classify(keyword) is None
