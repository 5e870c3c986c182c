"""Consent status: the latest grant or withdrawal per contact, channel and purpose, with evidence."""

from __future__ import annotations

from typing import Any

from domain.contact import Contact
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_consents (
    contact_id uuid NOT NULL,
    workspace_id uuid NOT NULL,
    channel text NOT NULL,
    purpose text NOT NULL,
    granted boolean NOT NULL,
    source text,
    wording text,
    actor_id uuid,
    at timestamptz NOT NULL,
    expires_at timestamptz,
    position bigint NOT NULL,
    PRIMARY KEY (contact_id, channel, purpose)
);
CREATE INDEX IF NOT EXISTS commhub_consents_by_workspace ON commhub_consents (workspace_id, channel, purpose, granted);
"""


class Consents(View):
    name = "consents"
    ddl = DDL
    tables = ("commhub_consents",)
    handlers = {
        Contact.ConsentGranted: "changed",
        Contact.ConsentWithdrawn: "changed",
        Contact.Merged: "merged",
        Contact.Erased: "erased",
    }

    def changed(self, conn: Any, e: Any, position: int) -> None:
        granted = isinstance(e, Contact.ConsentGranted)
        self._upsert(conn, e.originator_id, e.workspace_id, e.channel, e.purpose, granted, clear(e.source), clear(e.wording),
                     e.actor_id, e.timestamp, getattr(e, "expires_at", None), position)

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        """The evidence is free text about the person; the fact of each grant or withdrawal stays."""
        conn.execute("UPDATE commhub_consents SET source = NULL, wording = NULL WHERE contact_id = ANY(%s)",
                     (list(e.subject_ids),))

    def merged(self, conn: Any, e: Contact.Merged, position: int) -> None:
        if clear(e.consents) is None:
            return
        rows = conn.execute(
            "SELECT channel, purpose, granted, source, wording, actor_id, at, expires_at FROM commhub_consents"
            " WHERE contact_id = %s", (e.originator_id,),
        ).fetchall()
        ours = {(r[0], r[1]): r for r in rows}
        for key, theirs in e.consents.items():
            channel, purpose = key.split(":", 1)
            mine = ours.get((channel, purpose))
            if mine is not None and not mine[2]:
                continue  # our withdrawal wins
            if mine is None or not theirs["granted"] or theirs["at"] > mine[6]:
                self._upsert(conn, e.originator_id, e.workspace_id, channel, purpose, theirs["granted"],
                             theirs["source"], theirs["wording"], theirs["actor_id"], theirs["at"],
                             theirs.get("expires_at"), position)

    @staticmethod
    def _upsert(conn: Any, contact_id: Any, workspace_id: Any, channel: str, purpose: str, granted: bool, source: str,
                wording: str, actor_id: Any, at: Any, expires_at: Any, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_consents VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (contact_id, channel, purpose) DO UPDATE SET granted = EXCLUDED.granted,"
            " source = EXCLUDED.source, wording = EXCLUDED.wording, actor_id = EXCLUDED.actor_id, at = EXCLUDED.at,"
            " expires_at = EXCLUDED.expires_at, position = EXCLUDED.position"
            " WHERE commhub_consents.position < EXCLUDED.position",
            (contact_id, workspace_id, channel, purpose, granted, source, wording, actor_id, at, expires_at, position),
        )
