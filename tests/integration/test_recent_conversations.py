"""Inbound messages reuse the conversation this process saved last (domain/recent.py): another
process writing meanwhile loses nothing, and an erasure anywhere drops the kept copy everywhere."""

from __future__ import annotations

import time
import uuid

import pytest

from adapters.postgres import Database
from api.bootstrap import bootstrap
from domain.conversation import Conversation
from tests.integration.helpers import NOW, new_person, new_workspace


@pytest.fixture
def other(settings):
    """A second hub on the same database: another process, with its own pools and key cache."""
    with bootstrap(settings, database=Database(settings.database_url, settings.db_schema, pool_size=2)) as running:
        yield running


def receive(app, workspace_id, contact_id, body: str) -> uuid.UUID:
    conversation_id, _, new = app.receive_message(workspace_id=workspace_id, contact_id=contact_id, channel="sms",
                                                  body=body, now=NOW)
    assert new
    return conversation_id


def bodies(app, conversation_id) -> list[str]:
    return [e.body for e in app.events.get(conversation_id) if isinstance(e, Conversation.MessageReceived)]


def test_a_message_stored_by_another_process_meanwhile_is_kept_and_so_is_the_next(hub, other):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Ines")
    conversation_id = receive(hub.app, workspace_id, person.contact_id, "one")
    assert len(hub.app.recent) == 1  # kept after its save
    receive(other.app, workspace_id, person.contact_id, "two")  # this process's copy is now behind
    receive(hub.app, workspace_id, person.contact_id, "three")  # refused on the stale copy, then reloaded
    receive(hub.app, workspace_id, person.contact_id, "four")
    assert bodies(hub.app, conversation_id) == ["one", "two", "three", "four"]
    assert hub.app.get_conversation(workspace_id, conversation_id).unread == 4


def test_an_erasure_in_another_process_drops_the_kept_conversation_here(hub, other):
    workspace_id = new_workspace(hub.app)
    erased, kept = new_person(hub.app, workspace_id, "Odile"), new_person(hub.app, workspace_id, "Pavel")
    conversation_id = receive(hub.app, workspace_id, erased.contact_id, "my results?")
    hub.app.label_conversation(workspace_id, conversation_id, "urgent", None, NOW)
    receive(hub.app, workspace_id, erased.contact_id, "still there?")  # the copy held now has the label
    kept_id = receive(hub.app, workspace_id, kept.contact_id, "thanks")
    assert len(hub.app.recent) == 2

    other.app.erase_contact(workspace_id, erased.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)

    deadline = time.monotonic() + 5
    while len(hub.app.recent) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(hub.app.recent) == 1, "the erased contact's conversation is still held in memory"
    assert hub.app.recent.take(conversation_id)[0] is None
    assert hub.app.recent.take(kept_id)[0].contact_id == kept.contact_id


def test_erasing_here_drops_the_kept_conversation_at_once(hub):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Rhea")
    receive(hub.app, workspace_id, person.contact_id, "hello")
    assert len(hub.app.recent) == 1
    hub.app.erase_contact(workspace_id, person.contact_id, request_id=uuid.uuid4(), actor_id=None, now=NOW)
    assert len(hub.app.recent) == 0
