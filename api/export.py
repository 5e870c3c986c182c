"""Access and portability: everything about one contact as a zip — ``subject.json`` (profile,
consents with their evidence, the history of the profile and of restrictions, objections and legal
holds, messages, notes, appointments, timeline, and the audit entries of who accessed their data)
and ``attachments/`` with the stored files. Streamed as it is built.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from typing import Any, Iterator
from uuid import UUID

from psycopg.rows import dict_row

from api.present import contact as present_contact
from api.present import plain
from domain.application import CommHub
from domain.contact import Contact
from domain.errors import AttachmentNotFoundError, SubjectErasedError
from adapters.sealed_files import SealedFiles
from adapters.postgres import Database
from projections import queries
from projections.audit import list_entries

FORMAT = "commhub.subject-export"
HISTORY_EVENTS = {
    Contact.Created: "created", Contact.Rectified: "rectified", Contact.ProcessingRestricted: "processing_restricted",
    Contact.RestrictionLifted: "restriction_lifted", Contact.MarketingObjected: "objected_to_marketing",
    Contact.ObjectionWithdrawn: "objection_withdrawn", Contact.LegalHoldPlaced: "legal_hold_placed",
    Contact.LegalHoldLifted: "legal_hold_lifted", Contact.Merged: "merged", Contact.MergedInto: "merged_into",
}
PAGE = 1000


class _Chunks(io.RawIOBase):
    """A write-only, unseekable file that hands over what was written so far (zipfile streams into it)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        return len(data)

    def take(self) -> bytes:
        chunk = bytes(self.buffer)
        self.buffer.clear()
        return chunk


def _safe_name(name: Any) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name or "file"))[:80].strip("._")
    return cleaned or "file"


class SubjectExport:
    """Gathers the bundle first (so errors come before any byte is sent), then streams it."""

    def __init__(self, app: CommHub, database: Database, files: SealedFiles) -> None:
        self.app = app
        self.database = database
        self.files = files

    def gather(self, workspace_id: UUID, contact_id: UUID, export_id: UUID, now: datetime) -> dict[str, Any]:
        contact = self.app.get_contact(workspace_id, contact_id)
        subjects = contact.subject_ids
        consents: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for subject_id in subjects:
            for event in self.app.events.get(subject_id):
                kind = type(event)
                if kind in (Contact.ConsentGranted, Contact.ConsentWithdrawn):
                    consents.append({
                        "subject_id": subject_id, "channel": event.channel, "purpose": event.purpose,
                        "granted": kind is Contact.ConsentGranted, "at": event.timestamp, "source": event.source,
                        "wording": event.wording, "ip_address": event.ip_address, "actor_id": event.actor_id,
                        "expires_at": getattr(event, "expires_at", None),
                    })
                elif kind in HISTORY_EVENTS:
                    entry = {"subject_id": subject_id, "kind": HISTORY_EVENTS[kind], "at": event.timestamp,
                             "actor_id": getattr(event, "actor_id", None)}
                    for field in ("name", "phone", "email", "time_zone", "custom_fields", "changes", "reason",
                                  "reference", "duplicate_id", "survivor_id"):
                        if field in event.__dict__:
                            entry[field] = event.__dict__[field]
                    history.append(entry)
        with self.database.connection() as conn:
            notes = queries.contact_notes(conn, workspace_id, subjects)
            conversations = conn.execute(
                "SELECT conversation_id, channel, labels FROM commhub_inbox WHERE workspace_id = %s AND contact_id = ANY(%s)"
                " ORDER BY conversation_id", (workspace_id, subjects),
            ).fetchall()
            threads = [{"conversation_id": cid, "channel": channel, "labels": labels,
                        "messages": self._all(lambda after: queries.list_messages(
                            conn, workspace_id, cid, after=after, limit=PAGE))}
                       for cid, channel, labels in conversations]
            appointments = conn.cursor(row_factory=dict_row).execute(
                "SELECT appointment_id, staff_id, service, location, notes, starts_at, ends_at, time_zone, status,"
                " source, confirmed_via, created_at FROM commhub_appointments WHERE workspace_id = %s"
                " AND contact_id = ANY(%s) ORDER BY starts_at, appointment_id", (workspace_id, subjects),
            ).fetchall()
            emails = conn.cursor(row_factory=dict_row).execute(
                "SELECT message_id, conversation_id, direction, subject, auto_reply, attachments, at"
                " FROM commhub_email_messages WHERE workspace_id = %s AND contact_id = ANY(%s) ORDER BY position",
                (workspace_id, subjects),
            ).fetchall()
            timeline = self._all(lambda after: queries.timeline(conn, workspace_id, subjects, after=after, limit=PAGE))
            accesses: list[dict[str, Any]] = []
            for subject_id in subjects:
                before: int | None = None
                while True:
                    rows, before = list_entries(conn, workspace_id, subject_id=subject_id, before=before, limit=PAGE)
                    accesses += rows
                    if before is None:
                        break
        return plain({
            "format": FORMAT, "version": 1, "export_id": export_id, "workspace_id": workspace_id,
            "contact_id": contact.id, "subject_ids": subjects, "exported_at": now,
            "profile": present_contact(contact, notes), "consents": consents, "history": history,
            "conversations": threads, "notes": notes, "emails": emails, "appointments": appointments, "timeline": timeline,
            "access_log": sorted(accesses, key=lambda r: r["position"]),
        })

    @staticmethod
    def _all(page: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            batch = page(after)
            rows += batch
            if len(batch) < PAGE:
                return rows
            after = batch[-1]["position"]

    def stream(self, workspace_id: UUID, bundle: dict[str, Any]) -> Iterator[bytes]:
        out = _Chunks()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            files = []
            for message in [m for t in bundle["conversations"] for m in t["messages"]] + bundle["emails"]:
                for attachment in message.get("attachments") or []:
                    if isinstance(attachment, dict) and attachment.get("attachment_id"):
                        file_id = attachment["attachment_id"]
                        name = f"attachments/{file_id}/{_safe_name(attachment.get('filename'))}"
                        attachment["path"] = name
                        files.append((UUID(file_id), name))
            archive.writestr("subject.json", json.dumps(bundle, indent=1, ensure_ascii=False))
            yield out.take()
            for file_id, name in files:
                try:
                    _, data = self.files.get(file_id, workspace_id)
                except (AttachmentNotFoundError, SubjectErasedError):
                    continue  # deleted by retention, or its subject erased
                archive.writestr(name, data)
                yield out.take()
        yield out.take()
