"""Social conversations: WhatsApp templates (the only messages allowed outside the 24-hour window),
and suggestions to link the contacts behind one person's several channels into one contact."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from api.deps import Conn, Contacts, HubDep, Inbox, now, settle
from api.routing import APIRouter
from api.schemas import Body
from domain.social_commands import PLACEHOLDER_NAMES

router = APIRouter(prefix="/api/v1", tags=["social"])
SUGGESTIONS = 20


class TemplateRequest(Body):
    name: str = Field(max_length=512, description="an approved template's name (a-z, 0-9, _)")
    language: str = Field(max_length=10, description="the template's language code, e.g. en_US")
    parameters: list[str] = Field(default_factory=list, max_length=20, description="body parameters {{1}}, {{2}}…")
    purpose: str = Field(default="transactional", max_length=20, description="transactional or marketing")


class LinkRequest(Body):
    contact_id: UUID = Field(description="the other contact, merged into this one")


@router.post("/conversations/{conversation_id}/whatsapp-template", status_code=201)
def send_template(conversation_id: UUID, body: TemplateRequest, principal: Inbox, hub: HubDep) -> dict[str, Any]:
    """Queue an approved template in a WhatsApp conversation; consent and restriction still apply."""
    message_id, decision = hub.app.send_social_template(
        principal.workspace_id, conversation_id, name=body.name, language=body.language,
        parameters=body.parameters, author_id=principal.staff_id, now=now(), purpose=body.purpose)
    settle(hub)
    return {"message_id": str(message_id), "status": "queued" if decision.allowed else "refused",
            "reason": str(decision.reason) if decision.reason else None}


@router.get("/contacts/{contact_id}/link-suggestions")
def link_suggestions(contact_id: UUID, principal: Contacts, hub: HubDep, conn: Conn) -> dict[str, Any]:
    """Other contacts that may be the same person (same name, phone or email): an agent confirms."""
    hub.app.check_contact(principal.workspace_id, contact_id)
    rows = conn.execute(
        "SELECT c.contact_id, c.name,"
        " (me.name <> ALL(%s) AND lower(c.name) = lower(me.name)) AS same_name,"
        " COALESCE(c.phone = me.phone, false), COALESCE(lower(c.email) = lower(me.email), false)"
        " FROM commhub_contacts me JOIN commhub_contacts c ON c.workspace_id = me.workspace_id"
        " WHERE me.contact_id = %s AND me.workspace_id = %s AND c.contact_id <> me.contact_id"
        " AND c.status = 'active' AND me.status = 'active'"
        " AND ((me.name <> ALL(%s) AND lower(c.name) = lower(me.name)) OR c.phone = me.phone"
        " OR lower(c.email) = lower(me.email))"
        " ORDER BY c.created_at, c.contact_id LIMIT %s",
        (list(PLACEHOLDER_NAMES.values()), contact_id, principal.workspace_id, list(PLACEHOLDER_NAMES.values()),
         SUGGESTIONS),
    ).fetchall()
    items = [{"contact_id": str(row[0]), "name": row[1],
              "reasons": [r for r, hit in zip(("same_name", "same_phone", "same_email"), row[2:]) if hit]}
             for row in rows]
    return {"items": items}


@router.post("/contacts/{contact_id}/link-suggestions/confirm")
def confirm_link(contact_id: UUID, body: LinkRequest, principal: Contacts, hub: HubDep) -> dict[str, Any]:
    """The agent confirms it is one person: the other contact is merged into this one (the existing
    merge), so its channels, messages and timeline show here and its next messages land here."""
    hub.app.merge_contacts(principal.workspace_id, contact_id, body.contact_id, principal.staff_id, now())
    settle(hub)
    return {"contact_id": str(contact_id), "merged_contact_id": str(body.contact_id)}
