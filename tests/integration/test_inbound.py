"""Inbound messages through the application: routing to contacts, idempotency and workspace checks."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import ContactNotFoundError
from tests.integration.helpers import NOW, new_person, new_workspace


def test_a_repeated_provider_message_id_stores_one_message(hub):
    workspace_id = new_workspace(hub.app)
    person = new_person(hub.app, workspace_id, "Inbound")
    first = hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                                    body="Can I move my appointment?", now=NOW, provider_message_id="SM-retry-1")
    again = hub.app.receive_message(workspace_id=workspace_id, contact_id=person.contact_id, channel="sms",
                                    body="Can I move my appointment?", now=NOW, provider_message_id="SM-retry-1")
    assert first[2] is True and again == (first[0], first[1], False)
    conversation = hub.app.get_conversation(workspace_id, first[0])
    assert conversation.unread == 1 and conversation.version == 2  # started, then one message


def test_a_contact_known_to_this_process_is_still_refused_to_another_workspace(hub):
    home, other = new_workspace(hub.app), new_workspace(hub.app)
    person = new_person(hub.app, home, "Tenant")
    hub.app.receive_message(workspace_id=home, contact_id=person.contact_id, channel="sms", body="hello", now=NOW)
    with pytest.raises(ContactNotFoundError):
        hub.app.receive_message(workspace_id=other, contact_id=person.contact_id, channel="sms", body="hi", now=NOW)
    with pytest.raises(ContactNotFoundError):
        hub.app.receive_message(workspace_id=home, contact_id=uuid.uuid4(), channel="sms", body="hi", now=NOW)


def test_the_same_number_writing_twice_is_one_contact(hub):
    workspace_id = new_workspace(hub.app)
    first = hub.app.find_or_create_contact(workspace_id, kind="phone", value="+447700900123", name=None, now=NOW)
    second = hub.app.find_or_create_contact(workspace_id, kind="phone", value="+447700900123", name="Later", now=NOW)
    assert first == second
    assert hub.app.get_contact(workspace_id, first).phone == "+447700900123"


def test_a_number_claimed_by_a_process_that_died_before_creating_the_contact_gets_it_created(hub):
    workspace_id = new_workspace(hub.app)
    orphan = hub.handles.claim(workspace_id, "phone", "+447700900124", uuid.uuid4())
    found = hub.app.find_or_create_contact(workspace_id, kind="phone", value="+447700900124", name=None, now=NOW)
    assert found == orphan
    assert hub.app.get_contact(workspace_id, found).phone == "+447700900124"


def test_two_threads_meeting_a_new_number_at_once_make_one_contact(hub):
    from concurrent.futures import ThreadPoolExecutor

    workspace_id = new_workspace(hub.app)
    for attempt in range(5):
        number = f"+44770090013{attempt}"
        with ThreadPoolExecutor(4) as pool:
            found = set(pool.map(lambda _: hub.app.find_or_create_contact(
                workspace_id, kind="phone", value=number, name=None, now=NOW), range(4)))
        assert len(found) == 1
        assert hub.app.get_contact(workspace_id, found.pop()).phone == number
