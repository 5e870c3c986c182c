"""``commhub privacy`` and ``commhub audit`` run as a compliance officer would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from adapters.postgres import Database
from api.bootstrap import bootstrap
from api.settings import Settings
from domain.audit import audit_stream_id
from tests.integration.helpers import NOW, new_person, new_workspace

ROOT = Path(__file__).resolve().parents[2]


def commhub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def clinic(fresh_database: Database, tmp_path: Path):
    env = {"DATABASE_URL": fresh_database.url, "COMMHUB_DB_SCHEMA": fresh_database.schema,
           "COMMHUB_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    with bootstrap(Settings.from_env(env), database=fresh_database) as hub:
        workspace_id = new_workspace(hub.app)
        erin, held = new_person(hub.app, workspace_id, "Erin"), new_person(hub.app, workspace_id, "Hal")
        hub.app.place_legal_hold(workspace_id, held.contact_id, "CASE-1", None, NOW)
        hub.privacy.audit.record(workspace_id, "contact.viewed", subject_ids=[erin.contact_id], now=NOW)
        hub.projections.catch_up()
    return env, workspace_id, erin, held


def test_erase_writes_a_certificate_that_verify_accepts_and_rejects_once_altered(clinic, tmp_path):
    env, workspace_id, erin, _ = clinic
    certificate = tmp_path / "certificate.json"

    erased = commhub(env, "privacy", "erase", str(erin.contact_id), "-w", str(workspace_id),
                     "--reference", "DSR-77", "--certificate", str(certificate))

    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert "completed" in erased.stdout and "events made unreadable" in erased.stdout
    verified = commhub(env, "privacy", "verify", str(certificate))
    assert verified.returncode == 0 and verified.stdout.startswith("VALID"), verified.stdout + verified.stderr
    signed = json.loads(certificate.read_text())
    signed["certificate"]["completed_at"] = "2020-01-01T00:00:00+00:00"
    certificate.write_text(json.dumps(signed))
    rejected = commhub(env, "privacy", "verify", str(certificate))
    assert rejected.returncode == 1 and rejected.stdout.startswith("INVALID")


def test_erase_refuses_a_contact_under_legal_hold(clinic):
    env, workspace_id, _, held = clinic
    refused = commhub(env, "privacy", "erase", str(held.contact_id), "-w", str(workspace_id), "--reference", "T-1")
    assert refused.returncode == 1 and "legal hold" in refused.stdout


def test_export_writes_a_zip_and_audit_verify_catches_a_tampered_chain(clinic, tmp_path, fresh_database):
    env, workspace_id, erin, _ = clinic
    out = tmp_path / "erin.zip"
    exported = commhub(env, "privacy", "export", str(erin.contact_id), "-w", str(workspace_id), "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert json.loads(zipfile.ZipFile(out).read("subject.json"))["profile"]["name"] == erin.name

    intact = commhub(env, "audit", "verify")
    assert intact.returncode == 0 and f"{workspace_id}: intact, 2 entries" in intact.stdout, intact.stdout
    with fresh_database.connect() as conn:
        conn.execute("DELETE FROM commhub_events WHERE originator_id = %s AND originator_version = 1",
                     (audit_stream_id(workspace_id),))
    broken = commhub(env, "audit", "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "entry 1 is missing" in broken.stdout


def test_retention_dry_run_reports_and_apply_erases(clinic):
    env, workspace_id, _, _ = clinic
    month_before = NOW - timedelta(days=30)  # Erin was last active at NOW, Dan a month before her
    window = (datetime.now(timezone.utc) - NOW).days + 15  # Erin inside it whatever today's date, Dan not
    with bootstrap(Settings.from_env(env)) as hub:
        dormant = hub.app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Dormant Dan",
                                         now=month_before)
        hub.app.set_retention_policy(workspace_id, erase_inactive_after_days=window, delete_bodies_after_days=None,
                                     actor_id=None, now=month_before)
        hub.projections.catch_up()

    report = json.loads(commhub(env, "privacy", "retention", "-w", str(workspace_id)).stdout)
    assert [c["contact_id"] for c in report["contacts_to_erase"]] == [str(dormant)] and "erasures" not in report

    applied = json.loads(commhub(env, "privacy", "retention", "-w", str(workspace_id), "--apply").stdout)
    assert [(e["contact_id"], e["status"]) for e in applied["erasures"]] == [(str(dormant), "completed")]
    assert applied["contacts_to_erase"] == report["contacts_to_erase"]  # the report it acted on
