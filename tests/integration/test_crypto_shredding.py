"""Erasure by crypto-shredding, checked against what is really stored in PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from api.bootstrap import bootstrap
from domain.errors import ContactErasedError, SubjectErasedError
from domain.personal import ERASED
from tests.integration.helpers import NOW, appearances, count_events, new_person, new_workspace, pg_dump


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def test_erased_contact_is_nowhere_in_a_database_dump_and_others_are_intact(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    erased = new_person(app, workspace_id, "Erin")
    kept = new_person(app, workspace_id, "Kiran")
    for i in range(120):  # past the snapshot interval, so a snapshot of Erin is stored too
        app.add_note(workspace_id, erased.contact_id, note_id=uuid.uuid4(), text=f"{erased.note} #{i}", author_id=None, now=NOW)
    assert isolated_hub.app.snapshots is not None
    assert list(isolated_hub.app.snapshots.get(erased.contact_id)), "a snapshot was stored"
    events_before = count_events(isolated_hub.database)

    app.erase_contact(workspace_id, erased.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    dump = pg_dump(isolated_hub.database)
    assert "Harbour Physio".encode().hex() in dump, "the dump search finds stored values that are not personal"
    for secret in erased.secrets:
        assert appearances(dump, secret) == [], secret
    assert count_events(isolated_hub.database) == events_before + 1  # only the Erased event was added
    survivor = app.get_contact(workspace_id, kept.contact_id)
    assert (survivor.name, survivor.phone, survivor.email) == (kept.name, kept.phone, kept.email)
    assert [e.text for e in app.events.get(kept.contact_id) if type(e).__name__ == "NoteAdded"] == [kept.note]
    gone = app.get_contact(workspace_id, erased.contact_id)
    assert gone.erased and gone.name is ERASED and gone.email is ERASED and gone.tags is ERASED
    assert {e.text for e in app.events.get(erased.contact_id) if type(e).__name__ == "NoteAdded"} == {ERASED}


def test_personal_fields_are_sealed_at_rest_before_any_erasure(isolated_hub):
    app = isolated_hub.app
    person = new_person(app, new_workspace(app), "Sam")
    dump = pg_dump(isolated_hub.database)
    for secret in person.secrets:
        assert appearances(dump, secret) == [], secret


def test_reading_an_erased_subjects_history_yields_markers_not_errors(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Noor")
    app.grant_consent(workspace_id, person.contact_id, channel="sms", purpose="marketing", source="web form",
                      wording="Text me offers", actor_id=None, ip_address="203.0.113.7", now=NOW)
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    events = list(app.events.get(person.contact_id))
    created, noted, granted = events[0], events[1], events[2]
    assert created.name is ERASED and created.phone is ERASED
    assert noted.text is ERASED
    assert granted.ip_address is ERASED and granted.wording is ERASED and granted.source is ERASED
    assert (granted.channel, granted.purpose) == ("sms", "marketing")  # the fact stays, the evidence text goes
    assert type(events[-1]).__name__ == "Erased" and events[-1].subject_ids == [person.contact_id]


def test_vault_refuses_to_recreate_a_key_for_an_erased_subject(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Ola")
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    with pytest.raises(SubjectErasedError):
        hub.vault.sealer(person.contact_id, workspace_id)
    with pytest.raises(ContactErasedError):
        app.add_note(workspace_id, person.contact_id, note_id=uuid.uuid4(), text="again", author_id=None, now=NOW)
    with pytest.raises(SubjectErasedError):  # even with a cold cache, straight from the tombstone
        hub.vault._cache.clear()
        hub.vault.sealer(person.contact_id, workspace_id)


def test_erasing_twice_is_harmless_and_records_one_erasure(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Ivo")
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    kinds = [type(e).__name__ for e in app.events.get(person.contact_id)]
    assert kinds.count("Erased") == 1


def test_erasing_a_merged_contact_shreds_every_merged_subject(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    first = new_person(app, workspace_id, "Mia")
    duplicate = new_person(app, workspace_id, "Mya")
    app.merge_contacts(workspace_id, first.contact_id, duplicate.contact_id, actor_id=None, now=NOW)
    merged = app.get_contact(workspace_id, first.contact_id)
    assert merged.subject_ids == [first.contact_id, duplicate.contact_id]
    assert merged.email == first.email and merged.phone == first.phone

    app.erase_contact(workspace_id, duplicate.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    assert hub.vault.is_erased(first.contact_id) and hub.vault.is_erased(duplicate.contact_id)
    merged_event = [e for e in app.events.get(first.contact_id) if type(e).__name__ == "Merged"][0]
    assert merged_event.profile is ERASED
