"""Contacts: create, read, search, rectify, merge, notes, tags, timeline, consent, restriction."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import Query

from adapters.identifiers import normalise_email, normalise_phone
from api.deps import Contacts, Conn, HubDep, now, settle
from api.present import contact as present_contact
from api.present import plain
from api.routes.minors import flag_minors
from api.routing import APIRouter
from api.schemas import (
    ConsentRequest,
    ContactCreate,
    ContactSearch,
    ContactUpdate,
    MergeRequest,
    NoteRequest,
    ObjectionRequest,
    RestrictionRequest,
    StartConversation,
    TagsRequest,
)
from domain.conversation import conversation_id_for
from projections import queries

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])


def _present(hub: Any, principal: Any, contact_id: UUID) -> dict[str, Any]:
    found = hub.app.get_contact(principal.workspace_id, contact_id)
    with hub.database.connection() as conn:
        notes = queries.contact_notes(conn, principal.workspace_id, found.subject_ids)
    shown = present_contact(found, notes)
    flag_minors(hub, principal.workspace_id, [shown])
    return shown


@router.post("", status_code=201)
def create_contact(body: ContactCreate, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    contact_id = hub.app.create_contact(
        workspace_id=principal.workspace_id, contact_id=uuid4(), name=body.name,
        phone=normalise_phone(body.phone, body.default_region) if body.phone else None,
        email=normalise_email(body.email) if body.email else None,
        time_zone=body.time_zone, custom_fields=body.custom_fields, actor_id=principal.staff_id, now=now(),
        date_of_birth=body.date_of_birth,
    )
    settle(hub)
    return _present(hub, principal, contact_id)


@router.get("")
def list_contacts(
    principal: Contacts, conn: Conn, hub: HubDep, cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
) -> dict[str, Any]:
    """Contacts, newest first, paginated by cursor. To search, POST to /contacts/search."""
    rows, next_cursor = queries.search_contacts(conn, principal.workspace_id, None, cursor=cursor, limit=limit)
    flag_minors(hub, principal.workspace_id, rows)
    return {"items": plain(rows), "next_cursor": next_cursor}


@router.post("/search")
def search_contacts(body: ContactSearch, principal: Contacts, conn: Conn, hub: HubDep) -> dict[str, Any]:
    """Search by name, email or phone digits (in the body: search terms never go in URLs)."""
    rows, next_cursor = queries.search_contacts(conn, principal.workspace_id, body.q, cursor=body.cursor,
                                                limit=body.limit)
    flag_minors(hub, principal.workspace_id, rows)
    return {"items": plain(rows), "next_cursor": next_cursor}


@router.get("/{contact_id}")
def get_contact(contact_id: UUID, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    return _present(hub, principal, contact_id)


@router.patch("/{contact_id}")
def rectify_contact(contact_id: UUID, body: ContactUpdate, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Correct profile fields; the previous values stay (sealed) in the events that set them."""
    changes = body.model_dump(exclude_unset=True, exclude={"default_region"})
    if changes.get("phone"):
        changes["phone"] = normalise_phone(changes["phone"], body.default_region)
    if changes.get("email"):
        changes["email"] = normalise_email(changes["email"])
    hub.app.rectify_contact(principal.workspace_id, contact_id, changes, principal.staff_id, now())
    settle(hub)
    return _present(hub, principal, contact_id)


@router.post("/{contact_id}/merge")
def merge_contact(contact_id: UUID, body: MergeRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Merge ``duplicate_id`` into this contact."""
    hub.app.merge_contacts(principal.workspace_id, contact_id, body.duplicate_id, principal.staff_id, now())
    settle(hub)
    return _present(hub, principal, contact_id)


@router.post("/{contact_id}/notes", status_code=201)
def add_note(contact_id: UUID, body: NoteRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    note_id = uuid4()
    hub.app.add_note(principal.workspace_id, contact_id, note_id=note_id, text=body.text,
                     author_id=principal.staff_id, now=now())
    settle(hub)
    return {"note_id": str(note_id)}


@router.post("/{contact_id}/tags")
def change_tags(contact_id: UUID, body: TagsRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Add and remove tags (in the body: tags may be sensitive, so never in URLs)."""
    at = now()
    for tag in body.add:
        hub.app.tag_contact(principal.workspace_id, contact_id, tag, principal.staff_id, at)
    for tag in body.remove:
        hub.app.untag_contact(principal.workspace_id, contact_id, tag, principal.staff_id, at)
    settle(hub)
    return _present(hub, principal, contact_id)


@router.get("/{contact_id}/timeline")
def get_timeline(
    contact_id: UUID, principal: Contacts, hub: HubDep, conn: Conn, after: int = Query(default=0, ge=0, le=2**62),
    before: int | None = Query(default=None, ge=1, le=2**62), limit: int = Query(default=200, ge=1, le=1000),
) -> dict[str, Any]:
    """Every message, note, consent change and privacy event of the contact (and of duplicates
    merged into it) in order. ``after`` pages forward; ``before`` gives the latest entries first."""
    found = hub.app.get_contact(principal.workspace_id, contact_id)
    rows = queries.timeline(conn, principal.workspace_id, found.subject_ids, after=after, before=before, limit=limit)
    return {"items": plain(rows)}


@router.get("/{contact_id}/consents")
def get_consents(contact_id: UUID, principal: Contacts, hub: HubDep, conn: Conn) -> dict[str, Any]:
    c = hub.app.get_contact(principal.workspace_id, contact_id)
    return {"items": plain(queries.consents(conn, principal.workspace_id, contact_id)),
            "restricted": c.restricted, "objected_to_marketing": c.objected_to_marketing}


@router.post("/{contact_id}/consents")
def record_consent(contact_id: UUID, body: ConsentRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Record a grant or withdrawal, with its evidence (source and the wording shown)."""
    record = hub.app.grant_consent if body.granted else hub.app.withdraw_consent
    extra = {"expires_at": body.expires_at} if body.granted else {}
    record(principal.workspace_id, contact_id, channel=body.channel, purpose=body.purpose, source=body.source,
           wording=body.wording, actor_id=principal.staff_id, now=now(), **extra)
    settle(hub)
    return _present(hub, principal, contact_id)


@router.post("/{contact_id}/restriction")
def set_restriction(contact_id: UUID, body: RestrictionRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Restrict processing (stops every send) or lift the restriction."""
    if body.restricted:
        hub.app.restrict_processing(principal.workspace_id, contact_id, body.reason or "", principal.staff_id, now())
    else:
        hub.app.lift_restriction(principal.workspace_id, contact_id, principal.staff_id, now())
    settle(hub)
    return _present(hub, principal, contact_id)


@router.post("/{contact_id}/objection")
def set_objection(contact_id: UUID, body: ObjectionRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """Record or withdraw an objection to marketing."""
    if body.objected:
        hub.app.object_to_marketing(principal.workspace_id, contact_id, principal.staff_id, now())
    else:
        hub.app.withdraw_objection(principal.workspace_id, contact_id, principal.staff_id, now())
    settle(hub)
    return _present(hub, principal, contact_id)


@router.post("/{contact_id}/conversations")
def start_conversation(contact_id: UUID, body: StartConversation, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """The contact's conversation on a channel (started if there is none yet), to write first."""
    hub.app.start_conversation(principal.workspace_id, contact_id, body.channel, now())
    settle(hub)
    return {"conversation_id": str(conversation_id_for(contact_id, body.channel))}
