"""A base for projections: dispatch by event class, ignore the rest, and blank personal values."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable, ClassVar, Sequence

import psycopg

from domain.personal import ERASED

Handler = Callable[[Any, psycopg.Connection[Any], Any, int], None]


def clear(value: Any) -> Any:
    """A value as it may be stored in a row: erased personal data becomes NULL, and NUL characters
    (which PostgreSQL text and jsonb refuse, and which would stall the projection) are dropped."""
    if value is ERASED:
        return None
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {clear(k): clear(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clear(v) for v in value]
    return value


class View:
    """Subclasses set ``name``, ``tables`` (DDL) and ``handlers``: event class → method."""

    name: ClassVar[str]
    ddl: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    kept: ClassVar[tuple[str, ...]] = ()
    """Tables the view writes that a rebuild keeps (a worker's state: what it already did is not redone)."""
    handlers: ClassVar[dict[type, str]] = {}

    def setup(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self.ddl)

    def reset(self, conn: psycopg.Connection[Any]) -> None:
        for table in self.tables:
            conn.execute(psycopg.sql.SQL("DELETE FROM {}").format(psycopg.sql.Identifier(table)))

    quiet: bool = False
    """True after a batch in which this view queued nothing for its worker, so the worker need not
    be woken (set by views whose ``batch`` tracks it; the others leave it False: maybe queued)."""

    def process(self, conn: psycopg.Connection[Any], event: Any, position: int) -> None:
        method = self.handlers.get(type(event))
        if method is not None:
            getattr(self, method)(conn, event, position)

    def batch(self, conn: psycopg.Connection[Any], events: Sequence[Any]) -> AbstractContextManager[Any]:
        """Around the events of one batch this view is about to apply (in the batch's transaction):
        a view may read once what its handlers would otherwise look up once per event."""
        return nullcontext()
