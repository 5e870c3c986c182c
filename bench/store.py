"""Benchmark: what sealing personal fields costs the event store, against plain eventsourcing.

Run it with ``uv run python bench/store.py [--events N] [--batch 100]``. It uses the
PostgreSQL server in ``DATABASE_URL`` when set, otherwise it starts an embedded one in a
temporary directory. Every store gets a fresh schema of its own, dropped at the end (also
on failure or Ctrl-C).

What it measures, in one run and against the same server:

* **plain** — a minimal ``eventsourcing.application.Application`` with the library's
  default ``JSONTranscoder`` and an aggregate shaped like our contact (name, phone, email,
  time zone, custom fields, then notes with free text);
* **ours** — ``domain.application.CommHub`` as ``api.bootstrap.bootstrap`` builds it:
  msgspec transcoder plus ``SealingMapper``, which seals every personal field with
  AES-256-GCM under the data subject's key from the key vault (a new contact's first
  event also creates and stores that key).

Both stores receive the same logical events: per contact one ``Created`` event followed by
``NoteAdded`` events (``--events-per-contact``, default 10, so no snapshot is taken while
appending). The two stores take turns (``--rounds``) so drift on the server hits both alike.

* append, 1/commit — ``--events`` events, one ``app.save`` (one transaction) per event:
  events/s and p50/p95 latency per commit;
* append, ``--batch``/commit — ``--batched-events`` events, ``app.save`` of several pending
  aggregates at once, ``--batch`` events per transaction;
* the same two again with "existing contacts": notes only, to contacts saved beforehand
  (unmeasured), so ours already holds their keys. The difference between the two pairs is
  what creating one data key per new subject costs (the key vault does it in a transaction
  of its own); the "existing" pair is the cost of sealing alone;
* replay — every stored event read back in pages with ``recorder.select_notifications``
  and mapped to a domain event by the application's mapper (ours unseals; key cache warm);
  "mapper only" is the mapper's share of that time; "cold key cache" is the same replay
  through a brand-new key vault, which fetches and unwraps each subject's key once;
* erasure — ``CommHub.erase_contact`` of contacts with a short and a long history (built
  with batched saves of ``NoteAdded`` events; CommHub snapshots every 100 events),
  ``--erase-reps`` long ones and three times as many short ones, median; also the key
  shredder's share, and ``get_contact`` of the same contact just before, since
  ``erase_contact`` loads the contact too.

How to read it: throughputs count only the time inside ``app.save`` (or the replay loop),
not the time spent building events. The ratio column is ours/plain: 1.00 is as fast as plain
eventsourcing, below 1.00 slower; for latencies above 1.00 is slower. The issue's goal is
that sealing costs at most 20% of plain append throughput, i.e. ours/plain >= 0.80; PASS or
FAIL is printed for each append mode, and the script exits 0 either way. Erasure is
constant time if the key shred takes the same for both histories (it deletes one key and
touches no event); the rest of ``erase_contact`` is loading the contact, which grows with
what its snapshot holds.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ApplicationRecorder, Mapper
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.codec import MsgspecTranscoder
from adapters.kek import encode_kek, generate_kek
from adapters.key_vault import KeyVault
from adapters.postgres import Database
from adapters.sealing import SealingMapper
from api.bootstrap import Hub, bootstrap
from api.settings import Settings
from bench._common import Findings, console, fresh_schema, server_url, server_version
from domain.contact import Contact

GOAL_RATIO = 0.80  # sealing may cost at most 20% of plain append throughput
NOTE_TEXT = (
    "Called about Tuesday's appointment; prefers SMS reminders before 9am. "
    "Mentioned a penicillin allergy and asked to reschedule the follow-up."
)



# The plain baseline --------------------------------------------------------------------------


class PlainContact(Aggregate):
    """The same event shapes as ``domain.contact.Contact``, without any notion of personal data."""

    class Created(Aggregate.Created):
        workspace_id: UUID
        name: str
        phone: str | None
        email: str | None
        time_zone: str | None
        custom_fields: dict[str, str]
        actor_id: UUID | None

    class NoteAdded(Aggregate.Event):
        workspace_id: UUID
        note_id: UUID
        text: str
        author_id: UUID | None

        def apply(self, contact: PlainContact) -> None:
            contact.notes.append(
                {"note_id": self.note_id, "text": self.text, "author_id": self.author_id, "at": self.timestamp}
            )

    def __init__(
        self, workspace_id: UUID, name: str, phone: str | None, email: str | None, time_zone: str | None,
        custom_fields: dict[str, str],
    ) -> None:
        self.workspace_id = workspace_id
        self.name = name
        self.phone = phone
        self.email = email
        self.time_zone = time_zone
        self.custom_fields = dict(custom_fields)
        self.notes: list[dict[str, Any]] = []


class PlainApp(Application):
    """Plain eventsourcing: default JSONTranscoder, no sealing; snapshots configured like CommHub."""

    name = "plainbench"
    snapshotting_intervals = {PlainContact: 100}


# The two stores behind one small interface -----------------------------------------------------


def profile(index: int) -> dict[str, Any]:
    """Personal data for the index-th benchmark contact."""
    return {
        "name": f"Bench Person {index}",
        "phone": f"+4479{index % 10**8:08d}",
        "email": f"bench.person{index}@example.org",
        "time_zone": "Europe/London",
        "custom_fields": {"source": "benchmark", "member_no": str(index)},
    }


class Store(Protocol):
    label: str
    app: Application

    def create(self, index: int) -> Aggregate: ...

    def note(self, aggregate: Aggregate, index: int) -> None: ...


@dataclass
class PlainStore:
    app: PlainApp
    workspace_id: UUID = field(default_factory=uuid.uuid4)
    label: str = "plain"

    def create(self, index: int) -> Aggregate:
        return PlainContact._create(
            PlainContact.Created, id=uuid.uuid4(), workspace_id=self.workspace_id, actor_id=None, **profile(index)
        )

    def note(self, aggregate: Aggregate, index: int) -> None:
        aggregate.trigger_event(
            PlainContact.NoteAdded, workspace_id=self.workspace_id, note_id=uuid.uuid4(),
            text=f"{NOTE_TEXT} #{index}", author_id=None,
        )


@dataclass
class SealedStore:
    hub: Hub
    workspace_id: UUID
    label: str = "ours"

    @property
    def app(self) -> Application:
        return self.hub.app

    def create(self, index: int) -> Aggregate:
        return Contact.create(
            contact_id=uuid.uuid4(), workspace_id=self.workspace_id, actor_id=None, now=now(), **profile(index)
        )

    def note(self, aggregate: Aggregate, index: int) -> None:
        aggregate.add_note(uuid.uuid4(), f"{NOTE_TEXT} #{index}", None, now())


def now() -> datetime:
    return datetime.now(timezone.utc)


# Appending ----------------------------------------------------------------------------------


@dataclass
class AppendResult:
    events: int = 0
    seconds: float = 0.0  # time spent inside app.save only
    latencies: list[float] = field(default_factory=list)  # seconds per commit

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def percentile(self, p: int) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def extend(self, other: AppendResult) -> None:
        self.events += other.events
        self.seconds += other.seconds
        self.latencies += other.latencies


def new_contact_events(store: Store, per_contact: int, first_index: int) -> Iterator[Aggregate]:
    """Endless events, per contact one Created then notes; yields the aggregate after each event."""
    index = first_index
    while True:
        aggregate = store.create(index)
        yield aggregate
        for note in range(1, per_contact):
            store.note(aggregate, note)
            yield aggregate
        index += 1


def existing_contact_events(store: Store, count: int, per_contact: int, first_index: int) -> Iterator[Aggregate]:
    """Notes only, to contacts created and saved beforehand (unmeasured): their keys already exist."""
    notes = max(per_contact - 1, 1)
    contacts = [store.create(first_index + i) for i in range(-(-count // notes))]
    for start in range(0, len(contacts), 100):
        store.app.save(*contacts[start:start + 100])
    for contact in contacts:
        for note in range(1, notes + 1):
            store.note(contact, note)
            yield contact


def append(
    store: Store, events: Iterator[Aggregate], count: int, batch: int, on_commit: Callable[[int], None]
) -> AppendResult:
    """Saves the next ``count`` of ``events``, committing every ``batch`` events (1: one commit each)."""
    pending: dict[UUID, Aggregate] = {}
    result = AppendResult(events=count)

    def commit() -> None:
        started = time.perf_counter()
        store.app.save(*pending.values())
        result.latencies.append(time.perf_counter() - started)
        on_commit(in_batch)

    in_batch = 0
    for aggregate in itertools.islice(events, count):
        pending[aggregate.id] = aggregate
        in_batch += 1
        if in_batch == batch:
            commit()
            pending.clear()
            in_batch = 0
    if pending:
        commit()
    result.seconds = sum(result.latencies)
    return result


@dataclass(frozen=True)
class AppendMode:
    name: str
    events: int
    batch: int  # events per commit
    existing: bool  # notes to contacts saved beforehand, instead of new contacts


def measure_append(
    stores: tuple[Store, ...], mode: AppendMode, per_contact: int, first_index: int, rounds: int, progress: Progress
) -> dict[str, AppendResult]:
    """Appends ``mode.events`` events to each store, the stores taking turns in ``rounds`` rounds.

    Taking turns spreads any drift of the server (checkpoints, autovacuum) over both stores alike.
    """
    results = {store.label: AppendResult() for store in stores}
    streams = {
        store.label: existing_contact_events(store, mode.events, per_contact, first_index)
        if mode.existing else new_contact_events(store, per_contact, first_index)
        for store in stores
    }
    tasks = {
        store.label: progress.add_task(f"{store.label}: append {mode.events:,} events, {mode.name}", total=mode.events)
        for store in stores
    }
    for number in range(rounds):
        share = mode.events // rounds + (1 if number < mode.events % rounds else 0)
        for store in stores:
            task = tasks[store.label]
            results[store.label].extend(
                append(store, streams[store.label], share, mode.batch, lambda n: progress.advance(task, n))
            )
    for task in tasks.values():
        progress.remove_task(task)
    return results


def warm_up(store: Store) -> None:
    """A few commits outside the measurements: pools connected, code paths and caches warm."""
    append(store, new_contact_events(store, 10, 10**7), 40, 1, lambda _: None)
    append(store, new_contact_events(store, 10, 2 * 10**7), 200, 100, lambda _: None)


# Replaying ----------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    events: int
    read_seconds: float
    map_seconds: float

    @property
    def rate(self) -> float:
        return self.events / (self.read_seconds + self.map_seconds)

    @property
    def map_rate(self) -> float:
        return self.events / self.map_seconds


def replay(label: str, recorder: ApplicationRecorder, mapper: Mapper, page: int, progress: Progress) -> ReplayResult:
    """Reads every notification in pages and maps each one back to a domain event."""
    total = recorder.max_notification_id() or 0
    task = progress.add_task(f"{label}: replay {total:,} events", total=total)
    events, read_seconds, map_seconds, start = 0, 0.0, 0.0, None
    while True:
        started = time.perf_counter()
        notifications = recorder.select_notifications(start, page, inclusive_of_start=start is None)
        read = time.perf_counter()
        for notification in notifications:
            mapper.to_domain_event(notification)
        mapped = time.perf_counter()
        if not notifications:
            break
        read_seconds += read - started
        map_seconds += mapped - read
        events += len(notifications)
        start = notifications[-1].id
        progress.advance(task, len(notifications))
    progress.remove_task(task)
    return ReplayResult(events, read_seconds, map_seconds)


def cold_replay(hub: Hub, page: int, progress: Progress) -> ReplayResult:
    """Replay through a new key vault and mapper, as a freshly started process would."""
    vault = KeyVault(hub.database, hub.vault.keyring).start()
    try:
        mapper = SealingMapper(MsgspecTranscoder(), vault)
        return replay("ours, cold key cache", hub.app.recorder, mapper, page, progress)
    finally:
        vault.close()


# Erasure ------------------------------------------------------------------------------------


class TimedShredder:
    """Wraps the key vault's shredder to time the shredding alone."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: list[float] = []

    def shred(self, subject_id: UUID, workspace_id: UUID, request_id: UUID, now: datetime) -> bool:
        started = time.perf_counter()
        try:
            return self.inner.shred(subject_id, workspace_id, request_id, now)
        finally:
            self.seconds.append(time.perf_counter() - started)

    def is_erased(self, subject_id: UUID) -> bool:
        return self.inner.is_erased(subject_id)

    def watch(self, forget: Callable[[UUID | None], None]) -> Callable[[], bool]:
        return self.inner.watch(forget)


@dataclass
class ErasureResult:
    history: int  # events of each erased contact
    erase_seconds: list[float] = field(default_factory=list)  # CommHub.erase_contact, all of it
    shred_seconds: list[float] = field(default_factory=list)  # the key shredder alone, within it
    load_seconds: list[float] = field(default_factory=list)  # get_contact just before, for comparison

    @staticmethod
    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000


def settle(database: Database) -> None:
    """Flush the WAL of what was just written, so the checkpoint does not land in the timings."""
    try:
        with database.connect(autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error:  # not allowed for this role: timings are just noisier
        console.log("CHECKPOINT not permitted; erasure timings may include a checkpoint")


def build_history(store: SealedStore, events: int, chunk: int, on_save: Callable[[int], None]) -> UUID:
    """A contact with ``events`` events (Created + notes), saved ``chunk`` events per transaction."""
    contact = store.create(0)
    pending = 1
    for note in range(1, events):
        store.note(contact, note)
        pending += 1
        if pending == chunk:
            store.app.save(contact)
            on_save(pending)
            pending = 0
    if pending:
        store.app.save(contact)
        on_save(pending)
    return contact.id


def measure_erasure(store: SealedStore, reps: dict[int, int], chunk: int, progress: Progress) -> list[ErasureResult]:
    """Builds ``reps[n]`` contacts with n events each, then erases them, taking turns between lengths."""
    hub = store.hub
    task = progress.add_task("erasure: building histories", total=sum(size * count for size, count in reps.items()))
    contacts = {
        size: [build_history(store, size, chunk, lambda n: progress.advance(task, n)) for _ in range(count)]
        for size, count in reps.items()
    }
    progress.remove_task(task)
    settle(hub.database)

    shredder = TimedShredder(hub.vault)
    hub.app.shredder = shredder
    results = {size: ErasureResult(size) for size in reps}
    before = hub.app.recorder.max_notification_id() or 0
    task = progress.add_task("erasure: erasing", total=sum(reps.values()))
    for rep in range(max(reps.values())):
        for size, result in results.items():
            if rep >= reps[size]:
                continue
            contact_id = contacts[size][rep]
            gc.collect()  # so a collection due to earlier work does not land in one sample
            started = time.perf_counter()
            hub.app.get_contact(store.workspace_id, contact_id)
            result.load_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            hub.app.erase_contact(store.workspace_id, contact_id, request_id=uuid.uuid4(), actor_id=None, now=now())
            result.erase_seconds.append(time.perf_counter() - started)
            result.shred_seconds.append(shredder.seconds[-1])
            progress.advance(task)
    progress.remove_task(task)
    written = (hub.app.recorder.max_notification_id() or 0) - before
    console.log(f"erasure: {sum(reps.values())} erasures wrote {written} events (one Contact.Erased each)")
    return list(results.values())


# Setting up and tearing down ----------------------------------------------------------------


def plain_store(stack: ExitStack, url: str) -> PlainStore:
    database = fresh_schema(stack, url, "plain")
    app = PlainApp(env=database.eventsourcing_env())
    stack.callback(app.close)
    return PlainStore(app)


def sealed_store(stack: ExitStack, url: str, tmp: Path, role: str) -> SealedStore:
    database = fresh_schema(stack, url, role)
    settings = Settings(
        database_url=url, db_schema=database.schema, data_dir=tmp / role, kek=encode_kek(generate_kek())
    )
    hub = bootstrap(settings, database=database)
    stack.callback(hub.close)
    workspace_id = hub.app.create_workspace(
        workspace_id=uuid.uuid4(), name="Bench Clinic", slug="bench-clinic", time_zone="Europe/London", now=now()
    )
    return SealedStore(hub, workspace_id)


# Reporting ----------------------------------------------------------------------------------


@dataclass
class Results:
    appended: dict[str, dict[str, AppendResult]] = field(default_factory=dict)  # mode -> store label -> result
    replayed: dict[str, ReplayResult] = field(default_factory=dict)
    erasure: list[ErasureResult] = field(default_factory=list)

    def append_ratio(self, mode: str) -> float:
        return self.appended[mode]["ours"].rate / self.appended[mode]["plain"].rate


def append_modes(args: argparse.Namespace) -> list[AppendMode]:
    return [
        AppendMode("1/commit", args.events, 1, existing=False),
        AppendMode(f"{args.batch}/commit", args.batched_events, args.batch, existing=False),
        AppendMode("1/commit, existing contacts", args.events, 1, existing=True),
        AppendMode(f"{args.batch}/commit, existing contacts", args.batched_events, args.batch, existing=True),
    ]


def throughput_table(results: Results, modes: list[AppendMode]) -> Table:
    table = Table(title="Event store: plain eventsourcing vs ours (same PostgreSQL server, same run)")
    table.add_column("measurement")
    table.add_column("plain (JSON)", justify="right")
    table.add_column("ours (msgspec + sealing)", justify="right")
    table.add_column("ours/plain", justify="right")

    def rate_row(name: str, plain: float, ours: float) -> None:
        table.add_row(name, f"{plain:,.0f} ev/s", f"{ours:,.0f} ev/s", f"{ours / plain:.2f}")

    def ms_row(name: str, plain: float, ours: float) -> None:
        table.add_row(name, f"{plain * 1000:.2f} ms", f"{ours * 1000:.2f} ms", f"{ours / plain:.2f}")

    for mode in modes:
        plain, ours = results.appended[mode.name]["plain"], results.appended[mode.name]["ours"]
        rate_row(f"append {mode.events:,} events, {mode.name}", plain.rate, ours.rate)
        ms_row("  latency per commit p50", plain.percentile(50), ours.percentile(50))
        ms_row("  latency per commit p95", plain.percentile(95), ours.percentile(95))
    replayed = results.replayed
    events = replayed["ours"].events
    rate_row(f"replay {events:,} events (read + map), warm keys", replayed["plain"].rate, replayed["ours"].rate)
    rate_row("  mapper only (CPU share of the above)", replayed["plain"].map_rate, replayed["ours"].map_rate)
    rate_row("replay (read + map), cold key cache", replayed["plain"].rate, replayed["ours cold"].rate)
    return table


def erasure_table(results: list[ErasureResult]) -> Table:
    table = Table(title="Erasure: CommHub.erase_contact (crypto-shredding: one key deleted, events untouched)")
    table.add_column("subject history", justify="right")
    table.add_column("reps", justify="right")
    table.add_column("erase_contact median", justify="right")
    table.add_column("min .. max", justify="right")
    table.add_column("key shred alone, median", justify="right")
    table.add_column("get_contact, median", justify="right")
    median = ErasureResult.median_ms
    for result in results:
        table.add_row(
            f"{result.history:,} events", str(len(result.erase_seconds)), f"{median(result.erase_seconds):.1f} ms",
            f"{min(result.erase_seconds) * 1000:.1f} .. {max(result.erase_seconds) * 1000:.1f} ms",
            f"{median(result.shred_seconds):.2f} ms", f"{median(result.load_seconds):.1f} ms",
        )
    return table


def report(results: Results, args: argparse.Namespace) -> None:
    modes = append_modes(args)
    console.print()
    console.print(throughput_table(results, modes))
    console.print(erasure_table(results.erasure))
    console.print()
    console.print("ratios ours/plain (1.00 = as fast as plain eventsourcing):")
    for mode in modes:
        console.print(f"  append {mode.name:<32} {results.append_ratio(mode.name):.2f}")
    plain_replay = results.replayed["plain"].rate
    console.print(f"  {'replay, warm keys':<39} {results.replayed['ours'].rate / plain_replay:.2f}")
    console.print(f"  {'replay, cold key cache':<39} {results.replayed['ours cold'].rate / plain_replay:.2f}")
    short, long = results.erasure[0], results.erasure[-1]
    median = ErasureResult.median_ms
    console.print(
        f"erasure, {long.history:,}-event vs {short.history:,}-event subject (1.00 = same time): "
        f"erase_contact x{median(long.erase_seconds) / median(short.erase_seconds):.2f}, "
        f"key shred alone x{median(long.shred_seconds) / median(short.shred_seconds):.2f}"
    )
    console.print(
        f"goal: sealing costs at most {1 - GOAL_RATIO:.0%} of plain append throughput (ours/plain >= {GOAL_RATIO:.2f}):"
    )
    verdicts = []
    for mode in modes:
        value = results.append_ratio(mode.name)
        verdicts.append(value >= GOAL_RATIO)
        verdict = "[green]PASS[/]" if value >= GOAL_RATIO else "[red]FAIL[/]"
        console.print(f"  append {mode.name:<32} cost {1 - value:>4.0%}  {verdict}")
    overall = "[green]PASS[/]" if all(verdicts) else "[red]FAIL[/]"
    console.print(f"  overall {overall}")
    record(results, modes)


def record(results: Results, modes: list[AppendMode]) -> None:
    """The figures for bench/run_all.py's report."""
    findings = Findings("store")
    for mode in modes:
        findings.figure(f"append, {mode.name}", results.appended[mode.name]["ours"].rate,
                        results.appended[mode.name]["plain"].rate, "events/s", baseline_name="plain eventsourcing")
    plain_replay = results.replayed["plain"].rate
    findings.figure("replay, warm key cache", results.replayed["ours"].rate, plain_replay, "events/s",
                    baseline_name="plain eventsourcing")
    findings.figure("replay, cold key cache", results.replayed["ours cold"].rate, plain_replay, "events/s",
                    baseline_name="plain eventsourcing")
    median = ErasureResult.median_ms
    short, long = results.erasure[0], results.erasure[-1]
    findings.figure(f"erasure of a {long.history:,}-event subject", median(long.erase_seconds),
                    median(short.erase_seconds), "ms", better="lower",
                    baseline_name=f"erasure of a {short.history:,}-event subject")
    findings.curve("erasure time against history", [r.history for r in results.erasure],
                   [median(r.erase_seconds) for r in results.erasure], x="events of the erased subject",
                   y="erase_contact median (ms)")
    findings.write()


# Main ---------------------------------------------------------------------------------------


OPTIONS: tuple[tuple[str, int | None, str], ...] = (
    ("--events", 2_000, "events appended with one commit each"),
    ("--batched-events", None, "events appended in batches (default: 10 x --events)"),
    ("--batch", 100, "events per transaction in the batched runs"),
    ("--events-per-contact", 10, "Created + notes per contact"),
    ("--rounds", 4, "turns the two stores take in each append run"),
    ("--page", 1_000, "notifications per page when replaying"),
    ("--erase-reps", 3, "erasures of long histories, 3x as many short ones"),
    ("--short-history", 10, "events of each short erased history"),
    ("--long-history", 10_000, "events of each long erased history"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for flag, default, text in OPTIONS:
        parser.add_argument(flag, type=int, default=default, help=text if default is None else f"{text} (default {default:,})")
    args = parser.parse_args(argv)
    if args.batched_events is None:
        args.batched_events = 10 * args.events
    for flag, _, _ in OPTIONS:
        if getattr(args, flag[2:].replace("-", "_")) < 1:
            parser.error(f"{flag} must be at least 1")
    return args


def run(args: argparse.Namespace, stack: ExitStack, progress: Progress) -> Results:
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="commhub-bench-")))
    url, where = server_url(stack, tmp)
    console.log(f"PostgreSQL {server_version(url)}, {where}; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    plain, ours = plain_store(stack, url), sealed_store(stack, url, tmp, "ours")
    stores: tuple[Store, ...] = (plain, ours)
    results = Results()
    for store in stores:
        warm_up(store)
    for number, mode in enumerate(append_modes(args), start=1):
        results.appended[mode.name] = measure_append(
            stores, mode, args.events_per_contact, number * 10**6, args.rounds, progress
        )
        for label, result in results.appended[mode.name].items():
            console.log(f"{label}: append {mode.events:,} events, {mode.name}: {result.rate:,.0f} ev/s")
    for store in stores:
        result = replay(store.label, store.app.recorder, store.app.mapper, args.page, progress)
        results.replayed[store.label] = result
        console.log(f"{store.label}: replay {result.events:,} events: {result.rate:,.0f} ev/s")
    result = results.replayed["ours cold"] = cold_replay(ours.hub, args.page, progress)
    console.log(f"ours: replay {result.events:,} events, cold key cache: {result.rate:,.0f} ev/s")

    erasing = sealed_store(stack, url, tmp, "erasure")
    reps = {args.short_history: 3 * args.erase_reps, args.long_history: args.erase_reps}  # short ones are cheap
    results.erasure = measure_erasure(erasing, reps, max(args.batch, 1_000), progress)
    console.log("erasure: " + ", ".join(
        f"{r.history:,} events {ErasureResult.median_ms(r.erase_seconds):.1f} ms" for r in results.erasure
    ))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )
    started = time.perf_counter()
    with progress, ExitStack() as stack:  # the stack closes the apps, drops the schemas, stops the server
        results = run(args, stack, progress)
        console.log("cleaning up")
    report(results, args)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
