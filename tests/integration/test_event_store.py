"""The event store's append (adapters/event_store.py): ids commit in order, versions stay unique."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg import sql

from adapters.event_store import LockedAppendRecorder, SnapshotRecorder
from api.bootstrap import bootstrap

TOPIC = "tests.integration.test_event_store:Probe"


@pytest.fixture
def store(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as hub:
        yield hub


def events(count: int = 1) -> list[StoredEvent]:
    originator = uuid.uuid4()
    return [StoredEvent(originator_id=originator, originator_version=v + 1, topic=TOPIC, state=b"{}")
            for v in range(count)]


def table(recorder) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name))


def test_the_application_appends_through_the_locked_append(store):
    recorder = store.app.recorder
    assert isinstance(recorder, LockedAppendRecorder)
    ids = recorder.insert_events(events(3))
    assert len(ids) == 3 and ids == sorted(ids)
    stored = recorder.select_notifications(start=ids[0], limit=10)
    assert [n.id for n in stored] == ids
    assert [n.originator_version for n in stored] == [1, 2, 3]


def test_a_version_taken_already_is_refused_and_nothing_of_the_batch_is_stored(store):
    recorder = store.app.recorder
    first = events(2)
    recorder.insert_events(first)
    clash = [first[1], StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic=TOPIC, state=b"{}")]
    head = recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        recorder.insert_events(clash)
    assert recorder.max_notification_id() == head  # the other aggregate's event was not stored either


def test_an_append_waits_for_a_writer_that_holds_an_earlier_id_so_commit_order_is_id_order(store):
    """A transaction that took an id and has not committed holds back every later append: a reader
    tailing the log past the highest id it saw can never skip the earlier one."""
    recorder = store.app.recorder
    done: list[list[int]] = []
    with store.database.connect() as other:
        with other.transaction():
            earlier = other.execute(
                sql.SQL("INSERT INTO {} (originator_id, originator_version, topic, state) VALUES (%s, 1, %s, %s)"
                        " RETURNING notification_id").format(table(recorder)),
                (uuid.uuid4(), TOPIC, b"{}")).fetchone()[0]
            appender = threading.Thread(target=lambda: done.append(list(recorder.insert_events(events()))))
            appender.start()
            time.sleep(0.5)
            assert not done, "the append committed while an earlier id was still uncommitted"
        appender.join(timeout=10)
    assert done and done[0][0] > earlier


def test_concurrent_appends_reach_a_reader_tailing_by_id_exactly_once(store):
    recorder = store.app.recorder
    start = recorder.max_notification_id() or 0
    appended: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    seen: list[int] = []

    def append(count: int) -> None:
        for index in range(count):
            ids = recorder.insert_events(events(1 + index % 3))
            with lock:
                appended.extend(ids)

    def tail() -> None:
        position = start
        while True:
            finished = stop.is_set()
            page = recorder.select_notifications(start=position, limit=500, inclusive_of_start=False)
            seen.extend(n.id for n in page)
            if page:
                position = page[-1].id
            elif finished:
                return

    reader = threading.Thread(target=tail)
    reader.start()
    writers = [threading.Thread(target=append, args=(40,)) for _ in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stop.set()
    reader.join(timeout=30)
    assert len(appended) == 8 * (14 * 1 + 13 * 2 + 13 * 3)
    assert seen == sorted(appended)  # every id, once, in order: none committed behind the reader


def test_every_shape_of_event_read_returns_what_eventsourcing_would(store):
    """The recorder renders each shape of ``select_events`` once; each must filter and order as asked."""
    recorder = store.app.recorder
    stream = events(5)
    other = events(2)
    recorder.insert_events(stream + other)
    originator = stream[0].originator_id

    def versions(**kwargs) -> list[int]:
        return [e.originator_version for e in recorder.select_events(originator, **kwargs)]

    assert versions() == [1, 2, 3, 4, 5]
    assert versions(gt=2) == [3, 4, 5]
    assert versions(lte=3) == [1, 2, 3]
    assert versions(gt=1, lte=4) == [2, 3, 4]
    assert versions(desc=True, limit=1) == [5]
    assert versions(gt=1, lte=4, desc=True, limit=2) == [4, 3]
    assert versions(limit=2) == [1, 2]
    assert versions(gt=5) == []
    assert recorder.select_events(originator)[2].state == b"{}"
    assert recorder.select_events(originator)[2].topic == TOPIC


def test_every_shape_of_notification_read_returns_the_right_page(store):
    recorder = store.app.recorder
    ids = list(recorder.insert_events(events(4)))
    assert [n.id for n in recorder.select_notifications(start=ids[1], limit=10)] == ids[1:]
    assert [n.id for n in recorder.select_notifications(start=ids[1], limit=10, inclusive_of_start=False)] == ids[2:]
    assert [n.id for n in recorder.select_notifications(start=ids[0], limit=10, stop=ids[2])] == ids[:3]
    assert [n.id for n in recorder.select_notifications(start=ids[0], limit=2)] == ids[:2]
    assert [n.id for n in recorder.select_notifications(start=None, limit=10, stop=ids[0])][-1] == ids[0]
    assert [n.id for n in recorder.select_notifications(start=ids[0], limit=10, topics=[TOPIC])] == ids
    assert recorder.select_notifications(start=ids[0], limit=10, topics=["no.such:Topic"]) == []
    page = recorder.select_notifications(start=ids[0], limit=1)
    assert page[0].originator_version == 1 and page[0].state == b"{}" and page[0].topic == TOPIC


def test_snapshots_are_read_through_the_rendered_recorder_too(store):
    assert isinstance(store.app.snapshots.recorder, SnapshotRecorder)
