"""Retention policies (dry run, then ordinary erasures and expired bodies) and the subject export."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from datetime import timedelta

import pytest

from domain.errors import AttachmentNotFoundError, RetentionPolicyInvalidError
from tests.integration.helpers import NOW, new_person, new_workspace
from tests.integration.privacy_history import rich_person

LATER = NOW + timedelta(days=400)


def test_a_dry_run_lists_inactive_contacts_and_changes_nothing(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    old, held = new_person(app, workspace_id, "Olden"), new_person(app, workspace_id, "Helda")
    recent = new_person(app, workspace_id, "Nova")
    app.add_note(workspace_id, recent.contact_id, note_id=uuid.uuid4(), text="still around", author_id=None,
                 now=LATER - timedelta(days=3))
    app.place_legal_hold(workspace_id, held.contact_id, "CASE-1", None, NOW)
    app.set_retention_policy(workspace_id, erase_inactive_after_days=365, delete_bodies_after_days=None,
                             actor_id=None, now=NOW)
    hub.projections.catch_up()

    report = hub.privacy.retention.plan(workspace_id, LATER).report()

    assert [c["contact_id"] for c in report["contacts_to_erase"]] == [str(old.contact_id)]
    assert report["kept_under_legal_hold"] == [str(held.contact_id)]
    assert not hub.vault.is_erased(old.contact_id)


def test_applying_the_policy_issues_ordinary_erasures_and_expires_old_bodies(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    old = rich_person(hub, workspace_id, "Olden")
    recent = new_person(app, workspace_id, "Nova")
    fresh_body = "A message from last week"
    conversation_id, message_id, _ = app.receive_message(workspace_id=workspace_id, contact_id=recent.contact_id,
                                                         channel="sms", body=fresh_body, now=LATER - timedelta(days=7))
    stale_id, _, _ = app.receive_message(workspace_id=workspace_id, contact_id=recent.contact_id, channel="email",
                                         body="A message from last year", now=LATER - timedelta(days=200))
    app.set_retention_policy(workspace_id, erase_inactive_after_days=300, delete_bodies_after_days=90,
                             actor_id=None, now=NOW)
    hub.projections.catch_up()
    plan = hub.privacy.retention.plan(workspace_id, LATER)
    assert plan.report()["message_bodies_to_delete"] == 3  # the stale one, and Olden's message and reply
    assert plan.files == 1

    [request] = hub.privacy.retention.apply(plan, wait=0)
    hub.projections.catch_up()
    assert hub.privacy.erasures.advance(workspace_id, request.id, wait=0).status == "completed"
    hub.projections.catch_up()

    assert hub.vault.is_erased(old.person.contact_id) and not hub.vault.is_erased(recent.contact_id)
    with hub.database.connect() as conn:
        reasons = conn.execute("SELECT reason, status FROM commhub_erasures WHERE contact_id = %s",
                               (old.person.contact_id,)).fetchall()
        bodies = dict(conn.execute("SELECT conversation_id, body FROM commhub_messages WHERE contact_id = %s",
                                   (recent.contact_id,)).fetchall())
    assert reasons == [("retention_policy", "completed")]
    assert bodies == {conversation_id: fresh_body, stale_id: None}
    with pytest.raises(AttachmentNotFoundError):
        hub.privacy.files.get(old.file_id, workspace_id)


def test_retention_periods_must_be_whole_days(hub):
    with pytest.raises(RetentionPolicyInvalidError):
        hub.app.set_retention_policy(new_workspace(hub.app), erase_inactive_after_days=0,
                                     delete_bodies_after_days=None, actor_id=None, now=NOW)


def test_an_export_holds_everything_about_the_subject_and_their_files(hub):
    workspace_id = new_workspace(hub.app)
    rich = rich_person(hub, workspace_id, "Xena")
    other = new_person(hub.app, workspace_id, "Yuri")
    hub.projections.catch_up()
    hub.privacy.audit.record(workspace_id, "contact.viewed", actor_id=uuid.uuid4(),
                             subject_ids=[rich.person.contact_id], now=NOW)
    hub.projections.catch_up()
    export = hub.privacy.export

    bundle = export.gather(workspace_id, rich.person.contact_id, uuid.uuid4(), NOW)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(export.stream(workspace_id, bundle))))

    data = json.loads(archive.read("subject.json"))
    text = json.dumps(data)
    for secret in rich.secrets:
        assert secret in text, secret
    assert other.name not in text
    assert data["profile"]["name"] == rich.texts[7]
    assert [a["service"] for a in data["appointments"]] == [rich.texts[10]]
    consent = data["consents"][0]
    assert (consent["source"], consent["ip_address"], consent["granted"]) == ("web form", "203.0.113.9", True)
    assert [h["kind"] for h in data["history"]] == ["created", "rectified", "rectified", "processing_restricted",
                                                    "restriction_lifted"]
    assert data["history"][0]["name"] == rich.person.name  # the value before rectification is theirs too
    assert [a["action"] for a in data["access_log"]] == ["contact.viewed"]
    [attachment] = data["conversations"][0]["messages"][0]["attachments"]
    assert archive.read(attachment["path"]) == rich.attachment


def test_the_retention_worker_started_with_the_others_erases_inactive_contacts_on_schedule(settings, fresh_database):
    from dataclasses import replace
    from datetime import datetime, timezone

    from api.bootstrap import bootstrap
    from tests.e2e.api_support import wait_for

    long_ago = datetime.now(timezone.utc) - timedelta(days=800)
    with bootstrap(replace(settings, retention_interval_seconds=0.2), database=fresh_database) as hub:
        workspace_id = hub.app.create_workspace(workspace_id=uuid.uuid4(), name="Old Clinic", slug="old-clinic",
                                                time_zone="Europe/London", now=long_ago)
        dormant = hub.app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Dormant Dora",
                                         now=long_ago)
        active = hub.app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Active Ava",
                                        now=datetime.now(timezone.utc))
        hub.app.set_retention_policy(workspace_id, erase_inactive_after_days=1, delete_bodies_after_days=None,
                                     actor_id=None, now=long_ago)
        hub.start_workers()
        wait_for(lambda: hub.vault.is_erased(dormant), timeout=20, what="the scheduled erasure")
        with hub.database.connect() as conn:
            wait_for(lambda: conn.execute("SELECT status FROM commhub_erasures WHERE contact_id = %s",
                                          (dormant,)).fetchone() == ("completed",),
                     timeout=20, what="the erasure to complete")
        assert not hub.vault.is_erased(active)
