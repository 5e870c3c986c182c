"""The erasure workflow against PostgreSQL: legal holds, cancelled sends, purged projections and a
certificate signed with the workspace's key."""

from __future__ import annotations

import copy
import re
import uuid

import pytest

from adapters.signing import verify
from api.bootstrap import bootstrap
from domain.errors import AttachmentNotFoundError, ContactErasedError
from tests.integration.helpers import NOW, appearances, count_events, new_person, new_workspace
from tests.integration.privacy_history import rich_person


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def erase(hub, workspace_id, contact_id, **kwargs):
    """Request an erasure and let projections run (as the server's runner would) until it completes."""
    workflow = hub.privacy.erasures
    request = workflow.request(workspace_id, contact_id, reason=kwargs.pop("reason", "data_subject_request"),
                               reference=kwargs.pop("reference", "TICKET-1"), requested_by=None, wait=0, **kwargs)
    for _ in range(20):
        if request.status not in ("requested", "shredded"):
            break
        hub.projections.catch_up()
        request = workflow.advance(workspace_id, request.id, wait=0)
    return request


def table_text(hub, table: str) -> str:
    with hub.database.connect() as conn:
        return "\n".join(r[0] for r in conn.execute(f"SELECT t::text FROM {table} t").fetchall())


def test_an_erasure_completes_with_a_certificate_signed_by_the_workspace_key(hub):
    workspace_id = new_workspace(hub.app)
    rich = rich_person(hub, workspace_id, "Erin")
    hub.projections.catch_up()

    request = erase(hub, workspace_id, rich.person.contact_id, reference="DSR-2026-117")

    assert request.status == "completed"
    signed = request.certificate
    document = signed["certificate"]
    assert document["subject_id"] == str(rich.person.contact_id) and document["workspace_id"] == str(workspace_id)
    assert (document["reason"], document["reference"]) == ("data_subject_request", "DSR-2026-117")
    # Every event of Erin's with a personal field: created, note, tag, 2 rectifications, consent, restriction
    # (her own stream), message, reply, conversation note, label (her conversation) and her appointment.
    assert document["events_unreadable"] == 12
    assert (document["files_deleted"], document["outbound_cancelled"]) == (1, 1)
    assert {"directory", "files", "inbox", "messages", "outbox", "timeline"} <= set(document["projections_purged"])
    public_key = hub.privacy.signer.public_key(workspace_id)
    assert verify(signed, public_key) == (True, "signature valid")
    assert signed["public_key"] == public_key


def test_an_altered_or_foreign_certificate_fails_verification(hub):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Fay")
    signed = erase(hub, workspace_id, person.contact_id).certificate
    public_key = hub.privacy.signer.public_key(workspace_id)

    altered = copy.deepcopy(signed)
    altered["certificate"]["events_unreadable"] += 1
    assert verify(altered, public_key)[0] is False
    other_workspace_key = hub.privacy.signer.public_key(new_workspace(hub.app))
    assert verify(signed, other_workspace_key)[0] is False
    assert verify({"certificate": {}}, public_key)[0] is False


def test_a_contact_under_legal_hold_is_refused_and_keeps_every_key(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    person = new_person(app, workspace_id, "Hale")
    app.place_legal_hold(workspace_id, person.contact_id, "CASE-42", None, NOW)

    request = erase(hub, workspace_id, person.contact_id)

    assert (request.status, request.refusal) == ("refused", "legal_hold")
    assert not hub.vault.is_erased(person.contact_id)
    assert app.get_contact(workspace_id, person.contact_id).name == person.name
    app.lift_legal_hold(workspace_id, person.contact_id, None, NOW)
    assert erase(hub, workspace_id, person.contact_id).status == "completed"


def test_a_legal_hold_on_a_merged_duplicate_holds_the_whole_family(hub):
    app = hub.app
    workspace_id = new_workspace(app)
    survivor, duplicate = new_person(app, workspace_id, "Ines"), new_person(app, workspace_id, "Inez")
    app.merge_contacts(workspace_id, survivor.contact_id, duplicate.contact_id, None, NOW)
    app.place_legal_hold(workspace_id, duplicate.contact_id, "CASE-7", None, NOW)

    assert erase(hub, workspace_id, survivor.contact_id).status == "refused"
    assert not hub.vault.is_erased(duplicate.contact_id)


def test_queued_messages_are_cancelled_as_events_before_the_keys_go(hub):
    workspace_id = new_workspace(hub.app)
    rich = rich_person(hub, workspace_id, "Cleo")
    hub.projections.catch_up()

    erase(hub, workspace_id, rich.person.contact_id)

    outcomes = [(e.message_id, e.status, e.error_code) for e in hub.app.events.get(rich.conversation_id)
                if type(e).__name__ == "MessageDeliveryUpdated"]
    assert outcomes == [(rich.queued_message_id, "cancelled", "erased")]
    assert hub.app.get_conversation(workspace_id, rich.conversation_id).outbound == {}
    with hub.database.connect() as conn:
        assert conn.execute("SELECT status, body FROM commhub_outbox WHERE message_id = %s",
                            (rich.queued_message_id,)).fetchone() == ("cancelled", None)
        assert conn.execute("SELECT status FROM commhub_messages WHERE message_id = %s",
                            (rich.queued_message_id,)).fetchone() == ("cancelled",)


def test_every_registered_projection_drops_the_erased_subjects_plaintext(isolated_hub):
    """Walks every view the composition root registers (so views added later are covered too):
    after an erasure none of its tables holds any of the person's data, as text or hex."""
    hub = isolated_hub
    workspace_id = new_workspace(hub.app)
    erased, kept = rich_person(hub, workspace_id, "Erin"), rich_person(hub, workspace_id, "Kim")
    hub.projections.catch_up()
    events_before = count_events(hub.database)
    last_before = hub.app.recorder.max_notification_id()

    assert erase(hub, workspace_id, erased.person.contact_id).status == "completed"

    views = hub.projections.projections
    assert {"directory", "inbox", "messages", "timeline", "outbox", "consents", "handles", "files"} <= set(views)
    declared = {table for view in views.values() for table in (*view.tables, *view.kept)}
    for name, view in views.items():  # some view declares each table (views may share one: sealed files)
        undeclared = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", view.ddl)) - declared
        assert not undeclared, f"projection {name} creates tables no view declares: {undeclared}"
    everything = ""
    for name, view in views.items():
        tables = (*view.tables, *view.kept)
        assert tables, f"projection {name} must declare its tables"
        for table in tables:
            text = table_text(hub, table)
            everything += text
            for secret in erased.secrets:
                assert appearances(text, secret) == [], f"{name}.{table} still holds {secret!r}"
            assert appearances(text, erased.attachment.decode()) == [], f"{name}.{table} holds the attachment"
    for secret in (kept.texts[0], kept.person.note, kept.texts[3]):  # the survivor's rows are all still there
        assert appearances(everything, secret), secret
    assert hub.privacy.files.get(kept.file_id, workspace_id)[1] == kept.attachment
    with pytest.raises(AttachmentNotFoundError):  # deleted, not merely unreadable
        hub.privacy.files.get(erased.file_id, workspace_id)
    # Nothing stored was removed or rewritten; the erasure only appended: the request and its two steps,
    # the cancellation of the queued reply, Contact.Erased, and two audit entries.
    with hub.database.connect() as conn:
        kept_events = conn.execute("SELECT count(*) FROM commhub_events WHERE notification_id <= %s",
                                   (last_before,)).fetchone()[0]
    assert kept_events == events_before and count_events(hub.database) == events_before + 7


def requested_erasure(hub, name: str):
    """A contact whose erasure was requested and projected, as if the process died right after."""
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, name)
    request = hub.app.request_erasure(workspace_id, person.contact_id, erasure_id=uuid.uuid4(),
                                      reason="data_subject_request", reference="T-9", requested_by=None, now=NOW)
    hub.projections.catch_up()
    return workspace_id, person, request


def test_an_erasure_interrupted_after_the_request_is_finished_by_the_next_retention_run(hub):
    app = hub.app
    workspace_id, person, request = requested_erasure(hub, "Rae")

    hub.privacy.retention.run()
    hub.projections.catch_up()
    hub.privacy.retention.run()

    assert app.get_erasure(workspace_id, request.id).status == "completed"
    with pytest.raises(ContactErasedError):
        app.add_note(workspace_id, person.contact_id, note_id=uuid.uuid4(), text="again", author_id=None, now=NOW)


def test_a_retention_run_skips_only_while_a_run_of_the_same_installation_holds_its_lock(hub):
    """Not while a process starts up (its start-up lock) nor while another installation's run goes."""
    from api.bootstrap import startup_lock
    from api.retention import retention_lock

    app = hub.app
    workspace_id, person, request = requested_erasure(hub, "Ida")
    with hub.database.connect(autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (retention_lock(hub.database.schema),))
        hub.privacy.retention.run()
        assert app.get_erasure(workspace_id, request.id).status != "completed"
        other.execute("SELECT pg_advisory_unlock_all()")
        other.execute("SELECT pg_advisory_lock(%s), pg_advisory_lock(%s)",
                      (startup_lock(hub.database.schema), retention_lock("another_schema")))
        hub.privacy.retention.run()
        hub.projections.catch_up()
        hub.privacy.retention.run()
    assert app.get_erasure(workspace_id, request.id).status == "completed"
