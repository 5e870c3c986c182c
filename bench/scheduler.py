"""Reminder scheduler throughput: due reminders dispatched per second into the outbox (and on to the
sandbox channel), first with an empty job table, then with 1M future appointments bulk-loaded.
A warm-up phase (not measured) runs the same path first, so neither phase pays for cold caches.

    uv run python bench/scheduler.py                     # quick: 500 due per phase, 100k future rows
    uv run python bench/scheduler.py --full              # 2,000 due per phase, 1,000,000 future rows
    uv run python bench/scheduler.py --full --future 500000   # a smaller table, e.g. on a slow machine
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapters.outbox_worker import OutboxWorker
from adapters.reminder_worker import CLAIM_JOBS, ReminderWorker
from api.bootstrap import bootstrap, channel_senders
from api.settings import Settings
from bench._common import Findings, console, fresh_schema, ms, percentile, ratio, server_url, server_version
from domain.appointments_app import Booking
from domain.reminders import Policy

UTC = timezone.utc
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def book(hub, workspace_id: uuid.UUID, count: int, starts_at: datetime) -> None:
    for i in range(count):
        contact_id = uuid.uuid4()
        hub.app.create_contact(workspace_id=workspace_id, contact_id=contact_id, name=f"Bench Person {i}",
                               phone=f"+4477009{i % 100000:05d}", now=T0 - timedelta(days=30))
        hub.app.book_appointment(workspace_id, uuid.uuid4(), Booking(
            contact_id=contact_id, service="Check-up", starts_at=starts_at, ends_at=starts_at + timedelta(minutes=30),
            location="Room 1", time_zone="Europe/London"), actor_id=None, now=T0 - timedelta(days=30))
    hub.projections.catch_up()


def claim_latency(hub, at: datetime, samples: int = 200) -> list[float]:
    """The claim query with nothing due, rolled back: the scheduler's idle cost per poll."""
    timings = []
    with hub.database.connect() as conn:
        for _ in range(samples):
            started = time.perf_counter()
            conn.execute(CLAIM_JOBS, {"now": at, "lease": at + timedelta(minutes=1), "limit": 50}).fetchall()
            timings.append(time.perf_counter() - started)
            conn.rollback()
    return timings


def dispatch(hub, clock: Clock, at: datetime, expected: int) -> tuple[float, float]:
    """(reminders queued per second, outbox messages delivered to the sandbox per second)."""
    clock.now = at
    worker = ReminderWorker(hub.app, hub.database, clock=clock)
    started = time.perf_counter()
    done = 0
    while handled := worker.run_once(limit=50):
        done += handled
    queued = time.perf_counter() - started
    assert done == expected, f"claimed {done} of {expected}"
    hub.projections.catch_up()
    outbox = OutboxWorker(hub.app, hub.database, channel_senders(hub.settings), clock=clock)
    started = time.perf_counter()
    delivered = 0
    while handled := outbox.run_once(limit=50):
        delivered += handled
    sent = time.perf_counter() - started
    assert delivered == expected, f"delivered {delivered} of {expected}"
    return expected / queued, expected / sent


def bulk_load(hub, rows: int) -> float:
    """COPY ``rows`` future appointments and their pending reminder jobs (another workspace)."""
    workspace_id, policy_id = uuid.uuid4(), uuid.uuid4()
    rows_of = [(uuid.uuid4(), T0 + timedelta(days=30, minutes=i)) for i in range(rows)]
    started = time.perf_counter()
    with hub.database.connect() as conn:
        with conn.cursor() as cursor, cursor.copy(
                "COPY commhub_reminder_appointments (appointment_id, workspace_id, contact_id, starts_at, time_zone,"
                " status) FROM STDIN") as copy:
            for appointment_id, starts in rows_of:
                copy.write_row((appointment_id, workspace_id, uuid.uuid4(), starts, "Europe/London", "booked"))
        with conn.cursor() as cursor, cursor.copy(
                "COPY commhub_reminder_jobs (job_key, workspace_id, appointment_id, policy_id, planned_at,"
                " send_after, due_at) FROM STDIN") as copy:
            for appointment_id, starts in rows_of:
                due = starts - timedelta(hours=2)
                copy.write_row((f"{appointment_id}/{policy_id}/{due.isoformat()}", workspace_id, appointment_id,
                                policy_id, due, due, due))
        conn.commit()
        conn.execute("ANALYZE commhub_reminder_jobs")
        conn.execute("ANALYZE commhub_reminder_appointments")
        conn.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="1,000,000 future rows and 2,000 due per phase")
    parser.add_argument("--future", type=int, help="future appointments to bulk-load (overrides the size)")
    parser.add_argument("--due", type=int, help="due reminders per measured phase (overrides the size)")
    parser.add_argument("--warmup", type=int, default=200, help="due reminders in the unmeasured warm-up")
    args = parser.parse_args()
    due, future = (2_000, 1_000_000) if args.full else (500, 100_000)
    due, future = args.due or due, args.future if args.future is not None else future
    began = time.perf_counter()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url, where = server_url(stack, tmp)
        database = fresh_schema(stack, url, "scheduler")
        hub = stack.enter_context(bootstrap(Settings(database_url=url, db_schema=database.schema, data_dir=tmp,
                                                     kek=None), database=database))
        console.log(f"PostgreSQL {server_version(url)} via {where}; {due} due reminders per phase")
        workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name="Bench Clinic", slug=f"bench-{uuid.uuid4().hex[:8]}",
                                                time_zone="Europe/London", now=T0 - timedelta(days=31))
        hub.app.save_reminder_policy(workspace_id, Policy(uuid.uuid4(), "before", 120, "sms",
                                                          "Hi {first_name}, see you {start_local}."),
                                     T0 - timedelta(days=31))
        warm, first, second = T0 - timedelta(hours=22), T0 + timedelta(hours=2), T0 + timedelta(days=1, hours=2)
        book(hub, workspace_id, args.warmup, warm)
        book(hub, workspace_id, due, first)
        book(hub, workspace_id, due, second)
        clock = Clock()

        if args.warmup:
            dispatch(hub, clock, T0 - timedelta(days=1, minutes=-1), args.warmup)
            claim_latency(hub, T0 - timedelta(days=2), samples=50)
        idle_empty = claim_latency(hub, T0 - timedelta(hours=12))
        empty = dispatch(hub, clock, T0 + timedelta(minutes=1), due)
        loaded_in = bulk_load(hub, future)
        idle_full = claim_latency(hub, T0 - timedelta(hours=12))
        full = dispatch(hub, clock, T0 + timedelta(days=1, minutes=1), due)

    console.print(f"\n{due:,} due per phase after a {args.warmup:,}-reminder warm-up; bulk-loaded {future:,} future"
                  f" appointments + pending jobs with COPY in {loaded_in:.1f} s; whole run"
                  f" {time.perf_counter() - began:.0f} s\n")
    console.print("| | empty table (baseline) | with future rows | ratio |\n|---|---|---|---|")
    console.print(f"| reminders queued into the outbox per s | {empty[0]:,.0f} | {full[0]:,.0f} | {ratio(full[0], empty[0])} |")
    console.print(f"| outbox → sandbox deliveries per s | {empty[1]:,.0f} | {full[1]:,.0f} | {ratio(full[1], empty[1])} |")
    console.print(f"| idle claim query p50 | {ms(percentile(idle_empty, 50))} | {ms(percentile(idle_full, 50))} |"
                  f" {ratio(percentile(idle_full, 50), percentile(idle_empty, 50))} |")
    console.print(f"| idle claim query p95 | {ms(percentile(idle_empty, 95))} | {ms(percentile(idle_full, 95))} |"
                  f" {ratio(percentile(idle_full, 95), percentile(idle_empty, 95))} |")
    findings = Findings("scheduler")
    findings.figure(f"reminders queued per s with {future:,} future rows", full[0], empty[0], "reminders/s",
                    baseline_name="empty table")
    findings.figure(f"outbox deliveries per s with {future:,} future rows", full[1], empty[1], "messages/s",
                    baseline_name="empty table")
    findings.figure(f"idle claim query p95 with {future:,} future rows", percentile(idle_full, 95) * 1000,
                    percentile(idle_empty, 95) * 1000, "ms", better="lower", baseline_name="empty table")
    findings.latencies("claim query, empty table", idle_empty)
    findings.latencies(f"claim query, {future:,} future rows", idle_full)
    findings.write()


if __name__ == "__main__":
    main()
