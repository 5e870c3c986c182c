"""Restoring an older backup, as an operator would: pg_dump, an erasure, pg_restore, reapply tombstones."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from adapters.embedded_postgres import pg_bin
from api.bootstrap import bootstrap
from api.settings import Settings
from domain.personal import ERASED
from tests.e2e.test_cli import commhub, seeded  # noqa: F401  (fixture)
from tests.integration.helpers import appearances


def client(program: str, url: str) -> str:
    """The PostgreSQL client of the server's own major version: a newer pg_restore writes settings an older
    server refuses (e.g. transaction_timeout), so an operator uses the matching one, as this test does."""
    with psycopg.connect(url) as conn:
        server_major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    for candidate in (shutil.which(program), str(pg_bin(program))):
        if candidate:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
            found = re.search(r"\) (\d+)", version)
            if found and int(found.group(1)) == server_major:
                return candidate
    raise AssertionError(f"no {program} of PostgreSQL {server_major} on this machine")


def run(program: str, url: str, *args: str) -> str:
    result = subprocess.run([client(program, url), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{program} failed: {result.stderr[-2000:]}"
    return result.stdout


def test_an_erased_subject_stays_unreadable_after_an_older_backup_is_restored_and_tombstones_reapplied(
    seeded, fresh_database, tmp_path,  # noqa: F811
):
    env, workspace_id, _ = seeded
    database = fresh_database
    now = datetime.now(timezone.utc)
    with bootstrap(Settings.from_env(env), database=database) as hub:
        rowena = hub.app.find_or_create_contact(workspace_id, kind="phone", value="+447912345678",
                                                name="Rowena Backupsworth", now=now)
        hub.app.receive_message(workspace_id=workspace_id, contact_id=rowena, channel="sms",
                                body="My ankle is worse since Tuesday", now=now)
        hub.app.add_note(workspace_id, rowena, note_id=uuid.uuid4(), text="Prefers the Thursday clinic",
                         author_id=None, now=now)
        hub.projections.catch_up()
    secrets = ["Rowena Backupsworth", "+447912345678", "ankle is worse", "Thursday clinic"]
    backup = tmp_path / "nightly.dump"
    run("pg_dump", database.url, "--format=custom", "--no-owner", f"--schema={database.schema}", f"--file={backup}",
        f"--dbname={database.url}")

    with bootstrap(Settings.from_env(env), database=database) as hub:  # after the backup: she is erased
        hub.app.erase_contact(workspace_id, rowena, request_id=uuid.uuid4(), actor_id=None, now=now)
        hub.projections.catch_up()
        events_after_erasure = hub.app.recorder.max_notification_id()
    tombstones = tmp_path / "tombstones.json"  # kept apart from the backups
    assert commhub(env, "keys", "export-tombstones", str(tombstones)).returncode == 0

    lost = f"{database.schema}_lost"  # the database is lost; the older backup is restored in its place
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(database.schema), sql.Identifier(lost)))
    try:
        run("pg_restore", database.url, "--no-owner", "--exit-on-error", f"--dbname={database.url}", str(backup))
        with bootstrap(Settings.from_env(env), database=database) as hub:  # the danger: her key came back
            assert hub.app.get_contact(workspace_id, rowena).name == "Rowena Backupsworth"
            assert hub.app.recorder.max_notification_id() < events_after_erasure

        result = commhub(env, "keys", "reapply-tombstones", str(tombstones))

        assert result.returncode == 0, result.stderr
        assert "1 restored keys shredded again; 1 erasures recorded again" in result.stdout
        with bootstrap(Settings.from_env(env), database=database) as hub:
            gone = hub.app.get_contact(workspace_id, rowena)
            assert gone.erased and gone.name is ERASED and gone.phone is ERASED
            assert {e.body for e in hub.app.events.get(hub.app.get_conversation(
                workspace_id, next(iter(_conversations(database, rowena)))).id) if hasattr(e, "body")} == {ERASED}
            others = [hub.app.get_contact(workspace_id, c) for c in _active_contacts(database, rowena)]
            assert len(others) == 10 and all(c.name.startswith("Patient") for c in others)
        with database.connect() as conn:
            assert conn.execute("SELECT name, phone, status FROM commhub_contacts WHERE contact_id = %s",
                                (rowena,)).fetchone() == (None, None, "erased")
            assert conn.execute("SELECT count(*) FROM commhub_messages WHERE contact_id = %s AND body IS NOT NULL",
                                (rowena,)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM commhub_inbox WHERE contact_id = %s AND preview IS NOT NULL",
                                (rowena,)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM commhub_timeline WHERE contact_id = %s AND detail IS NOT NULL"
                                " AND kind <> 'privacy.erased'", (rowena,)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM commhub_contacts WHERE name LIKE 'Patient%%'").fetchone()[0] == 11
        _drop(database, lost)  # the lost database is gone for good; what remains must not hold her
        dump = run("pg_dump", database.url, "--no-owner", f"--schema={database.schema}", f"--dbname={database.url}")
        for secret in secrets:
            assert appearances(dump, secret) == [], secret
        assert appearances(dump, "Patient 7") == ["text"]  # everyone else's rows came back intact
    finally:
        _drop(database, lost)


def _drop(database, schema: str) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _conversations(database, contact_id) -> list[uuid.UUID]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute("SELECT conversation_id FROM commhub_inbox WHERE contact_id = %s", (contact_id,))]


def _active_contacts(database, except_id) -> list[uuid.UUID]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT contact_id FROM commhub_contacts WHERE status = 'active' AND contact_id <> %s", (except_id,))]
