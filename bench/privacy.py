"""Benchmark: erasure time against history length, and replay-as-of rate, each beside a baseline.

Run it with ``uv run python bench/privacy.py`` (quick) or ``--full``. It uses ``DATABASE_URL`` when
set, otherwise an embedded PostgreSQL; every store gets a fresh schema, dropped at the end.

* **Erasure** — contacts with 10, 1,000 and 10,000 events (``--full``: 100,000), built with batched
  saves and projected. For each: ``CommHub.erase_contact`` (shred the keys, record ``Contact.Erased``)
  and then the projections' purge of that contact's rows (the runner catching up past the event).
  Baselines in the same run: one single-event append (a note, one commit), and what erasure would
  cost without crypto-shredding — a plain ``DELETE`` of the subject's events from the event store,
  on a twin contact of the same size. Crypto-shredding must stay flat; the DELETE grows.
* **Replay** — ``projections.replay.Replayer`` over a workspace of contacts with conversations, as of
  now (every event): read, unseal, run the directory, inbox and timeline views into temporary tables.
  Baselines: reading the notification log alone (no decoding, no views), and reading + decoding
  through the sealing mapper without views. Per-batch times give the percentiles.

Bounded in time: quick runs in about a minute on 2 cores, ``--full`` in a few minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.kek import encode_kek, generate_kek
from api.bootstrap import Hub, bootstrap
from api.settings import Settings
from bench._common import Findings, console, fresh_schema, percentile, ratio, server_url, server_version
from domain.contact import Contact
from domain.conversation import Conversation
from projections.replay import Replayer

QUICK_SIZES, FULL_SIZES = (10, 1_000, 10_000), (10, 1_000, 100_000)
CHUNK = 1_000  # events per transaction when building histories


def now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Erasure:
    history: int
    erase: list[float] = field(default_factory=list)  # erase_contact: shred + Erased event
    purge: list[float] = field(default_factory=list)  # projections past the Erased event
    delete: list[float] = field(default_factory=list)  # baseline: DELETE of a twin's events


@dataclass
class Rate:
    label: str
    events: int = 0
    seconds: float = 0.0
    batches: list[float] = field(default_factory=list)  # seconds per batch of --page events

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")


def hub_in(stack: ExitStack, url: str, tmp: Path, role: str) -> tuple[Hub, uuid.UUID]:
    database = fresh_schema(stack, url, role)
    settings = Settings(database_url=url, db_schema=database.schema, data_dir=tmp / role, kek=encode_kek(generate_kek()))
    hub = bootstrap(settings, database=database)
    stack.callback(hub.close)
    workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name="Bench Clinic", slug=f"bench-{role}",
                                            time_zone="Europe/London", now=now())
    return hub, workspace_id


def history(hub: Hub, workspace_id: uuid.UUID, events: int, index: int) -> uuid.UUID:
    """A contact with ``events`` events: created, then notes, saved CHUNK at a time."""
    contact = Contact.create(contact_id=uuid.uuid4(), workspace_id=workspace_id, name=f"Patient {index}",
                             phone=f"+44791{index:07d}", email=None, time_zone=None, custom_fields={}, actor_id=None,
                             now=now())
    for note in range(1, events):
        contact.add_note(uuid.uuid4(), f"Visit {note}: knee exercises reviewed", None, now())
        if len(contact.pending_events) == CHUNK:
            hub.app.save(contact)
    hub.app.save(contact)
    return contact.id


def measure_erasure(hub: Hub, workspace_id: uuid.UUID, sizes: tuple[int, ...], reps: int,
                    progress: Progress) -> tuple[list[Erasure], list[float]]:
    task = progress.add_task("erasure: building histories", total=sum(sizes) * reps * 2)
    contacts: dict[int, list[tuple[uuid.UUID, uuid.UUID]]] = {size: [] for size in sizes}
    for size in sizes:
        for rep in range(reps):
            pair = (history(hub, workspace_id, size, 2 * rep), history(hub, workspace_id, size, 2 * rep + 1))
            contacts[size].append(pair)
            progress.advance(task, 2 * size)
    progress.update(task, description="erasure: projecting histories")
    hub.projections.catch_up()
    progress.remove_task(task)
    appends: list[float] = []
    results = {size: Erasure(size) for size in sizes}
    task = progress.add_task("erasure: erasing", total=len(sizes) * reps)
    for rep in range(reps):
        for size in sizes:  # taking turns, so drift on the server hits every size alike
            erased, twin = contacts[size][rep]
            started = time.perf_counter()
            hub.app.add_note(workspace_id, twin, note_id=uuid.uuid4(), text="one more", author_id=None, now=now())
            appends.append(time.perf_counter() - started)
            hub.projections.catch_up()
            started = time.perf_counter()
            hub.app.erase_contact(workspace_id, erased, request_id=uuid.uuid4(), actor_id=None, now=now())
            results[size].erase.append(time.perf_counter() - started)
            started = time.perf_counter()
            hub.projections.catch_up()
            results[size].purge.append(time.perf_counter() - started)
            started = time.perf_counter()
            with hub.database.connect() as conn:
                conn.execute("DELETE FROM commhub_events WHERE originator_id = %s", (twin,))
            results[size].delete.append(time.perf_counter() - started)
            progress.advance(task)
    progress.remove_task(task)
    return list(results.values()), appends


def populate(hub: Hub, workspace_id: uuid.UUID, contacts: int, progress: Progress) -> int:
    """Contacts with a conversation each: created, a note, a message in, a reply, closed. ~6 events each."""
    task = progress.add_task("replay: building a workspace", total=contacts)
    pending: list[Any] = []
    for index in range(contacts):
        at = now()
        contact = Contact.create(contact_id=uuid.uuid4(), workspace_id=workspace_id, name=f"Client {index}",
                                 phone=f"+44792{index:07d}", email=None, time_zone=None, custom_fields={},
                                 actor_id=None, now=at)
        contact.add_note(uuid.uuid4(), f"Client {index} asked about insurance", None, at)
        conversation = Conversation.start(workspace_id=workspace_id, contact_id=contact.id, channel="sms",
                                          thread="default", now=at)
        conversation.receive(uuid.uuid4(), f"Hello, can I book for Friday? ({index})", [], None, at)
        conversation.send(uuid.uuid4(), "Yes, 9:30 is free.", None, "transactional", at)
        conversation.close(None, at)
        pending += [contact, conversation]
        if len(pending) >= 100:
            hub.app.save(*pending)
            pending = []
        progress.advance(task)
    if pending:
        hub.app.save(*pending)
    progress.remove_task(task)
    return hub.app.recorder.max_notification_id() or 0


def measure_replay(hub: Hub, workspace_id: uuid.UUID, page: int, progress: Progress) -> list[Rate]:
    head = hub.app.recorder.max_notification_id() or 0
    log_only, decoded, ours = Rate("notification log only"), Rate("log + unseal (no views)"), Rate("replay (ours)")
    for rate, decode in ((log_only, False), (decoded, True)):
        task = progress.add_task(f"replay: {rate.label}", total=head)
        position, started = 0, time.perf_counter()
        while True:
            batch_started = time.perf_counter()
            notifications = hub.app.recorder.select_notifications(start=position + 1, limit=page)
            if not notifications:
                break
            if decode:
                for notification in notifications:
                    hub.app.mapper.to_domain_event(notification)
            rate.batches.append(time.perf_counter() - batch_started)
            rate.events += len(notifications)
            position = notifications[-1].id
            progress.advance(task, len(notifications))
        rate.seconds = time.perf_counter() - started
        progress.remove_task(task)
    task = progress.add_task(f"replay: {ours.label}", total=head)
    last = [time.perf_counter()]

    def tick(events: int, _position: int) -> None:
        ours.batches.append(time.perf_counter() - last[0])
        last[0] = time.perf_counter()
        progress.advance(task, events)

    result = Replayer(hub.app, hub.database, batch_size=page).run(now(), workspace_id=workspace_id, progress=tick)
    ours.events, ours.seconds = result.stats.events_read, result.stats.seconds
    progress.remove_task(task)
    console.log(f"replay rebuilt {len(result.inbox):,} conversations, {len(result.contacts):,} contacts, "
                f"{len(result.timeline):,} timeline entries")
    return [log_only, decoded, ours]


def erasure_table(results: list[Erasure], appends: list[float]) -> Table:
    table = Table(title="Erasure by history length (median, p95 over reps)")
    for column in ("history", "erase_contact p50", "p95", "projections purge p50", "plain DELETE p50 (baseline)",
                   "erase / 1 append"):
        table.add_column(column, justify="right")
    append = statistics.median(appends)
    for r in results:
        table.add_row(f"{r.history:,} events", f"{statistics.median(r.erase) * 1000:.1f} ms",
                      f"{percentile(r.erase, 95) * 1000:.1f} ms", f"{statistics.median(r.purge) * 1000:.1f} ms",
                      f"{statistics.median(r.delete) * 1000:.1f} ms", ratio(statistics.median(r.erase), append))
    table.caption = f"one single-event append (a note, one commit): {append * 1000:.1f} ms median"
    return table


def replay_table(rates: list[Rate], page: int) -> Table:
    table = Table(title=f"Replay of every event (batches of {page:,})")
    for column in ("path", "events", "events/s", "batch p50", "batch p95", "batch p99", "baseline/ours"):
        table.add_column(column, justify="right")
    ours = rates[-1].per_second
    for rate in rates:
        table.add_row(rate.label, f"{rate.events:,}", f"{rate.per_second:,.0f}",
                      *(f"{percentile(rate.batches, p) * 1000:.1f} ms" for p in (50, 95, 99)),
                      ratio(rate.per_second, ours))
    return table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="histories up to 100,000 events; larger replay")
    parser.add_argument("--reps", type=int, default=None, help="erasures per history length (default 5, full 3)")
    parser.add_argument("--contacts", type=int, default=None,
                        help="contacts in the replayed workspace (default 3,000, full 20,000)")
    parser.add_argument("--page", type=int, default=1_000, help="events per replay batch")
    parser.add_argument("--only", choices=("erasure", "replay"), default=None, help="run one half only")
    args = parser.parse_args(argv)
    args.sizes = FULL_SIZES if args.full else QUICK_SIZES
    args.reps = args.reps or (3 if args.full else 5)
    args.contacts = args.contacts or (20_000 if args.full else 3_000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    with progress, ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="commhub-bench-")))
        url, where = server_url(stack, tmp)
        console.log(f"PostgreSQL {server_version(url)}, {where}; sizes {args.sizes}, {args.reps} reps")
        erasures: list[Erasure] = []
        appends: list[float] = []
        rates: list[Rate] = []
        if args.only in (None, "erasure"):
            hub, workspace_id = hub_in(stack, url, tmp, "erasure")
            erasures, appends = measure_erasure(hub, workspace_id, args.sizes, args.reps, progress)
        if args.only in (None, "replay"):
            hub, workspace_id = hub_in(stack, url, tmp, "replay")
            events = populate(hub, workspace_id, args.contacts, progress)
            console.log(f"replay workspace: {args.contacts:,} contacts, {events:,} events")
            rates = measure_replay(hub, workspace_id, args.page, progress)
        console.log("cleaning up")
    if erasures:
        console.print(erasure_table(erasures, appends))
        flat = statistics.median(erasures[-1].erase) / statistics.median(erasures[0].erase)
        console.print(f"erase_contact, longest/shortest history: x{flat:.2f} "
                      f"({'flat' if flat < 2 else 'NOT flat'}; the plain DELETE: "
                      f"x{statistics.median(erasures[-1].delete) / statistics.median(erasures[0].delete):.1f})")
    if rates:
        console.print(replay_table(rates, args.page))
    console.print(f"total {time.perf_counter() - started:.0f} s")
    record(erasures, appends, rates)
    return 0


def record(erasures: list[Erasure], appends: list[float], rates: list[Rate]) -> None:
    """The figures for bench/run_all.py's report."""
    findings = Findings("privacy")
    if erasures:
        append = statistics.median(appends) * 1000
        for r in erasures:
            findings.figure(f"erase_contact, {r.history:,}-event subject (p50)", statistics.median(r.erase) * 1000,
                            append, "ms", better="lower", baseline_name="one single-event append")
        findings.curve("erasure time against history", [r.history for r in erasures],
                       [statistics.median(r.erase) * 1000 for r in erasures], x="events of the erased subject",
                       y="erase_contact p50 (ms)")
        findings.curve("plain DELETE of the same history (baseline)", [r.history for r in erasures],
                       [statistics.median(r.delete) * 1000 for r in erasures], x="events deleted",
                       y="DELETE p50 (ms)")
    if rates:
        findings.figure("replay as of a time", rates[-1].per_second, rates[0].per_second, "events/s",
                        baseline_name="reading the notification log only")
    findings.write()


if __name__ == "__main__":
    sys.exit(main())
