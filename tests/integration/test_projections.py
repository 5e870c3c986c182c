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
