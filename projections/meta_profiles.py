"""Messenger and Instagram senders whose name is still to be looked up on Meta: a queue of ids.

Meta's webhooks carry no name for a Messenger PSID or an Instagram IGSID, so such a contact starts
as "Messenger contact" / "Instagram contact". Linking the identity queues one row; the profile
worker (adapters/meta_profiles.py) asks the Graph API for the name and gives it to the contact
unless someone named it first. Rows hold ids only (the PSID is read from the contact's own sealed
event when it is needed), and they are the worker's state: a rebuild queues nothing twice. An
erasure ends the rows of the erased contact.
"""

from __future__ import annotations

from typing import Any

from domain.contact import Contact
from domain.social import Platform, SocialIdentityLinked
from projections.base import View

DDL = """
CREATE TABLE IF NOT EXISTS commhub_meta_profile_lookups (
    contact_id uuid NOT NULL,
    platform text NOT NULL,
    account_id text NOT NULL,
    workspace_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    outcome text,
    finished_at timestamptz,
    PRIMARY KEY (contact_id, platform, account_id)
);
CREATE INDEX IF NOT EXISTS commhub_meta_profile_lookups_due
    ON commhub_meta_profile_lookups (due_at) WHERE state = 'pending';
"""
LOOKED_UP = (Platform.MESSENGER.value, Platform.INSTAGRAM.value)  # WhatsApp's webhook carries the profile name


class MetaProfiles(View):
    name = "meta_profiles"
    ddl = DDL
    tables = ()
    kept = ("commhub_meta_profile_lookups",)  # the worker's state: kept across rebuilds, so none is made twice
    handlers = {SocialIdentityLinked: "linked", Contact.Erased: "erased"}

    def linked(self, conn: Any, e: SocialIdentityLinked, position: int) -> None:
        if e.platform in LOOKED_UP:
            conn.execute("INSERT INTO commhub_meta_profile_lookups (contact_id, platform, account_id, workspace_id,"
                         " created_at, due_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                         (e.originator_id, e.platform, e.account_id, e.workspace_id, e.timestamp, e.timestamp))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("UPDATE commhub_meta_profile_lookups SET state = 'done', outcome = 'erased', finished_at = %s"
                     " WHERE contact_id = ANY(%s) AND state = 'pending'",
                     (e.timestamp, list(dict.fromkeys([e.originator_id, *e.subject_ids]))))
