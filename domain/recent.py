"""Conversations this process saved last, reused by the next inbound message on the same thread.

Every inbound message appends to its conversation, so loading it (its latest snapshot, then the
events after it: two queries and a decode of each event) is most of what storing a message costs.
A conversation kept here after a successful save is exactly what the store held at that moment.
It is safe to reuse only where the command then *always* appends to it: the append is refused if
anyone appended since (the event store's version check), the stale copy is dropped, and the
command runs again on a fresh load (``CommHub._retrying``). A command that might decide from the
conversation's state without appending never takes from here.

Conversations hold a little personal data in memory (labels, a social recipient id). When a
subject's key is shredded in any process the key vault tells every process, and the subject's
conversations are dropped here too; a copy taken out before the news and saved after it is not
kept (each loan carries the generation it was taken at). While the vault cannot promise such news
(its listener is reconnecting) nothing is kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable
from uuid import UUID

from domain.conversation import Conversation

SIZE = 5_000


class RecentConversations:
    def __init__(self, size: int = SIZE, live: Callable[[], bool] = lambda: True) -> None:
        self.size = size
        self.live = live  # false while shreds might go unnoticed: nothing is kept then
        self._kept: OrderedDict[UUID, Conversation] = OrderedDict()
        self._generation = 0
        self._lock = threading.Lock()

    def take(self, conversation_id: UUID) -> tuple[Conversation | None, int]:
        """The kept conversation (removed: no two threads share one) and the loan's generation."""
        with self._lock:
            return self._kept.pop(conversation_id, None), self._generation

    def keep(self, conversation: Conversation, generation: int) -> None:
        """Keep a conversation just saved (nothing pending), unless a key was shredded since its loan."""
        if conversation.pending_events or not self.live():
            return
        with self._lock:
            if generation != self._generation:
                return
            self._kept[conversation.id] = conversation
            self._kept.move_to_end(conversation.id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def forget(self, subject_id: UUID | None) -> None:
        """Drop the conversations of a subject whose key was shredded (``None``: drop all)."""
        with self._lock:
            self._generation += 1
            if subject_id is None:
                self._kept.clear()
                return
            for conversation_id in [k for k, c in self._kept.items() if c.contact_id == subject_id]:
                del self._kept[conversation_id]

    def __len__(self) -> int:
        return len(self._kept)
