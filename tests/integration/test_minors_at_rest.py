"""Dates of birth at rest: sealed in the events, plain only in the contact's own directory row, gone on erasure."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from api.bootstrap import bootstrap
from domain.consent import Refusal
from tests.integration.helpers import NOW, appearances, new_workspace, pg_dump

BORN = date(2011, 5, 31)


@pytest.fixture
def isolated_hub(settings, fresh_database):
    with bootstrap(settings, database=fresh_database) as running:
        yield running


def directory_row(hub, contact_id):
    hub.projections.catch_up()
    with hub.database.connect() as conn:
        return conn.execute("SELECT date_of_birth, status FROM commhub_contacts WHERE contact_id = %s",
                            (contact_id,)).fetchone()


def test_a_date_of_birth_is_sealed_in_events_and_blanked_from_the_directory_on_erasure(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    contact_id = app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Young Yusuf",
                                    phone="+447700900123", now=NOW, date_of_birth=BORN)
    app.rectify_contact(workspace_id, contact_id, {"date_of_birth": date(2011, 6, 1)}, None, NOW)
    assert directory_row(isolated_hub, contact_id) == (date(2011, 6, 1), "active")
    with isolated_hub.database.connect() as conn:
        events = conn.execute("SELECT string_agg(encode(state, 'escape'), '') FROM commhub_events").fetchone()[0]
    assert "2011-05-31" not in events and "2011-06-01" not in events

    app.erase_contact(workspace_id, contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    assert directory_row(isolated_hub, contact_id) == (None, "erased")
    dump = pg_dump(isolated_hub.database)
    assert appearances(dump, "2011-05-31") == [] and appearances(dump, "2011-06-01") == []


def test_the_application_refuses_marketing_to_a_minor_once_the_guard_is_on(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    contact_id = app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Teen", phone="+447700900124",
                                    now=NOW, date_of_birth=date(NOW.year - 15, 1, 1))
    app.grant_consent(workspace_id, contact_id, channel="sms", purpose="marketing", source="form", wording="Offers",
                      actor_id=None, now=NOW)
    assert app.may_send(workspace_id, contact_id, "sms", "marketing", NOW).allowed
    app.set_minors_guard(workspace_id, enabled=True, actor_id=None, now=NOW)
    assert app.may_send(workspace_id, contact_id, "sms", "marketing", NOW).reason is Refusal.MINOR
    assert app.may_send(workspace_id, contact_id, "sms", "transactional", NOW).allowed


def test_marketing_email_to_a_minor_is_refused_and_recorded_on_the_conversation(isolated_hub):
    app = isolated_hub.app
    workspace_id = new_workspace(app)
    contact_id = app.create_contact(workspace_id=workspace_id, contact_id=uuid.uuid4(), name="Teen", now=NOW,
                                    email="teen@example.org", date_of_birth=date(NOW.year - 14, 3, 3))
    app.grant_consent(workspace_id, contact_id, channel="email", purpose="marketing", source="form",
                      wording="Newsletter", actor_id=None, now=NOW)
    app.set_minors_guard(workspace_id, enabled=True, actor_id=None, now=NOW)
    conversation_id = app.start_conversation(workspace_id, contact_id, "email", NOW)

    _, marketing = app.compose_email(workspace_id, conversation_id, body="Spring newsletter", subject="News",
                                     attachments=[], author_id=None, purpose="marketing", now=NOW)
    _, reminder = app.compose_email(workspace_id, conversation_id, body="Your appointment", subject="Tomorrow",
                                    attachments=[], author_id=None, purpose="transactional", now=NOW)

    assert marketing.reason is Refusal.MINOR and reminder.allowed
    refused = [e for e in app.events.get(conversation_id) if type(e).__name__ == "MessageRefused"]
    assert [e.reason for e in refused] == ["under_minimum_age_for_marketing"]
