"""Due reminder jobs, rebuilt from events: one row per appointment, policy and planned instant.

Every appointment or policy event re-plans the appointment's pending jobs (a reschedule drops the
old ones, a cancellation drops them all); a recorded ``ReminderSent``/``ReminderSkipped`` ends its
job for good, so a rebuild never sends again. Replies to a reminded conversation are classified
here (the text is not kept, only its meaning) and queued for the reminder worker.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, Sequence
from uuid import UUID

from psycopg.types.json import Jsonb

from domain.appointment import Appointment
from domain.contact import Contact
from domain.conversation import Conversation
from domain.quiet_hours import parse_quiet_hours
from domain.reminders import Policy, ReminderPolicies, job_key, plan
from domain.replies import classify
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_reminder_appointments (
    appointment_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    starts_at timestamptz NOT NULL,
    time_zone text NOT NULL,
    status text NOT NULL,
    finished_at timestamptz,
    reminded_conversation_id uuid
);
CREATE INDEX IF NOT EXISTS commhub_reminder_appointments_ws ON commhub_reminder_appointments (workspace_id, starts_at);
CREATE INDEX IF NOT EXISTS commhub_reminder_appointments_contact ON commhub_reminder_appointments (contact_id);
CREATE TABLE IF NOT EXISTS commhub_reminder_policies (
    workspace_id uuid PRIMARY KEY,
    policies jsonb NOT NULL DEFAULT '{}',
    quiet_start text,
    quiet_end text
);
CREATE TABLE IF NOT EXISTS commhub_reminder_jobs (
    job_key text PRIMARY KEY,
    workspace_id uuid NOT NULL,
    appointment_id uuid NOT NULL,
    policy_id uuid NOT NULL,
    planned_at timestamptz NOT NULL,
    send_after timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    outcome text,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS commhub_reminder_jobs_due ON commhub_reminder_jobs (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS commhub_reminder_jobs_appointment ON commhub_reminder_jobs (appointment_id);
CREATE TABLE IF NOT EXISTS commhub_reminder_replies (
    message_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    appointment_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    verdict text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    due_at timestamptz NOT NULL,
    outcome text
);
CREATE INDEX IF NOT EXISTS commhub_reminder_replies_due ON commhub_reminder_replies (due_at) WHERE status = 'pending';
"""
AWAITING = """
SELECT DISTINCT contact_id FROM commhub_reminder_appointments
WHERE contact_id = ANY(%s) AND reminded_conversation_id IS NOT NULL AND status IN ('booked', 'confirmed')
"""

APPOINTMENT_EVENTS = (Appointment.Booked, Appointment.Rescheduled, Appointment.Cancelled, Appointment.Confirmed,
                      Appointment.CheckedIn, Appointment.Completed, Appointment.MarkedNoShow)
STATUS = {Appointment.Booked: "booked", Appointment.Rescheduled: "booked", Appointment.Cancelled: "cancelled",
          Appointment.Confirmed: "confirmed", Appointment.CheckedIn: "checked_in",
          Appointment.Completed: "completed", Appointment.MarkedNoShow: "no_show"}


class Reminders(View):
    name = "reminders"
    ddl = DDL
    tables = ("commhub_reminder_jobs", "commhub_reminder_replies", "commhub_reminder_appointments",
              "commhub_reminder_policies")
    handlers = {
        **{kind: "appointment" for kind in APPOINTMENT_EVENTS},
        Appointment.ReminderSent: "finished",
        Appointment.ReminderSkipped: "finished",
        ReminderPolicies.PolicySaved: "policies",
        ReminderPolicies.PolicyDeleted: "policies",
        ReminderPolicies.QuietHoursSet: "policies",
        Conversation.MessageReceived: "reply",
        Contact.Erased: "erased",
    }

    _awaiting: set[UUID] | None = None  # in a batch: contacts who may be answering a reminder

    @contextmanager
    def batch(self, conn: Any, events: Sequence[Any]) -> Iterator[None]:
        """Reads once which of the batch's senders have a reminded, upcoming appointment: a message
        from anyone else is no answer to a reminder, and costs neither classifying nor a statement.
        A batch that also books, moves or reminds appointments checks every message as before."""
        if any(not isinstance(e, (Conversation.MessageReceived, Contact.Erased)) and type(e) in self.handlers
               for e in events):
            awaiting = None
        else:
            senders = list({e.contact_id for e in events if isinstance(e, Conversation.MessageReceived)})
            awaiting = {row[0] for row in conn.execute(AWAITING, (senders,))} if senders else set()
        self._awaiting, self.quiet = awaiting, awaiting is not None
        try:
            yield
        finally:
            self._awaiting = None

    def appointment(self, conn: Any, e: Any, position: int) -> None:
        status = STATUS[type(e)]
        if isinstance(e, Appointment.Booked):
            conn.execute(
                "INSERT INTO commhub_reminder_appointments (appointment_id, workspace_id, contact_id, starts_at,"
                " time_zone, status) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (e.originator_id, e.workspace_id, e.contact_id, e.starts_at, e.time_zone, status))
        elif isinstance(e, Appointment.Rescheduled):
            conn.execute("UPDATE commhub_reminder_appointments SET starts_at = %s, time_zone = %s, status = %s"
                         " WHERE appointment_id = %s", (e.starts_at, e.time_zone, status, e.originator_id))
        else:
            finished = e.timestamp if status in ("completed", "no_show") else None
            conn.execute("UPDATE commhub_reminder_appointments SET status = %s,"
                         " finished_at = COALESCE(%s, finished_at) WHERE appointment_id = %s",
                         (status, finished, e.originator_id))
        self._replan(conn, e.workspace_id, [e.originator_id], e.timestamp)

    def finished(self, conn: Any, e: Any, position: int) -> None:
        sent = isinstance(e, Appointment.ReminderSent)
        outcome = "sent" if sent else e.reason
        conn.execute(
            "INSERT INTO commhub_reminder_jobs (job_key, workspace_id, appointment_id, policy_id, planned_at,"
            " send_after, due_at, status, outcome, finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (job_key) DO UPDATE SET status = EXCLUDED.status, outcome = EXCLUDED.outcome,"
            " finished_at = EXCLUDED.finished_at",
            (e.job_key, e.workspace_id, e.originator_id, e.policy_id, e.planned_at, e.planned_at, e.planned_at,
             "sent" if sent else "skipped", outcome, e.timestamp))
        if sent:
            conn.execute("UPDATE commhub_reminder_appointments SET reminded_conversation_id = %s"
                         " WHERE appointment_id = %s", (e.conversation_id, e.originator_id))

    def policies(self, conn: Any, e: Any, position: int) -> None:
        conn.execute("INSERT INTO commhub_reminder_policies (workspace_id) VALUES (%s) ON CONFLICT DO NOTHING",
                     (e.workspace_id,))
        if isinstance(e, ReminderPolicies.PolicySaved):
            policy = {k: str(v) if isinstance(v, UUID) else v for k, v in e.policy.items()}
            conn.execute("UPDATE commhub_reminder_policies SET policies = policies || %s WHERE workspace_id = %s",
                         (Jsonb({policy["policy_id"]: policy}), e.workspace_id))
        elif isinstance(e, ReminderPolicies.PolicyDeleted):
            conn.execute("UPDATE commhub_reminder_policies SET policies = policies - %s WHERE workspace_id = %s",
                         (str(e.policy_id), e.workspace_id))
        else:
            conn.execute("UPDATE commhub_reminder_policies SET quiet_start = %s, quiet_end = %s WHERE workspace_id = %s",
                         (e.start, e.end, e.workspace_id))
        upcoming = conn.execute(
            "SELECT appointment_id FROM commhub_reminder_appointments WHERE workspace_id = %s"
            " AND (starts_at > %s OR status IN ('completed', 'no_show'))", (e.workspace_id, e.timestamp)).fetchall()
        self._replan(conn, e.workspace_id, [row[0] for row in upcoming], e.timestamp)

    def reply(self, conn: Any, e: Conversation.MessageReceived, position: int) -> None:
        """A message on a conversation that carried a reminder for an upcoming appointment.

        One statement that reads nothing back: the runner sends a batch's statements without
        waiting for each answer (pipeline mode), and a read here would wait once per message."""
        if self._awaiting is not None and e.contact_id not in self._awaiting:
            return
        body = clear(e.body)
        verdict = classify(body) if isinstance(body, str) else None
        if verdict is None:
            return
        self.quiet = False
        conn.execute(
            "INSERT INTO commhub_reminder_replies (message_id, workspace_id, contact_id, appointment_id,"
            " conversation_id, verdict, due_at)"
            " SELECT %s, %s, %s, appointment_id, %s, %s, %s FROM commhub_reminder_appointments"
            " WHERE contact_id = %s AND reminded_conversation_id = %s AND status IN ('booked', 'confirmed')"
            " AND starts_at > %s ORDER BY starts_at LIMIT 1 ON CONFLICT DO NOTHING",
            (e.message_id, e.workspace_id, e.contact_id, e.originator_id, verdict.value, e.timestamp,
             e.contact_id, e.originator_id, e.timestamp))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        subjects = list(e.subject_ids)
        conn.execute("DELETE FROM commhub_reminder_replies WHERE contact_id = ANY(%s)", (subjects,))
        conn.execute(
            "DELETE FROM commhub_reminder_jobs WHERE status = 'pending' AND appointment_id IN"
            " (SELECT appointment_id FROM commhub_reminder_appointments WHERE contact_id = ANY(%s))", (subjects,))

    def _replan(self, conn: Any, workspace_id: UUID, appointment_ids: list[UUID], since: datetime) -> None:
        """Drop the pending jobs of these appointments and plan them again from current facts."""
        if not appointment_ids:
            return
        settings = conn.execute("SELECT policies, quiet_start, quiet_end FROM commhub_reminder_policies"
                                " WHERE workspace_id = %s", (workspace_id,)).fetchone()
        conn.execute("DELETE FROM commhub_reminder_jobs WHERE status = 'pending' AND appointment_id = ANY(%s)",
                     (appointment_ids,))
        if settings is None or not settings[0]:
            return
        policies = [Policy.of({**p, "policy_id": UUID(p["policy_id"])}) for p in settings[0].values()]
        quiet = parse_quiet_hours(settings[1], settings[2])
        rows = conn.execute(
            "SELECT appointment_id, starts_at, time_zone, status, finished_at FROM commhub_reminder_appointments"
            " WHERE appointment_id = ANY(%s)", (appointment_ids,)).fetchall()
        jobs = []
        for appointment_id, starts_at, zone, status, finished_at in rows:
            for policy, planned, after in plan(policies, starts_at=starts_at, time_zone=zone, finished_at=finished_at,
                                               status=status, quiet=quiet, since=since):
                jobs.append((job_key(appointment_id, policy.policy_id, planned), workspace_id, appointment_id,
                             policy.policy_id, planned, after, after))
        if jobs:
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO commhub_reminder_jobs (job_key, workspace_id, appointment_id, policy_id, planned_at,"
                    " send_after, due_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (job_key) DO NOTHING", jobs)
