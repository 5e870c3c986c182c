"""The key vault across processes, against tampering, through KEK rotation and after a restore."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from adapters.codec import EXT_SEALED, MsgspecTranscoder
from adapters.kek import Keyring, KekError, generate_kek, load_keyring
from adapters.key_vault import KeyVault
from api.bootstrap import bootstrap
from domain.errors import SealBrokenError
from domain.personal import ERASED
from tests.integration.helpers import NOW, new_person, new_workspace

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_process_with_a_warm_key_cache_cannot_read_after_shredding(hub, settings):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Wren")
    reader = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.reader_process", settings.database_url, settings.db_schema,
         settings.kek, str(workspace_id), str(person.contact_id)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "READY"
        reader.stdin.write("read\n"); reader.stdin.flush()
        assert reader.stdout.readline().strip() == person.name  # served from its warm cache

        app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

        seen = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reader.stdin.write("read\n"); reader.stdin.flush()
            seen.append(reader.stdout.readline().strip())
            if seen[-1] == "ERASED":
                break
            time.sleep(0.05)
        assert seen[-1] == "ERASED", seen
    finally:
        reader.stdin.close()
        reader.wait(timeout=10)
        reader.stdout.close()


def _rewrite_state(database, originator_id, version, change) -> None:
    transcoder = MsgspecTranscoder()
    with database.connect() as conn:
        state = conn.execute(
            "SELECT state FROM commhub_events WHERE originator_id = %s AND originator_version = %s",
            (originator_id, version),
        ).fetchone()[0]
        decoded = transcoder.decode(state)
        change(decoded)
        conn.execute(
            "UPDATE commhub_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
            (transcoder.encode(decoded), originator_id, version),
        )


def _sealed_text(database, originator_id, version):
    with database.connect() as conn:
        state = conn.execute(
            "SELECT state FROM commhub_events WHERE originator_id = %s AND originator_version = %s",
            (originator_id, version),
        ).fetchone()[0]
    return MsgspecTranscoder().decode(state)["text"]


def test_a_sealed_field_copied_into_another_event_fails_to_decrypt(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Tove")
    app.add_note(workspace_id, person.contact_id, note_id=uuid.uuid4(), text="second note", author_id=None, now=NOW)
    first_note = _sealed_text(hub.database, person.contact_id, 2)
    assert isinstance(first_note, msgspec.msgpack.Ext) and first_note.code == EXT_SEALED

    _rewrite_state(hub.database, person.contact_id, 3, lambda state: state.update(text=first_note))

    with pytest.raises(SealBrokenError, match="failed authentication"):
        list(app.events.get(person.contact_id))


def test_a_tampered_ciphertext_is_detected(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Uma")
    sealed = _sealed_text(hub.database, person.contact_id, 2)
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    _rewrite_state(hub.database, person.contact_id, 2,
                   lambda state: state.update(text=msgspec.msgpack.Ext(EXT_SEALED, bytes(flipped))))
    with pytest.raises(SealBrokenError):
        app.get_contact(workspace_id, person.contact_id)


def test_kek_rotation_rewraps_keys_without_touching_events(hub, settings):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Rhea")
    with hub.database.connect() as conn:
        stored_before = conn.execute("SELECT originator_id, originator_version, state FROM commhub_events ORDER BY 1, 2").fetchall()

    old = hub.vault.keyring.current
    new = generate_kek()
    rotating = KeyVault(hub.database, Keyring(new, [old])).start()
    try:
        assert rotating.rewrap(batch_size=2) >= 1
        assert rotating.count_keys()[1] == 0
    finally:
        rotating.close()

    with hub.database.connect() as conn:
        stored_after = conn.execute("SELECT originator_id, originator_version, state FROM commhub_events ORDER BY 1, 2").fetchall()
    assert stored_after == stored_before
    new_only = KeyVault(hub.database, Keyring(new)).start()
    try:
        assert new_only.opener(person.contact_id) is not None
    finally:
        new_only.close()
    old_only = KeyVault(hub.database, Keyring(old)).start()
    try:
        with pytest.raises(KekError, match="not configured"):
            old_only.opener(person.contact_id)
    finally:
        old_only.close()


def test_tombstones_reapplied_after_restoring_a_backup_shred_the_keys_again(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Bea")
    with hub.database.connect() as conn:
        backup = conn.execute("SELECT * FROM commhub_data_keys WHERE subject_id = %s", (person.contact_id,)).fetchone()
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    kept_apart = hub.vault.tombstones()
    with hub.database.connect() as conn:  # the restore brings back the key and forgets the tombstone
        conn.execute("DELETE FROM commhub_key_tombstones WHERE subject_id = %s", (person.contact_id,))
        conn.execute("INSERT INTO commhub_data_keys VALUES (%s, %s, %s, %s, %s)", backup)
    hub.vault._cache.clear()
    created = lambda: next(iter(app.events.get(person.contact_id)))  # noqa: E731
    assert created().name == person.name

    assert hub.vault.reapply([t for t in kept_apart if t.subject_id == person.contact_id]) == 1

    assert created().name is ERASED


def test_key_file_is_created_private_and_reused(tmp_path):
    key_file = tmp_path / "keys" / "kek.key"
    first = load_keyring(None, key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_keyring(None, key_file).current == first.current
    key_file.chmod(0o644)
    with pytest.raises(KekError, match="chmod 600"):
        load_keyring(None, key_file)


def test_a_malformed_kek_is_refused_with_a_clear_error(tmp_path):
    with pytest.raises(KekError, match="32 bytes"):
        load_keyring("not-a-key", tmp_path / "unused")


def test_the_store_keeps_working_with_a_cold_cache(hub, settings):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Cato")
    with bootstrap(settings, database=hub.database) as other:
        assert other.app.get_contact(workspace_id, person.contact_id).email == person.email


def test_one_save_of_many_new_contacts_creates_all_their_keys_in_one_go(hub):
    from domain.contact import Contact

    workspace_id = new_workspace(hub.app)
    contacts = [Contact.create(contact_id=uuid.uuid4(), workspace_id=workspace_id, name=f"Batch {i}", phone=None,
                               email=None, time_zone=None, custom_fields={}, actor_id=None, now=NOW) for i in range(25)]
    hub.app.save(*contacts)
    with hub.database.connect() as conn:
        stored = conn.execute("SELECT count(*) FROM commhub_data_keys WHERE subject_id = ANY(%s)",
                              ([c.id for c in contacts],)).fetchone()[0]
    assert stored == 25
    hub.vault._cache.clear()
    assert [hub.app.get_contact(workspace_id, c.id).name for c in contacts] == [f"Batch {i}" for i in range(25)]


def test_a_batch_that_includes_an_erased_subject_is_refused_whole(hub):
    from domain.contact import Contact
    from domain.errors import SubjectErasedError

    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Gone")
    app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    hub.vault._cache.clear()
    newcomer = Contact.create(contact_id=uuid.uuid4(), workspace_id=workspace_id, name="New", phone=None, email=None,
                              time_zone=None, custom_fields={}, actor_id=None, now=NOW)
    resurrected = Contact.create(contact_id=person.contact_id, workspace_id=workspace_id, name="Back again",
                                 phone=None, email=None, time_zone=None, custom_fields={}, actor_id=None, now=NOW)
    with pytest.raises(SubjectErasedError):
        app.save(newcomer, resurrected)
    from domain.errors import ContactNotFoundError

    with pytest.raises(ContactNotFoundError):  # nothing of the batch was stored
        app.get_contact(workspace_id, newcomer.id)


def test_processes_creating_the_same_subjects_key_at_once_all_get_the_one_stored(hub):
    from concurrent.futures import ThreadPoolExecutor

    workspace_id = new_workspace(hub.app)
    for _ in range(5):
        subject_id = uuid.uuid4()
        with ThreadPoolExecutor(4) as pool:
            keys = list(pool.map(lambda _: hub.vault._load_or_create({subject_id: workspace_id})[subject_id], range(4)))
        sealed = keys[0].encrypt(b"\0" * 12, b"probe", None)
        assert all(key.decrypt(b"\0" * 12, sealed, None) == b"probe" for key in keys)
        hub.vault._cache.clear()
        assert hub.vault.opener(subject_id).decrypt(b"\0" * 12, sealed, None) == b"probe"
