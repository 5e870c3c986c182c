"""Keeps the social handle index (digests of PSIDs/IGSIDs → contact) in step with contacts: a
linked identity is claimed, a merge moves the duplicate's handles to the survivor (so the next
message from a merged-away identity finds the surviving contact), erasure deletes them."""

from __future__ import annotations

from typing import Any, Callable
from uuid import UUID

from domain.contact import Contact
from domain.social import Platform, SocialIdentityLinked
from domain.social_commands import social_handle
from projections.base import View, clear

Digest = Callable[[UUID, str, str], bytes]


class SocialHandles(View):
    name = "social_handles"
    ddl = ""
    tables = ("commhub_social_handles",)
    handlers = {
        SocialIdentityLinked: "linked",
        Contact.Merged: "merged",
        Contact.Erased: "erased",
    }

    def __init__(self, digest: Digest, schema_sql: str) -> None:
        self.digest = digest
        self.ddl = schema_sql  # type: ignore[misc]

    def linked(self, conn: Any, e: SocialIdentityLinked, position: int) -> None:
        sender_id = clear(e.sender_id)
        if not sender_id:
            return  # erased since: its handle must not come back
        kind, value = social_handle(Platform(e.platform), e.account_id, sender_id)
        conn.execute(
            "INSERT INTO commhub_social_handles (workspace_id, digest, kind, contact_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (workspace_id, digest) DO NOTHING",
            (e.workspace_id, self.digest(e.workspace_id, kind, value), kind, e.originator_id),
        )

    def merged(self, conn: Any, e: Contact.Merged, position: int) -> None:
        conn.execute("UPDATE commhub_social_handles SET contact_id = %s WHERE contact_id = %s",
                     (e.originator_id, e.duplicate_id))

    def erased(self, conn: Any, e: Contact.Erased, position: int) -> None:
        conn.execute("DELETE FROM commhub_social_handles WHERE contact_id = ANY(%s)", (list(e.subject_ids),))
