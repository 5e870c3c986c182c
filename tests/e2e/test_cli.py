"""The commhub command line, run as a user would run it."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.postgres import Database
from api.bootstrap import bootstrap
from api.settings import Settings
from tests.integration.seeding import seed_history

ROOT = Path(__file__).resolve().parents[2]


def commhub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def seeded(fresh_database: Database, tmp_path: Path):
    """A schema with history, its KEK in a key file in the data directory (the embedded default's layout)."""
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    with bootstrap(Settings.from_env(env), database=fresh_database) as hub:
        workspace_id = seed_history(hub.app)
        hub.projections.catch_up()
        with fresh_database.connect() as conn:
            inbox = conn.execute("SELECT * FROM commhub_inbox ORDER BY conversation_id").fetchall()
    return env, workspace_id, inbox


def test_projections_rebuild_shows_progress_and_rebuilds_the_same_rows(seeded, fresh_database):
    env, _, inbox_before = seeded
    result = commhub(env, "projections", "rebuild", "inbox")
    assert result.returncode == 0, result.stderr
    assert "rebuilt inbox from" in result.stdout and "100%" in result.stdout
    with fresh_database.connect() as conn:
        assert conn.execute("SELECT * FROM commhub_inbox ORDER BY conversation_id").fetchall() == inbox_before


def test_projections_rebuild_of_an_unknown_name_says_what_exists(seeded):
    env, _, _ = seeded
    result = commhub(env, "projections", "rebuild", "nonsense")
    assert result.returncode == 2 and "known: " in result.stdout and "consents, directory" in result.stdout


def test_keys_rotate_rewraps_every_key_and_data_stays_readable(seeded, fresh_database, tmp_path):
    env, workspace_id, _ = seeded
    old_kek = (tmp_path / "kek.key").read_text()
    result = commhub(env, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kek.key").read_text() != old_kek
    assert not (tmp_path / "kek.key.previous").exists()
    status = commhub(env, "keys", "status")
    assert "under older KEKs: 0" in status.stdout
    with fresh_database.connect() as conn:
        contact_ids = [r[0] for r in conn.execute("SELECT contact_id FROM commhub_contacts WHERE status = 'active'")]
    with bootstrap(Settings.from_env(env), database=fresh_database) as hub:
        names = [hub.app.get_contact(workspace_id, contact_id).name for contact_id in contact_ids]
    assert len(names) == 10 and all(name.startswith("Patient") for name in names)


def test_tombstones_export_and_reapply_round_trip(seeded, tmp_path):
    env, _, _ = seeded
    exported = tmp_path / "tombstones.json"
    assert commhub(env, "keys", "export-tombstones", str(exported)).returncode == 0
    assert '"subject_id"' in exported.read_text()
    result = commhub(env, "keys", "reapply-tombstones", str(exported))
    assert result.returncode == 0, result.stderr
    assert "1 tombstones applied; 0 restored keys shredded again; 0 erasures recorded again" in result.stdout


def test_reapplying_tombstones_after_a_restore_erases_again_and_purges_read_models(seeded, fresh_database, tmp_path):
    env, workspace_id, _ = seeded
    exported = tmp_path / "tombstones.json"
    with bootstrap(Settings.from_env(env), database=fresh_database) as hub:
        contact_id = hub.app.find_or_create_contact(workspace_id, kind="phone", value="+447912345678",
                                                    name="Restored Rowena", now=datetime.now(timezone.utc))
        hub.projections.catch_up()
        with fresh_database.connect() as conn:
            for table, key in (("commhub_data_keys", "subject_id"), ("commhub_contacts", "contact_id")):
                conn.execute(f"CREATE TABLE backup_{table} AS SELECT * FROM {table} WHERE {key} = %s", (contact_id,))
            position = conn.execute("SELECT max(notification_id) FROM commhub_events").fetchone()[0]
        hub.app.erase_contact(workspace_id, contact_id, request_id=uuid.uuid4(), actor_id=None,
                              now=datetime.now(timezone.utc))
    assert commhub(env, "keys", "export-tombstones", str(exported)).returncode == 0
    with fresh_database.connect() as conn:  # "restore" the backup: key, projection row and events as they were
        conn.execute("DELETE FROM commhub_key_tombstones")
        conn.execute("DELETE FROM commhub_events WHERE notification_id > %s", (position,))
        conn.execute("DELETE FROM commhub_contacts WHERE contact_id = %s", (contact_id,))
        for table in ("commhub_data_keys", "commhub_contacts"):
            conn.execute(f"INSERT INTO {table} SELECT * FROM backup_{table}")
            conn.execute(f"DROP TABLE backup_{table}")
        conn.execute("UPDATE commhub_projection_positions SET position = %s", (position,))
        assert conn.execute("SELECT name FROM commhub_contacts WHERE contact_id = %s", (contact_id,)).fetchone()[0]

    result = commhub(env, "keys", "reapply-tombstones", str(exported))

    assert result.returncode == 0, result.stderr
    assert "1 restored keys shredded again; 1 erasures recorded again" in result.stdout
    with fresh_database.connect() as conn:
        assert conn.execute("SELECT name, phone, status FROM commhub_contacts WHERE contact_id = %s",
                            (contact_id,)).fetchone() == (None, None, "erased")
