"""Replay as of a time through the command line, as a compliance officer would use it."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from api.bootstrap import bootstrap
from api.settings import Settings
from tests.e2e.test_cli import commhub, seeded  # noqa: F401  (fixture)
from tests.integration.helpers import NOW


def test_replay_of_a_contact_prints_progress_and_its_timeline_then_writes_json(seeded, fresh_database, tmp_path):  # noqa: F811
    env, workspace_id, _ = seeded
    with bootstrap(Settings.from_env(env), database=fresh_database) as hub, fresh_database.connect() as conn:
        contact_id = conn.execute("SELECT contact_id FROM commhub_contacts WHERE name = 'Patient 7'").fetchone()[0]
        hub.app.add_note(workspace_id, contact_id, note_id=uuid.uuid4(), text="Added long after", author_id=None,
                         now=NOW + timedelta(days=3))
    as_of = (NOW + timedelta(minutes=7, seconds=30)).isoformat()

    shown = commhub(env, "replay", "--as-of", as_of, "--contact", str(contact_id))
    assert shown.returncode == 0, shown.stderr
    assert "replaying events" in shown.stdout and "events/s" in shown.stdout
    assert "Question number 7" in shown.stdout and "Note about patient 7" in shown.stdout
    assert "Added long after" not in shown.stdout

    written = tmp_path / "replay.json"
    result = commhub(env, "replay", "--as-of", as_of, "--workspace", str(workspace_id), "--output", str(written))
    assert result.returncode == 0, result.stderr
    body = json.loads(written.read_text())
    assert len(body["inbox"]) == 8  # conversations 0..7 existed then; 8..11 came later
    names = {r["contact_name"] for r in body["inbox"] if not r["contact_erased"]}
    assert names == {f"Patient {i}" for i in range(8) if i != 5}
    erased = [r for r in body["inbox"] if r["contact_erased"]]  # Patient 5 was erased two hours later
    assert len(erased) == 1 and erased[0]["contact_name"] is None and erased[0]["preview"] is None
    assert body["events_read"] > 0 and body["as_of"] == as_of


def test_replay_refuses_a_moment_it_cannot_read_and_an_unknown_contact(seeded):  # noqa: F811
    env, _, _ = seeded
    assert commhub(env, "replay", "--as-of", "next tuesday").returncode == 2
    assert commhub(env, "replay", "--as-of", "2026-11-01T09:00:00").returncode == 2  # no time zone
    assert commhub(env, "replay", "--as-of", "2026-11-01T09:00:00Z", "--contact", str(uuid.uuid4())).returncode == 1
