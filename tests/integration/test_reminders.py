"""Reminders against PostgreSQL: sent at the right instants across a DST change, once, never after a
cancellation or without consent, late once within the grace window, and answered by a reply."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapters.reminder_worker import ReminderWorker
from domain.appointments_app import Booking
from domain.conversation import conversation_id_for
from domain.reminders import Policy
from tests.integration.helpers import new_person, new_workspace

UTC = timezone.utc
# Europe/London moves to summer time on Sunday 29 March 2026 at 01:00 UTC.
MONDAY_TEN_BST = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
BOOKED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEMPLATE = "Hi {first_name}, your {service} is on {start_local} at {location}. Reply C to confirm. {workspace}"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def setup(hub, *policies: tuple[int, str]):
    """A workspace with 'before' policies (offset minutes, channel), a contact and a worker on a clock."""
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Olive")
    ids = []
    for offset, channel in policies:
        policy_id = uuid.uuid4()
        app.save_reminder_policy(workspace_id, Policy(policy_id, "before", offset, channel, TEMPLATE), BOOKED_AT)
        ids.append(policy_id)
    clock = Clock(BOOKED_AT)
    return workspace_id, person, ids, clock, ReminderWorker(app, hub.database, clock=clock)


def book(hub, workspace_id, person, starts_at=MONDAY_TEN_BST) -> uuid.UUID:
    appointment_id = uuid.uuid4()
    hub.app.book_appointment(workspace_id, appointment_id, Booking(
        contact_id=person.contact_id, service="Physio review", starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=30), location="Harbour St", time_zone="Europe/London",
    ), actor_id=None, now=BOOKED_AT)
    hub.projections.catch_up()
    return appointment_id


def sent(hub, person, channel="sms") -> list[str]:
    """Bodies queued in the contact's conversation on ``channel`` (the outbox delivers them)."""
    events = hub.app.events.get(conversation_id_for(person.contact_id, channel))
    return [e.body for e in events if type(e).__name__ == "MessageSent"]


def run_at(hub, worker, clock, at: datetime) -> int:
    clock.now = at
    handled = worker.run_once()
    hub.projections.catch_up()
    return handled


def outcomes(hub, appointment_id) -> list[tuple[str, str | None]]:
    events = hub.app.events.get(appointment_id)
    return [(type(e).__name__, getattr(e, "reason", None)) for e in events if "Reminder" in type(e).__name__]


def test_reminders_fire_at_the_planned_instants_across_a_daylight_saving_change(hub):
    workspace_id, person, _, clock, worker = setup(hub, (2 * 1440, "sms"), (120, "sms"))
    book(hub, workspace_id, person)

    two_days_before = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # 10:00 GMT on Saturday: same local hour
    two_hours_before = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 08:00 BST on Monday
    run_at(hub, worker, clock, two_days_before - timedelta(seconds=1))
    assert sent(hub, person) == []
    run_at(hub, worker, clock, two_days_before)
    first_name = person.name.split()[0]
    assert sent(hub, person) == [
        f"Hi {first_name}, your Physio review is on Mon 30 Mar 2026, 10:00 at Harbour St. Reply C to confirm. "
        "Harbour Physio"]
    run_at(hub, worker, clock, two_hours_before - timedelta(seconds=1))
    assert len(sent(hub, person)) == 1
    run_at(hub, worker, clock, two_hours_before)
    run_at(hub, worker, clock, two_hours_before + timedelta(minutes=5))
    assert len(sent(hub, person)) == 2


def test_a_cancelled_appointment_gets_no_reminder_even_from_a_job_claimed_before_the_cancellation(hub):
    workspace_id, person, (policy_id,), clock, worker = setup(hub, (120, "sms"))
    appointment_id = book(hub, workspace_id, person)
    hub.app.cancel_appointment(workspace_id, appointment_id, "patient called", None, BOOKED_AT)
    hub.projections.catch_up()

    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=90))
    stale = hub.app.send_reminder(workspace_id, appointment_id, policy_id, MONDAY_TEN_BST - timedelta(hours=2),
                                  send_after=MONDAY_TEN_BST - timedelta(hours=2), now=clock.now)

    assert sent(hub, person) == []
    assert stale.action == "skip" and stale.reason == "cancelled"


def test_a_reschedule_replans_and_the_old_instant_sends_nothing(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    appointment_id = book(hub, workspace_id, person)
    later = MONDAY_TEN_BST + timedelta(days=1)
    hub.app.reschedule_appointment(workspace_id, appointment_id, starts_at=later, ends_at=later + timedelta(hours=1),
                                   time_zone=None, staff_id=None, location=None, actor_id=None, now=BOOKED_AT)
    hub.projections.catch_up()

    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=110))
    assert sent(hub, person) == []
    run_at(hub, worker, clock, later - timedelta(minutes=110))
    assert len(sent(hub, person)) == 1 and "Tue 31 Mar 2026, 10:00" in sent(hub, person)[0]


def test_without_consent_the_reminder_is_skipped_and_the_reason_recorded(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    appointment_id = book(hub, workspace_id, person)
    hub.app.withdraw_consent(workspace_id, person.contact_id, channel="sms", purpose="transactional",
                             source="STOP keyword", wording="STOP", actor_id=None, now=BOOKED_AT)

    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=100))
    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=90))

    assert sent(hub, person) == []
    assert outcomes(hub, appointment_id) == [("ReminderSkipped", "consent_withdrawn")]


def test_a_reminder_due_while_workers_were_down_is_sent_late_once_within_grace_else_skipped(hub):
    workspace_id, person, _, clock, worker = setup(hub, (3 * 1440, "email"), (2 * 1440, "email"))
    appointment_id = book(hub, workspace_id, person)
    # three days before is due at 10:00 UTC on Friday 27 March; two days before at 10:00 UTC Saturday.
    run_at(hub, worker, clock, datetime(2026, 3, 28, 10, 40, tzinfo=UTC))  # back after ~25 hours down
    run_at(hub, worker, clock, datetime(2026, 3, 28, 10, 45, tzinfo=UTC))

    assert len(sent(hub, person, "email")) == 1
    assert sorted(outcomes(hub, appointment_id)) == [("ReminderSent", None), ("ReminderSkipped", "too_late")]


def test_quiet_hours_delay_a_reminder_to_the_morning_or_bring_it_to_the_evening_before(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    hub.app.set_quiet_hours(workspace_id, "21:00", "08:00", BOOKED_AT)
    half_past_nine = book(hub, workspace_id, person, starts_at=datetime(2026, 3, 31, 8, 30, tzinfo=UTC))
    eight = book(hub, workspace_id, person, starts_at=datetime(2026, 3, 31, 7, 0, tzinfo=UTC))

    def send_after(appointment_id):
        with hub.database.connect() as conn:
            return conn.execute("SELECT send_after FROM commhub_reminder_jobs WHERE appointment_id = %s",
                                (appointment_id,)).fetchone()[0]

    assert send_after(half_past_nine) == datetime(2026, 3, 31, 7, 0, tzinfo=UTC)  # 08:00 BST, when quiet hours end
    assert send_after(eight) == datetime(2026, 3, 30, 19, 59, tzinfo=UTC)  # 20:59 BST the evening before


def test_two_worker_processes_never_send_the_same_reminder(hub, settings):
    workspace_id, person, _, clock, _ = setup(hub, (60, "sms"))
    due = BOOKED_AT + timedelta(minutes=61)
    appointments = [book(hub, workspace_id, person, starts_at=due + timedelta(minutes=i % 3)) for i in range(24)]
    at = (BOOKED_AT + timedelta(minutes=4)).isoformat()  # every job due, no appointment begun
    command = [sys.executable, str(ROOT / "tests/integration/reminder_process.py"), settings.database_url,
               settings.db_schema, settings.kek, at, str(time.time() + 4)]
    workers = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    claimed = [int(w.communicate(timeout=60)[0].split()[-1]) for w in workers]
    hub.projections.catch_up()

    assert sum(claimed) >= 24, claimed  # a job whose send lost a race is claimed again at once
    sent_events = [e for a in appointments for e in hub.app.events.get(a) if type(e).__name__ == "ReminderSent"]
    assert len(sent_events) == 24 and len({e.message_id for e in sent_events}) == 24
    assert len(sent(hub, person)) == 24


def test_a_confirming_reply_confirms_and_a_reschedule_reply_flags_the_conversation(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    first = book(hub, workspace_id, person)
    second = book(hub, workspace_id, person, starts_at=MONDAY_TEN_BST + timedelta(days=7))
    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=100))
    conversation_id, _, _ = hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id,
                                                    channel="sms", body="STOP", now=clock.now)
    hub.projections.catch_up()
    run_at(hub, worker, clock, clock.now)
    assert hub.app.get_appointment(workspace_id, first).status == "booked"

    hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                            body=" yes 👍! ", now=clock.now)
    hub.projections.catch_up()
    run_at(hub, worker, clock, clock.now)
    assert hub.app.get_appointment(workspace_id, first).status == "confirmed"
    assert hub.app.get_appointment(workspace_id, second).status == "booked"

    hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                            body="R", now=clock.now)
    hub.projections.catch_up()
    run_at(hub, worker, clock, clock.now)
    assert "Reschedule request" in hub.app.get_conversation(workspace_id, conversation_id).labels


def test_rebuilding_the_reminder_jobs_never_sends_a_reminder_again(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    book(hub, workspace_id, person)
    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=100))
    hub.projections.rebuild("reminders")
    run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=99))
    assert len(sent(hub, person)) == 1


def test_a_reply_projected_in_the_same_batch_as_its_reminder_still_counts(hub):
    workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
    appointment_id = book(hub, workspace_id, person)
    clock.now = MONDAY_TEN_BST - timedelta(minutes=100)
    assert worker.run_once() == 1  # the reminder is sent; its event is not projected yet
    hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                            body="C", now=clock.now)
    hub.projections.catch_up()
    run_at(hub, worker, clock, clock.now)
    assert hub.app.get_appointment(workspace_id, appointment_id).status == "confirmed"


def test_running_workers_act_on_a_reply_at_once_and_on_other_messages_not_at_all(settings, database):
    """The reminder worker is woken when a reply is queued (its poll is an hour here), and a message
    from someone no reminder went to queues nothing."""
    from dataclasses import replace

    from api.bootstrap import bootstrap

    with bootstrap(replace(settings, reminder_poll_seconds=3600), database=database) as hub:
        workspace_id, person, _, clock, worker = setup(hub, (120, "sms"))
        appointment_id = book(hub, workspace_id, person)
        run_at(hub, worker, clock, MONDAY_TEN_BST - timedelta(minutes=100))
        stranger = new_person(hub.app, workspace_id, "Pip")
        hub.reminders.clock = clock
        hub.start_workers()
        time.sleep(0.5)  # the reminder worker has found nothing due and sleeps until woken
        hub.app.receive_message(workspace_id=workspace_id, contact_id=stranger.contact_id, channel="sms",
                                body="yes", now=clock.now)
        hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                                body="yes", now=clock.now)
        deadline = time.monotonic() + 10
        while hub.app.get_appointment(workspace_id, appointment_id).status != "confirmed":
            assert time.monotonic() < deadline, "the reply was not acted on"
            time.sleep(0.05)
        with hub.database.connection() as conn:
            replies = conn.execute("SELECT contact_id, verdict FROM commhub_reminder_replies WHERE workspace_id = %s",
                                   (workspace_id,)).fetchall()
        assert replies == [(person.contact_id, "confirm")]
