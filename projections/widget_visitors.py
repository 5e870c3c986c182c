"""Keeps web chat visitor rows (token digests, identity digests) in step with erasure: an erased
contact's visitor tokens and identity claims are deleted, so a returning browser starts afresh.

The rows are written by ``adapters.widget_visitors.VisitorStore`` (they hold no event data and
cannot be derived from events), so a rebuild leaves them alone: ``reset`` deletes nothing."""

from __future__ import annotations

from typing import Any

from domain.contact import Contact
from projections.base import View


class WidgetVisitors(View):
    name = "widget_visitors"
    tables = ("commhub_widget_visitors", "commhub_widget_identities")
    kept = ("commhub_agent_presence",)  # which agents' sockets are open now: live state, not from events
    handlers = {Contact.Erased: "erased"}

    def __init__(self, schema_sql: str) -> None:
        self.ddl = schema_sql  # type: ignore[misc]

    def reset(self, conn: Any) -> None:
        """Nothing to empty: these rows are not rebuilt from events (a rebuild must not log visitors out)."""

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        subjects = list(e.subject_ids)
        conn.execute("DELETE FROM commhub_widget_visitors WHERE contact_id = ANY(%s)", (subjects,))
        conn.execute("DELETE FROM commhub_widget_identities WHERE contact_id = ANY(%s)", (subjects,))
