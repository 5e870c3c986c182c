"""Replay as of a time: what the read models showed at a moment, rebuilt later from the events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from api.bootstrap import bootstrap
from domain.application import CommHub
from projections import queries
from projections.replay import Replayer, ReplayTimeInvalidError
from tests.integration.helpers import NOW, new_person, new_workspace

T = NOW + timedelta(hours=1)
"""The moment replayed: everything before it happened at NOW + minutes, everything after at T + minutes."""


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def minutes(base: datetime, n: int) -> datetime:
    return base + timedelta(minutes=n)


def busy_day(app: CommHub, workspace_id: uuid.UUID, base: datetime, staff_id: uuid.UUID, label: str) -> dict[str, Any]:
    """A contact who writes in, gets a reply, a note, a tag, a label and an assignment."""
    contact_id = app.find_or_create_contact(workspace_id, kind="phone", value=f"+4479{uuid.uuid4().int % 10**8:08d}",
                                            name=f"{label} Ashworth", now=base)
    app.grant_consent(workspace_id, contact_id, channel="sms", purpose="marketing", source="form", wording="Offers",
                      actor_id=staff_id, now=minutes(base, 1))
    conversation_id, _, _ = app.receive_message(workspace_id=workspace_id, contact_id=contact_id, channel="sms",
                                                body=f"{label}: is Tuesday free?", now=minutes(base, 2))
    app.reply(workspace_id, conversation_id, body="Yes, 10:00 works", author_id=staff_id, now=minutes(base, 3))
    app.add_note(workspace_id, contact_id, note_id=uuid.uuid4(), text=f"{label} prefers mornings", author_id=staff_id,
                 now=minutes(base, 4))
    app.tag_contact(workspace_id, contact_id, "regular", staff_id, minutes(base, 5))
    app.label_conversation(workspace_id, conversation_id, "booking", staff_id, minutes(base, 6))
    app.assign_conversation(workspace_id, conversation_id, staff_id, staff_id, minutes(base, 7))
    return {"contact_id": contact_id, "conversation_id": conversation_id}


def live_view(hub: Any, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> dict[str, Any]:
    """What the live read models show right now, through the same queries the API uses."""
    hub.projections.catch_up()
    with hub.database.connection() as conn:
        inbox, _ = queries.list_inbox(conn, workspace_id, view="all", limit=1000)
        subjects = hub.app.get_contact(workspace_id, contact_id).subject_ids
        return {"inbox": inbox, "timeline": queries.timeline(conn, workspace_id, subjects, limit=1000)}


def without_erasure_marks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "contact_erased"} for row in rows]


def test_a_replayed_contact_timeline_and_workspace_inbox_equal_what_the_live_views_showed_then(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    staff_id = app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Agent", role="agent",
                             email=f"a.{uuid.uuid4().hex[:6]}@clinic.example", password_hash="x", now=NOW)
    first = busy_day(app, workspace_id, NOW, staff_id, "Ada")
    second = busy_day(app, workspace_id, minutes(NOW, 10), staff_id, "Bo")
    duplicate = new_person(app, workspace_id, "Dup")
    new_person(app, new_workspace(app), "Elsewhere")  # another tenant: never part of this workspace's replay
    app.merge_contacts(workspace_id, first["contact_id"], duplicate.contact_id, staff_id, minutes(NOW, 30))
    app.close_conversation(workspace_id, second["conversation_id"], staff_id, minutes(NOW, 40))
    then = live_view(isolated_hub, workspace_id, first["contact_id"])
    assert len(then["timeline"]) >= 8 and len(then["inbox"]) == 2

    # Life goes on after T: new messages, a reopened conversation, a rectified name, a new contact.
    app.receive_message(workspace_id=workspace_id, contact_id=first["contact_id"], channel="sms",
                        body="Running late", now=minutes(T, 5))
    app.reopen_conversation(workspace_id, second["conversation_id"], staff_id, minutes(T, 6))
    app.rectify_contact(workspace_id, first["contact_id"], {"name": "Ada Renamed"}, staff_id, minutes(T, 7))
    busy_day(app, workspace_id, minutes(T, 10), staff_id, "Cy")
    now = live_view(isolated_hub, workspace_id, first["contact_id"])
    assert now["timeline"] != then["timeline"] and now["inbox"] != then["inbox"]

    replayer = Replayer(app, isolated_hub.database, batch_size=7)  # several batches
    contact = replayer.run(T, contact_id=first["contact_id"])
    workspace = replayer.run(T, workspace_id=workspace_id)

    assert contact.timeline == then["timeline"]
    assert without_erasure_marks(workspace.inbox) == then["inbox"]
    assert without_erasure_marks(contact.inbox) == [r for r in then["inbox"] if r["contact_id"] == first["contact_id"]]
    assert contact.contact["name"] == "Ada Ashworth" and contact.contact["erased"] is False
    assert {r["contact_id"] for r in workspace.contacts} == {first["contact_id"], second["contact_id"], duplicate.contact_id}
    assert contact.stats.events_read == contact.stats.last_position < app.recorder.max_notification_id()  # stopped early


def test_someone_erased_after_the_moment_replays_as_erased_before_it(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    staff_id = app.add_staff(workspace_id=workspace_id, staff_id=uuid.uuid4(), name="Agent", role="agent",
                             email=f"a.{uuid.uuid4().hex[:6]}@clinic.example", password_hash="x", now=NOW)
    gone = busy_day(app, workspace_id, NOW, staff_id, "Erin")
    kept = busy_day(app, workspace_id, minutes(NOW, 10), staff_id, "Kiran")
    app.erase_contact(workspace_id, gone["contact_id"], request_id=uuid.uuid4(), actor_id=None, now=minutes(T, 30))

    result = Replayer(app, isolated_hub.database).run(T, workspace_id=workspace_id)
    contact = Replayer(app, isolated_hub.database).run(T, contact_id=gone["contact_id"])

    rows = {r["contact_id"]: r for r in result.contacts}
    assert rows[gone["contact_id"]]["erased"] is True and rows[gone["contact_id"]]["name"] is None
    assert rows[gone["contact_id"]]["phone"] is None and rows[gone["contact_id"]]["tags"] == []
    assert rows[kept["contact_id"]]["erased"] is False and rows[kept["contact_id"]]["name"] == "Kiran Ashworth"
    kinds = [r["kind"] for r in contact.timeline]
    assert "privacy.erased" not in kinds and "message.received" in kinds  # the facts stay, as of then
    details = [r["detail"] for r in contact.timeline if r["detail"]]
    assert not any(str(v).startswith("Erin") or "mornings" in str(v) or "Tuesday" in str(v)
                   for d in details for v in d.values())
    inbox = {r["contact_id"]: r for r in result.inbox}
    assert inbox[gone["contact_id"]]["contact_erased"] is True and inbox[gone["contact_id"]]["preview"] is None
    assert inbox[gone["contact_id"]]["labels"] == [] and inbox[gone["contact_id"]]["contact_name"] is None
    assert inbox[kept["contact_id"]]["preview"] == "Yes, 10:00 works"
    assert contact.contact["erased"] is True


def test_a_moment_before_anything_happened_replays_nothing_and_reads_little(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    for i in range(20):
        new_person(app, workspace_id, f"P{i}")
    result = Replayer(app, isolated_hub.database).run(NOW - timedelta(days=1), workspace_id=workspace_id)
    assert result.inbox == [] and result.contacts == [] and result.timeline == []
    assert result.stats.events_read == 0


def test_a_moment_without_a_time_zone_is_refused(isolated_hub):
    with pytest.raises(ReplayTimeInvalidError):
        Replayer(isolated_hub.app, isolated_hub.database).run(datetime(2026, 11, 1, 9))
