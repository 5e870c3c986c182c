"""The kept copies of conversations (domain/recent.py): what is kept, for whom, and when it is dropped."""

from __future__ import annotations

import uuid

from domain.conversation import Conversation
from domain.recent import RecentConversations
from tests.unit.test_conversation import NOW


def saved(contact_id: uuid.UUID | None = None, channel: str = "sms") -> Conversation:
    conversation = Conversation.start(workspace_id=uuid.uuid4(), contact_id=contact_id or uuid.uuid4(),
                                      channel=channel, thread="default", now=NOW)
    conversation.collect_events()  # as the application's save leaves it
    return conversation


def test_a_kept_conversation_is_lent_once_and_must_be_handed_back():
    recent = RecentConversations()
    conversation = saved()
    _, loan = recent.take(conversation.id)
    recent.keep(conversation, loan)
    taken, _ = recent.take(conversation.id)
    assert taken is conversation
    assert recent.take(conversation.id)[0] is None  # a second thread loads its own


def test_a_conversation_with_unsaved_events_is_not_kept():
    recent = RecentConversations()
    conversation = saved()
    _, loan = recent.take(conversation.id)
    conversation.receive(uuid.uuid4(), "hello", [], None, NOW)  # its save failed
    recent.keep(conversation, loan)
    assert recent.take(conversation.id)[0] is None


def test_a_shred_drops_that_subjects_conversations_and_no_others():
    recent = RecentConversations()
    subject = uuid.uuid4()
    theirs, theirs_too, other = saved(subject, "sms"), saved(subject, "email"), saved()
    for conversation in (theirs, theirs_too, other):
        recent.keep(conversation, recent.take(conversation.id)[1])
    recent.forget(subject)
    assert recent.take(theirs.id)[0] is None and recent.take(theirs_too.id)[0] is None
    assert recent.take(other.id)[0] is other


def test_a_copy_lent_before_a_shred_is_not_kept_after_it():
    recent = RecentConversations()
    conversation = saved()
    _, loan = recent.take(conversation.id)
    recent.forget(conversation.contact_id)  # the news arrives while the command runs
    recent.keep(conversation, loan)
    assert len(recent) == 0
    recent.keep(conversation, recent.take(conversation.id)[1])  # a loan after the news is fine
    assert len(recent) == 1


def test_forgetting_everyone_empties_it():
    recent = RecentConversations()
    for conversation in (saved(), saved()):
        recent.keep(conversation, recent.take(conversation.id)[1])
    recent.forget(None)
    assert len(recent) == 0


def test_nothing_is_kept_while_shreds_could_go_unnoticed():
    listening = False
    recent = RecentConversations(live=lambda: listening)
    conversation = saved()
    recent.keep(conversation, recent.take(conversation.id)[1])
    assert len(recent) == 0
    listening = True
    recent.keep(conversation, recent.take(conversation.id)[1])
    assert len(recent) == 1


def test_the_least_recently_kept_go_first_when_full():
    recent = RecentConversations(size=2)
    first, second, third = saved(), saved(), saved()
    for conversation in (first, second, third):
        recent.keep(conversation, recent.take(conversation.id)[1])
    assert recent.take(first.id)[0] is None
    assert recent.take(second.id)[0] is second and recent.take(third.id)[0] is third
