"""The audit log's hash chain, tampered with directly in PostgreSQL: every alteration, removal or
reordering of stored entries is detected, and erasing someone leaves the chain verifiable."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from domain.audit import audit_stream_id
from tests.integration.helpers import NOW, new_person, new_workspace


REPLACE = ("UPDATE commhub_events SET state = overlay(state PLACING '{new}'::bytea"
           " FROM position('{old}'::bytea IN state)) WHERE originator_version = {version} AND originator_id = %s")


@pytest.fixture
def chain(hub):
    """A workspace whose audit log has five entries about one contact."""
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Audra")
    staff_id = uuid.uuid4()
    for i, action in enumerate(("auth.login", "contact.viewed", "contact.timeline_viewed", "contact.exported",
                                "auth.login_failed")):
        hub.privacy.audit.record(workspace_id, action, actor_id=staff_id, subject_ids=[person.contact_id],
                                 route="GET /api/v1/contacts/{contact_id}", now=NOW + timedelta(seconds=i))
    assert hub.privacy.audit.verify(workspace_id).intact
    return hub, workspace_id, person


def tamper(hub, workspace_id, sql: str, *params) -> None:
    with hub.database.connect() as conn:
        conn.execute(sql, (*params, audit_stream_id(workspace_id)))


def problems(hub, workspace_id) -> list[str]:
    report = hub.privacy.audit.verify(workspace_id)
    assert not report.intact
    return report.problems


def test_an_intact_chain_verifies_and_reports_its_head(chain):
    hub, workspace_id, _ = chain
    report = hub.privacy.audit.verify(workspace_id)
    assert (report.intact, report.entries, len(report.head)) == (True, 5, 64)


def test_an_altered_entry_is_detected(chain):
    hub, workspace_id, _ = chain
    tamper(hub, workspace_id, REPLACE.format(old="contact.viewed", new="contact.edited", version=2))
    assert problems(hub, workspace_id) == [
        "entry 3 does not chain onto the entry before it (that entry, or this one, was altered, removed or moved)"]


def test_a_removed_entry_is_detected(chain):
    hub, workspace_id, _ = chain
    tamper(hub, workspace_id, "DELETE FROM commhub_events WHERE originator_version = 3 AND originator_id = %s")
    found = problems(hub, workspace_id)
    assert "entry 3 is missing (the next stored is 4)" in found
    assert any(p.startswith("entry 4 does not chain") for p in found)


def test_reordered_entries_are_detected(chain):
    hub, workspace_id, _ = chain
    for old, new in ((2, 100), (3, 2), (100, 3)):  # swap entries 2 and 3
        tamper(hub, workspace_id, "UPDATE commhub_events SET originator_version = %s"
               " WHERE originator_version = %s AND originator_id = %s", new, old)
    assert any(p.startswith("entry 2 does not chain") for p in problems(hub, workspace_id))


def test_entries_cut_off_the_end_are_detected(chain):
    hub, workspace_id, _ = chain
    tamper(hub, workspace_id, "DELETE FROM commhub_events WHERE originator_version = 5 AND originator_id = %s")
    assert any("recorded head" in p for p in problems(hub, workspace_id))


def test_an_altered_last_entry_is_detected(chain):
    hub, workspace_id, _ = chain
    tamper(hub, workspace_id, REPLACE.format(old="auth.login_failed", new="auth.login_passed", version=5))
    assert any("recorded head" in p for p in problems(hub, workspace_id))


def test_the_chain_still_verifies_after_its_subject_is_erased(chain):
    hub, workspace_id, person = chain
    hub.app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    hub.privacy.audit.record(workspace_id, "contact.viewed", subject_ids=[person.contact_id], now=NOW)
    report = hub.privacy.audit.verify(workspace_id)
    assert report.intact and report.entries == 6


def test_concurrent_appends_form_one_unbroken_chain(hub):
    from concurrent.futures import ThreadPoolExecutor

    workspace_id = new_workspace(hub.app)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: hub.privacy.audit.record(workspace_id, "contact.viewed", count=i, now=NOW), range(24)))
    report = hub.privacy.audit.verify(workspace_id)
    assert report.intact and report.entries == 24


def test_two_processes_appending_in_turn_keep_one_chain(hub):
    from adapters.audit_log import AuditLog

    workspace_id = new_workspace(hub.app)
    first, second = hub.privacy.audit, AuditLog(hub.app, hub.database)  # each remembers its own last entry
    for log in (first, second, first, second, second, first):
        log.record(workspace_id, "contact.viewed", now=NOW)
    report = first.verify(workspace_id)
    assert report.intact and report.entries == 6


def test_audit_entries_hold_ids_and_counts_only(hub):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Pia")
    hub.privacy.audit.record(workspace_id, "contacts.searched", actor_id=uuid.uuid4(), subject_ids=[person.contact_id],
                             route="POST /api/v1/contacts/search", count=1, now=NOW)
    with hub.database.connect() as conn:
        stored = b"".join(bytes(r[0]) for r in conn.execute(
            "SELECT state FROM commhub_events WHERE originator_id = %s", (audit_stream_id(workspace_id),)))
    for secret in person.secrets:
        assert secret.encode() not in stored


def test_entries_recorded_from_the_event_loop_and_from_threads_form_one_chain(hub):
    """Requests record on the event loop: one of them appends for all queued meanwhile, and the
    rest wait without a thread; sync callers (CLI, workflows) join the same queue."""
    import asyncio

    workspace_id = new_workspace(hub.app)
    audit = hub.privacy.audit

    async def burst() -> list:
        loop = asyncio.get_running_loop()
        threaded = [loop.run_in_executor(None, lambda i=i: audit.record(workspace_id, "contact.viewed", count=i,
                                                                        now=NOW)) for i in range(10)]
        looped = [audit.record_async(workspace_id, "contacts.listed", count=i, now=NOW) for i in range(40)]
        return await asyncio.gather(*threaded, *looped)

    entries = asyncio.run(burst())
    assert sorted(e.originator_version for e in entries) == list(range(1, 51))  # each its own place
    assert {e.action for e in entries} == {"contact.viewed", "contacts.listed"}
    report = audit.verify(workspace_id)
    assert report.intact and report.entries == 50
    with hub.database.connect() as conn:
        heads = conn.execute("SELECT version FROM commhub_audit_heads WHERE workspace_id = %s",
                             (workspace_id,)).fetchone()
    assert heads[0] == 50


def test_the_head_moves_in_the_appends_own_commit_and_not_when_the_append_is_refused(chain):
    """The head is written by the statement that appends the entries: a refused append (another
    writer took the version) moves neither the chain nor the head."""
    from eventsourcing.persistence import IntegrityError

    from domain.audit import AuditEntry

    hub, workspace_id, _ = chain
    audit = hub.privacy.audit
    stream = audit_stream_id(workspace_id)

    def head() -> tuple[int, str]:
        with hub.database.connect() as conn:
            return tuple(conn.execute("SELECT version, hash FROM commhub_audit_heads WHERE workspace_id = %s",
                                      (workspace_id,)).fetchone())

    before = head()
    assert before == audit._last(stream)  # the head is the stored last entry, hash included
    taken = AuditEntry(originator_id=stream, originator_version=before[0], previous_hash="x" * 64,
                       workspace_id=workspace_id, action="contact.viewed", actor_id=None, via="api", subject_ids=[],
                       target_id=None, route=None, count=None, outcome="ok", timestamp=NOW)
    with pytest.raises(IntegrityError):
        hub.app.recorder.insert_events_with([hub.app.mapper.to_stored_event(taken)], audit._head_statement,
                                            (workspace_id, before[0], "y" * 64))
    assert head() == before
    audit.record(workspace_id, "contact.viewed", now=NOW)
    assert head() == audit._last(stream) and head()[0] == before[0] + 1
    assert audit.verify(workspace_id).intact


def test_a_process_chains_onto_the_head_it_appended_and_reads_the_store_only_when_another_wrote(hub, monkeypatch):
    from adapters.audit_log import AuditLog

    workspace_id = new_workspace(hub.app)
    first, second = hub.privacy.audit, AuditLog(hub.app, hub.database)
    stream = audit_stream_id(workspace_id)
    reads: list[AuditLog] = []
    for log in (first, second):
        real = log._last
        monkeypatch.setattr(log, "_last", lambda s, log=log, real=real: reads.append(log) or real(s))

    for _ in range(3):
        first.record(workspace_id, "contact.viewed", now=NOW)
    assert reads == [first]  # its first entry read the (empty) chain; the next two chained onto what it knew
    second.record(workspace_id, "contact.viewed", now=NOW)
    first.record(workspace_id, "contact.viewed", now=NOW)  # the stored head moved: it reads the last entry
    assert reads == [first, second, first]
    report = first.verify(workspace_id)
    assert report.intact and report.entries == 5
    with hub.database.connect() as conn:
        head = conn.execute("SELECT version, hash FROM commhub_audit_heads WHERE workspace_id = %s",
                            (workspace_id,)).fetchone()
    assert tuple(head) == first._last(stream) and head[0] == 5


def test_after_the_database_is_restored_to_an_earlier_state_new_entries_chain_onto_what_it_holds(chain):
    """A restore takes entries and the head back together: a process that appended the entries since
    lost must not chain onto them (a gap), but onto the last entry the database has."""
    hub, workspace_id, _ = chain
    audit = hub.privacy.audit
    stream = audit_stream_id(workspace_id)
    kept_version = 3
    with hub.database.connect() as conn:
        conn.execute("DELETE FROM commhub_events WHERE originator_id = %s AND originator_version > %s",
                     (stream, kept_version))
    kept_hash = audit._last(stream)[1]
    with hub.database.connect() as conn:
        conn.execute("UPDATE commhub_audit_heads SET version = %s, hash = %s WHERE workspace_id = %s",
                     (kept_version, kept_hash, workspace_id))

    entry = audit.record(workspace_id, "contact.viewed", now=NOW)
    assert entry.originator_version == kept_version + 1 and entry.previous_hash == kept_hash
    report = audit.verify(workspace_id)
    assert report.intact and report.entries == kept_version + 1, report.problems


def test_an_append_whose_answer_was_lost_is_stored_once(server_url, session_kek, tmp_path):
    """The network fails after PostgreSQL committed an audit append but before the hub heard of it:
    the store retries the statement, finds the entries taken — by this very batch — and the entry
    is in the chain once, not twice."""
    from adapters.postgres import Database
    from api.bootstrap import bootstrap
    from api.settings import Settings
    from tests.pg_proxy import PgProxy

    proxy = PgProxy(server_url)
    database = Database(proxy.conninfo, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    settings = Settings(database_url=database.url, db_schema=database.schema, kek=session_kek, data_dir=tmp_path)
    try:
        with bootstrap(settings, database=database) as hub:
            workspace_id = new_workspace(hub.app)
            audit = hub.privacy.audit
            audit.record(workspace_id, "contact.viewed", route="GET /first", now=NOW)  # the first append of this chain
            for attempt, route in enumerate((f"GET /onto-known-head/{uuid.uuid4()}", f"GET /fresh-read/{uuid.uuid4()}")):
                if attempt == 1:
                    audit._chains[workspace_id].head = None  # as a process that has not appended to this chain yet
                proxy.lose_answer_after(route.encode())
                entry = audit.record(workspace_id, "contact.viewed", route=route, now=NOW)
                assert proxy.answers_lost == attempt + 1
                assert entry.originator_version == attempt + 2
            report = audit.verify(workspace_id)
            assert report.intact and report.entries == 3, report.problems
            routes = [audit.decode(e.state)["route"] for e in hub.app.recorder.select_events(
                audit_stream_id(workspace_id))]
            assert routes[0] == "GET /first" and len(set(routes)) == 3
    finally:
        database.drop_schema()
        proxy.close()
