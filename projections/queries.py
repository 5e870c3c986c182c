"""Read queries over the projections, as the API and CLI need them. Every query is scoped to a workspace."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

INBOX_COLUMNS = (
    "i.conversation_id, i.contact_id, i.channel, i.status, i.assignee_id, i.labels, i.unread, i.snoozed_until,"
    " i.last_activity, i.last_direction, i.preview, i.message_count, c.name AS contact_name, c.status AS contact_status"
)
PHONE_LIKE = re.compile(r"[\d\s()+\-./]+")
FILTERS = ("all", "open", "closed", "mine", "unassigned", "snoozed")


class CursorInvalidError(ValueError):
    """The pagination cursor is not one this API returned."""


def encode_cursor(at: datetime, row_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), UUID(row_id)
    except (ValueError, UnicodeDecodeError):
        raise CursorInvalidError("cursor is not valid") from None


def list_inbox(
    conn: Any, workspace_id: UUID, *, view: str = "open", staff_id: UUID | None = None, label: str | None = None,
    channel: str | None = None, cursor: str | None = None, limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    where = ["i.workspace_id = %s"]
    params: list[Any] = [workspace_id]
    awake = "(i.snoozed_until IS NULL OR i.snoozed_until <= now())"  # snoozed ones wait in their own view
    if view == "open":
        where += ["i.status = 'open'", awake]
    elif view == "closed":
        where.append("i.status = 'closed'")
    elif view == "snoozed":
        where += ["i.status = 'open'", "i.snoozed_until > now()"]
    elif view == "mine":
        where += ["i.assignee_id = %s", "i.status = 'open'", awake]
        params.append(staff_id)
    elif view == "unassigned":
        where += ["i.assignee_id IS NULL", "i.status = 'open'", awake]
    if label:
        where.append("i.labels @> ARRAY[%s]::text[]")  # uses the GIN index when a label is rare
        params.append(label)
    if channel:
        where.append("i.channel = %s")
        params.append(channel)
    if cursor:
        at, row_id = decode_cursor(cursor)
        where.append("(i.last_activity, i.conversation_id) < (%s, %s)")
        params += [at, row_id]
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {INBOX_COLUMNS} FROM commhub_inbox i LEFT JOIN commhub_contacts c ON c.contact_id = i.contact_id"
        f" WHERE {' AND '.join(where)} ORDER BY i.last_activity DESC, i.conversation_id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["last_activity"], rows[-1]["conversation_id"]) if more else None
    return rows, next_cursor


def get_conversation(conn: Any, workspace_id: UUID, conversation_id: UUID) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {INBOX_COLUMNS} FROM commhub_inbox i LEFT JOIN commhub_contacts c ON c.contact_id = i.contact_id"
        " WHERE i.workspace_id = %s AND i.conversation_id = %s",
        (workspace_id, conversation_id),
    ).fetchone()


def _by_position(
    conn: Any, select: str, where: str, params: tuple[Any, ...], after: int, before: int | None, limit: int,
) -> list[dict[str, Any]]:
    """Rows in position order: those after ``after``, or with ``before`` the latest ones before it."""
    cursor = conn.cursor(row_factory=dict_row)
    if before is not None:
        rows = cursor.execute(f"{select} WHERE {where} AND position < %s ORDER BY position DESC LIMIT %s",
                              (*params, before, limit)).fetchall()
        return rows[::-1]
    return cursor.execute(f"{select} WHERE {where} AND position > %s ORDER BY position LIMIT %s",
                          (*params, after, limit)).fetchall()


def list_messages(
    conn: Any, workspace_id: UUID, conversation_id: UUID, *, after: int = 0, before: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Messages in order; with ``before``, the latest ``limit`` messages before that position."""
    return _by_position(
        conn, "SELECT message_id, kind, body, attachments, author_id, status, error_code, reason, at, position"
        " FROM commhub_messages", "workspace_id = %s AND conversation_id = %s", (workspace_id, conversation_id),
        after, before, limit,
    )


def search_contacts(
    conn: Any, workspace_id: UUID, query: str | None, *, cursor: str | None = None, limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    where = ["workspace_id = %s", "status <> 'merged'"]
    params: list[Any] = [workspace_id]
    if query:
        pattern = "%" + query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        digits = "".join(ch for ch in query if ch.isdigit())
        clauses = ["lower(name) LIKE %s", "lower(email) LIKE %s"]
        params += [pattern, pattern]
        if len(digits) >= 3 and PHONE_LIKE.fullmatch(query.strip()):  # "0740 012-345", not "a1b2c3"
            clauses.append("phone LIKE %s")
            params.append(f"%{digits}%")
        where.append("(" + " OR ".join(clauses) + ")")
    if cursor:
        at, row_id = decode_cursor(cursor)
        where.append("(created_at, contact_id) < (%s, %s)")
        params += [at, row_id]
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT contact_id, name, phone, email, time_zone, tags, status, restricted, objected_to_marketing, created_at,"
        " date_of_birth"
        f" FROM commhub_contacts WHERE {' AND '.join(where)} ORDER BY created_at DESC, contact_id DESC LIMIT %s",
        (*params, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["created_at"], rows[-1]["contact_id"]) if more else None


def timeline(
    conn: Any, workspace_id: UUID, subject_ids: list[UUID], *, after: int = 0, before: int | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """A contact's timeline (with the duplicates merged into it) in order; with ``before``, the
    latest ``limit`` entries before that position."""
    return _by_position(
        conn, "SELECT position, contact_id, kind, at, actor_id, conversation_id, detail FROM commhub_timeline",
        "workspace_id = %s AND contact_id = ANY(%s)", (workspace_id, subject_ids), after, before, limit,
    )


def consents(conn: Any, workspace_id: UUID, contact_id: UUID) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT channel, purpose, granted, source, wording, actor_id, at, expires_at FROM commhub_consents"
        " WHERE workspace_id = %s AND contact_id = %s ORDER BY channel, purpose",
        (workspace_id, contact_id),
    ).fetchall()


def workspace_by_slug(conn: Any, slug: str) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT workspace_id, name, slug, time_zone FROM commhub_workspaces WHERE slug = %s", (slug,)
    ).fetchone()


def staff_for_login(conn: Any, workspace_id: UUID, email: str) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT staff_id, role, password_hash, active FROM commhub_staff WHERE workspace_id = %s AND lower(email) = %s",
        (workspace_id, email.strip().lower()),
    ).fetchone()


def list_staff(conn: Any, workspace_id: UUID) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT staff_id, name, email, role, active FROM commhub_staff WHERE workspace_id = %s ORDER BY name",
        (workspace_id,),
    ).fetchall()


def get_staff(conn: Any, workspace_id: UUID, staff_id: UUID) -> dict[str, Any] | None:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT staff_id, name, email, role, active FROM commhub_staff WHERE workspace_id = %s AND staff_id = %s",
        (workspace_id, staff_id),
    ).fetchone()


def canned_responses(conn: Any, workspace_id: UUID) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT response_id, title, body, updated_at FROM commhub_canned_responses WHERE workspace_id = %s ORDER BY title",
        (workspace_id,),
    ).fetchall()


def contact_notes(conn: Any, workspace_id: UUID, subject_ids: list[UUID]) -> list[dict[str, Any]]:
    """Notes about a contact and the duplicates merged into it, oldest first (erased ones read as null)."""
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT detail->>'note_id' AS note_id, detail->>'text' AS text, actor_id AS author_id, at"
        " FROM commhub_timeline WHERE workspace_id = %s AND contact_id = ANY(%s) AND kind = 'contact.note'"
        " ORDER BY at, position",
        (workspace_id, subject_ids),
    ).fetchall()
