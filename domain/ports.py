"""Interfaces the domain needs from the outside world, implemented in adapters/."""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Protocol
from uuid import UUID


class KeyShredder(Protocol):
    """Destroys a data subject's key so every sealed field of theirs becomes unreadable."""

    def shred(self, subject_id: UUID, workspace_id: UUID, request_id: UUID, now: datetime) -> bool:
        """Shred the key and leave a tombstone; True if a key existed. Idempotent."""
        ...

    def is_erased(self, subject_id: UUID) -> bool: ...

    def watch(self, forget: Callable[[UUID | None], None]) -> Callable[[], bool]:
        """Have ``forget(subject)`` called whenever a subject's key is shredded, in any process
        (``forget(None)``: any subject may have been). Returns a check that is true while such
        news is sure to arrive, for callers that keep personal data in memory."""
        ...


class ContactHandles(Protocol):
    """A blind index from a contact's phone number or email to their contact id."""

    def find(self, workspace_id: UUID, kind: str, value: str) -> UUID | None: ...

    def claim(self, workspace_id: UUID, kind: str, value: str, contact_id: UUID) -> UUID:
        """Point the handle at ``contact_id`` unless it already points somewhere; return its owner."""
        ...
