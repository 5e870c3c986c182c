"""Conversations: the inbox list, threads, replies, assignment, status, labels, snooze, notes."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID, uuid4

from fastapi import HTTPException, Query

from api.deps import Conn, HubDep, Inbox, now, settle, settle_answer
from api.present import plain
from api.routing import APIRouter
from api.schemas import (
    AssignRequest,
    ConversationSearch,
    LabelsRequest,
    NoteRequest,
    ReplyRequest,
    SnoozeRequest,
)
from projections import queries

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


@router.get("")
def list_conversations(
    principal: Inbox, conn: Conn,
    view: Literal["all", "open", "closed", "mine", "unassigned", "snoozed"] = "open",
    channel: Literal["sms", "email", "voice", "webchat", "social"] | None = None,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    """Conversations by last activity, newest first; ``next_cursor`` fetches the next page."""
    rows, next_cursor = queries.list_inbox(conn, principal.workspace_id, view=view, staff_id=principal.staff_id,
                                           channel=channel, cursor=cursor, limit=limit)
    return {"items": plain(rows), "next_cursor": next_cursor}


@router.post("/search")
def search_conversations(body: ConversationSearch, principal: Inbox, conn: Conn) -> dict[str, Any]:
    """The list filtered by label too (labels may be health details, so they travel in the body)."""
    rows, next_cursor = queries.list_inbox(conn, principal.workspace_id, view=body.view, staff_id=principal.staff_id,
                                           label=body.label, channel=body.channel, cursor=body.cursor,
                                           limit=body.limit)
    return {"items": plain(rows), "next_cursor": next_cursor}


def _row(conn: Any, principal: Any, conversation_id: UUID) -> dict[str, Any]:
    row = queries.get_conversation(conn, principal.workspace_id, conversation_id)
    if row is None:
        raise HTTPException(404, "Conversation not found")
    return plain(row)


@router.get("/{conversation_id}")
def get_conversation(conversation_id: UUID, principal: Inbox, conn: Conn) -> dict[str, Any]:
    return _row(conn, principal, conversation_id)


@router.get("/{conversation_id}/messages")
def get_messages(
    conversation_id: UUID, principal: Inbox, conn: Conn, after: int = Query(default=0, ge=0, le=2**62),
    before: int | None = Query(default=None, ge=1, le=2**62), limit: int = Query(default=200, ge=1, le=1000),
) -> dict[str, Any]:
    """Messages and internal notes in order; ``after`` pages forward (and resumes), ``before``
    gives the latest ``limit`` messages before a position (pass a huge number for the newest)."""
    _row(conn, principal, conversation_id)
    rows = queries.list_messages(conn, principal.workspace_id, conversation_id, after=after, before=before, limit=limit)
    return {"items": plain(rows)}


@router.post("/{conversation_id}/reply", status_code=201)
def reply(conversation_id: UUID, body: ReplyRequest, principal: Inbox, hub: HubDep) -> dict[str, Any]:
    """Queue a reply. If consent or restriction forbids it, nothing is sent and the refusal is recorded."""
    message_id, decision = hub.app.reply(principal.workspace_id, conversation_id, body=body.body,
                                         author_id=principal.staff_id, now=now(), purpose=body.purpose)
    settle_answer(hub)
    return {"message_id": str(message_id), "status": "queued" if decision.allowed else "refused",
            "reason": str(decision.reason) if decision.reason else None}


@router.post("/{conversation_id}/assign")
def assign(conversation_id: UUID, body: AssignRequest, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.assign_conversation(principal.workspace_id, conversation_id, body.assignee_id, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/close")
def close(conversation_id: UUID, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.close_conversation(principal.workspace_id, conversation_id, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/reopen")
def reopen(conversation_id: UUID, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.reopen_conversation(principal.workspace_id, conversation_id, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/read")
def mark_read(conversation_id: UUID, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.mark_conversation_read(principal.workspace_id, conversation_id, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/labels")
def change_labels(conversation_id: UUID, body: LabelsRequest, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    at = now()
    for label in body.add:
        hub.app.label_conversation(principal.workspace_id, conversation_id, label, principal.staff_id, at)
    for label in body.remove:
        hub.app.unlabel_conversation(principal.workspace_id, conversation_id, label, principal.staff_id, at)
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/snooze")
def snooze(conversation_id: UUID, body: SnoozeRequest, principal: Inbox, hub: HubDep, conn: Conn) -> dict[str, Any]:
    hub.app.snooze_conversation(principal.workspace_id, conversation_id, body.until, principal.staff_id, now())
    settle(hub)
    return _row(conn, principal, conversation_id)


@router.post("/{conversation_id}/notes", status_code=201)
def add_note(conversation_id: UUID, body: NoteRequest, principal: Inbox, hub: HubDep) -> dict[str, Any]:
    """An internal note: visible to staff in the thread, never sent to the contact."""
    note_id = uuid4()
    hub.app.add_conversation_note(principal.workspace_id, conversation_id, note_id=note_id, text=body.text,
                                  author_id=principal.staff_id, now=now())
    settle_answer(hub)
    return {"note_id": str(note_id)}
