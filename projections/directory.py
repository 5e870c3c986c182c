"""The contact directory: one row per contact for listing and search, blanked when erased.

Plaintext name/phone/email live only in rows keyed by the contact (the data subject) and are
set to NULL by ``Contact.Erased``.
"""

from __future__ import annotations

import json
from typing import Any

from domain.contact import Contact
from projections.base import View, clear

DDL = """
CREATE TABLE IF NOT EXISTS commhub_contacts (
    contact_id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    name text,
    phone text,
    email text,
    time_zone text,
    tags text[] NOT NULL DEFAULT '{}',
    custom_fields jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'active',
    merged_into uuid,
    restricted boolean NOT NULL DEFAULT false,
    objected_to_marketing boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    position bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS commhub_contacts_by_name ON commhub_contacts (workspace_id, lower(name), contact_id);
CREATE INDEX IF NOT EXISTS commhub_contacts_by_email ON commhub_contacts (workspace_id, lower(email));
CREATE INDEX IF NOT EXISTS commhub_contacts_by_phone ON commhub_contacts (workspace_id, phone);
ALTER TABLE commhub_contacts ADD COLUMN IF NOT EXISTS date_of_birth date;
"""


class Directory(View):
    name = "directory"
    ddl = DDL
    tables = ("commhub_contacts",)
    handlers = {
        Contact.Created: "created",
        Contact.Rectified: "rectified",
        Contact.Tagged: "tagged",
        Contact.Untagged: "untagged",
        Contact.ProcessingRestricted: "flags",
        Contact.RestrictionLifted: "flags",
        Contact.MarketingObjected: "flags",
        Contact.ObjectionWithdrawn: "flags",
        Contact.Merged: "merged",
        Contact.MergedInto: "merged_into",
        Contact.Erased: "erased",
    }

    def created(self, conn: Any, e: Contact.Created, position: int) -> None:
        conn.execute(
            "INSERT INTO commhub_contacts (contact_id, workspace_id, name, phone, email, time_zone, custom_fields,"
            " created_at, updated_at, position, date_of_birth) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)"
            " ON CONFLICT (contact_id) DO NOTHING",
            (e.originator_id, e.workspace_id, clear(e.name), clear(e.phone), clear(e.email), clear(e.time_zone),
             _json(clear(e.custom_fields) or {}), e.timestamp, e.timestamp, position, clear(e.date_of_birth)),
        )

    def rectified(self, conn: Any, e: Contact.Rectified, position: int) -> None:
        changes = clear(e.changes)
        if changes is None:
            return
        for field in ("name", "phone", "email", "time_zone", "date_of_birth"):
            if field in changes:
                self._set(conn, e, position, f"{field} = %s", changes[field])
        if "custom_fields" in changes:
            removed = [k for k, v in changes["custom_fields"].items() if v is None]
            kept = {k: v for k, v in changes["custom_fields"].items() if v is not None}
            self._set(conn, e, position, "custom_fields = (custom_fields - %s::text[]) || %s::jsonb", removed, _json(kept))

    def tagged(self, conn: Any, e: Contact.Tagged, position: int) -> None:
        if clear(e.tag) is not None:
            self._set(conn, e, position, "tags = array_append(array_remove(tags, %s), %s)", e.tag, e.tag)

    def untagged(self, conn: Any, e: Contact.Untagged, position: int) -> None:
        if clear(e.tag) is not None:
            self._set(conn, e, position, "tags = array_remove(tags, %s)", e.tag)

    def flags(self, conn: Any, e: Any, position: int) -> None:
        column, value = {
            Contact.ProcessingRestricted: ("restricted", True),
            Contact.RestrictionLifted: ("restricted", False),
            Contact.MarketingObjected: ("objected_to_marketing", True),
            Contact.ObjectionWithdrawn: ("objected_to_marketing", False),
        }[type(e)]
        self._set(conn, e, position, f"{column} = %s", value)

    def merged(self, conn: Any, e: Contact.Merged, position: int) -> None:
        profile = clear(e.profile)
        if profile is None:
            return
        self._set(
            conn, e, position,
            "phone = COALESCE(phone, %s), email = COALESCE(email, %s), date_of_birth = COALESCE(date_of_birth, %s),"
            " tags = ARRAY(SELECT DISTINCT unnest(tags || %s::text[]))",
            profile.get("phone"), profile.get("email"), profile.get("date_of_birth"), list(profile.get("tags", [])),
        )

    def merged_into(self, conn: Any, e: Contact.MergedInto, position: int) -> None:
        self._set(conn, e, position, "status = 'merged', merged_into = %s", e.survivor_id)

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute(
            "UPDATE commhub_contacts SET name = NULL, phone = NULL, email = NULL, time_zone = NULL, tags = '{}', date_of_birth = NULL,"
            " custom_fields = '{}', status = CASE WHEN contact_id = %s THEN 'erased' ELSE status END,"
            " updated_at = %s, position = %s WHERE contact_id = ANY(%s)",
            (e.originator_id, e.timestamp, position, list(e.subject_ids)),
        )

    @staticmethod
    def _set(conn: Any, e: Any, position: int, assignment: str, *values: Any) -> None:
        conn.execute(
            f"UPDATE commhub_contacts SET {assignment}, updated_at = %s, position = %s"
            " WHERE contact_id = %s AND position < %s",
            (*values, e.timestamp, position, e.originator_id, position),
        )


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
