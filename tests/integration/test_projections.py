"""Projections: exactly-once positions, rebuild equals live, recovery after a kill, and erasure purges."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api.bootstrap import bootstrap
from tests.integration.helpers import NOW, appearances, new_person, new_workspace, pg_dump
from tests.integration.seeding import seed_history

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "commhub_contacts": "contact_id", "commhub_inbox": "conversation_id", "commhub_messages": "message_id",
    "commhub_timeline": "contact_id, position", "commhub_consents": "contact_id, channel, purpose",
    "commhub_staff": "staff_id", "commhub_workspaces": "workspace_id", "commhub_canned_responses": "response_id",
    "commhub_outbox": "message_id", "commhub_contact_handles": "workspace_id, digest",
}


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def snapshot(database) -> dict[str, list[tuple]]:
    with database.connect() as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall() for table, key in TABLES.items()}


def test_rebuilding_every_projection_from_zero_equals_running_live(isolated_hub):
    seed_history(isolated_hub.app)
    isolated_hub.projections.catch_up()
    live = snapshot(isolated_hub.database)
    assert len(live["commhub_inbox"]) == 12 and len(live["commhub_messages"]) == 24

    for name in isolated_hub.projections.projections:
        isolated_hub.projections.rebuild(name)

    assert snapshot(isolated_hub.database) == live


def test_a_projection_process_killed_mid_run_catches_up_to_what_a_rebuild_gives(isolated_hub, settings):
    seed_history(isolated_hub.app)
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.projection_process", settings.database_url,
         isolated_hub.database.schema, settings.kek],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(random.randint(3, 20)):
            assert worker.stdout.readline().strip() == "batch"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.stdout.close()
    lag = isolated_hub.projections.lag()
    assert any(lag.values()), "the worker was killed before it finished"

    isolated_hub.projections.catch_up()
    resumed = snapshot(isolated_hub.database)
    for name in isolated_hub.projections.projections:
        isolated_hub.projections.rebuild(name)
    assert snapshot(isolated_hub.database) == resumed
    assert not any(isolated_hub.projections.lag().values())


def test_two_runners_on_one_database_apply_each_event_once(isolated_hub, settings):
    seed_history(isolated_hub.app)
    with bootstrap(settings, database=isolated_hub.database) as other:
        first, second = isolated_hub.projections, other.projections
        first.batch_size = second.batch_size = 5
        while first.run_once() + second.run_once():
            pass
        together = snapshot(isolated_hub.database)
    for name in first.projections:
        first.rebuild(name)
    assert snapshot(isolated_hub.database) == together


def test_erasure_blanks_every_projection_row_of_the_contact(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    erased, kept = new_person(app, workspace_id, "Petra"), new_person(app, workspace_id, "Quinn")
    for person in (erased, kept):
        conversation_id, _, _ = app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id,
                                                    channel="sms", body=person.note, now=NOW)
        app.reply(workspace_id, conversation_id, body=f"Reply to {person.name}", author_id=None, now=NOW)
        app.tag_contact(workspace_id, person.contact_id, f"tag-{person.name}", None, NOW)
    isolated_hub.projections.catch_up()

    app.erase_contact(workspace_id, erased.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    isolated_hub.projections.catch_up()

    dump = pg_dump(isolated_hub.database)
    for secret in [*erased.secrets, f"Reply to {erased.name}", f"tag-{erased.name}"]:
        assert appearances(dump, secret) == [], secret
    for secret in [kept.name, kept.phone, kept.note, f"Reply to {kept.name}"]:
        assert appearances(dump, secret) == ["text"], secret  # plaintext only in its subject's projection rows


class Fragile:
    """A projection whose handler fails on one kind of event, as a bug or bad data would make it."""

    name = "fragile"

    def setup(self, conn) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS fragile_rows (position bigint PRIMARY KEY)")

    def reset(self, conn) -> None:
        conn.execute("DELETE FROM fragile_rows")

    def process(self, conn, event, position) -> None:
        if type(event).__name__ == "NoteAdded":
            raise ValueError("cannot handle notes")
        conn.execute("INSERT INTO fragile_rows VALUES (%s)", (position,))


def test_an_event_a_projection_cannot_apply_is_recorded_and_skipped_not_retried_forever(isolated_hub):
    from projections.runner import ProjectionRunner

    app = isolated_hub.app
    person = new_person(app, new_workspace(app), "Vera")  # workspace, contact, then a note
    runner = ProjectionRunner(app, isolated_hub.database, [Fragile()])
    runner.setup()

    runner.catch_up()

    assert not any(runner.lag().values())
    failures = runner.failures()
    assert [(name, error) for name, _, error in failures] == [("fragile", "ValueError")]
    with isolated_hub.database.connect() as conn:
        applied = [r[0] for r in conn.execute("SELECT position FROM fragile_rows ORDER BY position")]
    assert failures[0][1] not in applied and len(applied) >= 3
    assert person.note not in str(failures)


def test_a_batch_read_before_a_rebuild_does_not_skip_the_rebuilt_projections_history(isolated_hub):
    seed_history(isolated_hub.app)
    runner = isolated_hub.projections
    runner.catch_up()
    full = snapshot(isolated_hub.database)["commhub_contacts"]
    with isolated_hub.database.connect() as conn:
        start = conn.execute("SELECT min(position) FROM commhub_projection_positions").fetchone()[0]
    app = isolated_hub.app
    new_person(app, new_workspace(app), "Late")
    late_events = [(n.id, app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(start + 1, 100)]
    with isolated_hub.database.connect() as conn:  # a rebuild resets the directory meanwhile
        runner.projections["directory"].reset(conn)
        conn.execute("UPDATE commhub_projection_positions SET position = 0 WHERE name = 'directory'")

    runner._apply(list(runner.projections), start, late_events, careful=False)  # the batch read before it
    runner.catch_up()

    contacts = snapshot(isolated_hub.database)["commhub_contacts"]
    assert len(contacts) == len(full) + 1
