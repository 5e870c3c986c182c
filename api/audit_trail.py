"""Audits the API: every successful read of personal data and every change (contacts,
conversations, staff, settings, privacy) appends an audit entry before the answer leaves.

One table maps each route (method + path template) to an action; subjects come from the path
(a contact, or a conversation's contact) or, for lists and searches, from the contact ids in the
answer. Entries name ids, the route and a count — never what was read.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import anyio

from adapters.audit_log import AuditLog
from adapters.postgres import Database
from api import problems

log = logging.getLogger(__name__)

C, V = "/api/v1/contacts", "/api/v1/conversations"
ROUTES: dict[tuple[str, str], str] = {
    # Reads of personal data
    ("GET", C): "contacts.listed",
    ("POST", f"{C}/search"): "contacts.searched",
    ("GET", f"{C}/{{contact_id}}"): "contact.viewed",
    ("GET", f"{C}/{{contact_id}}/timeline"): "contact.timeline_viewed",
    ("GET", f"{C}/{{contact_id}}/consents"): "contact.consents_viewed",
    ("GET", V): "conversations.listed",
    ("POST", f"{V}/search"): "conversations.searched",
    ("GET", f"{V}/{{conversation_id}}"): "conversation.viewed",
    ("GET", f"{V}/{{conversation_id}}/messages"): "conversation.messages_viewed",
    ("GET", "/api/v1/staff"): "staff.listed",
    ("GET", "/api/v1/appointments"): "appointments.listed",
    ("GET", "/api/v1/appointments/{appointment_id}"): "appointment.viewed",
    ("GET", "/api/v1/audit"): "audit.viewed",
    # Changes of personal data
    ("POST", C): "contact.created",
    ("PATCH", f"{C}/{{contact_id}}"): "contact.rectified",
    ("POST", f"{C}/{{contact_id}}/merge"): "contact.merged",
    ("POST", f"{C}/{{contact_id}}/notes"): "contact.note_added",
    ("POST", f"{C}/{{contact_id}}/tags"): "contact.tags_changed",
    ("POST", f"{C}/{{contact_id}}/consents"): "contact.consent_recorded",
    ("POST", f"{C}/{{contact_id}}/restriction"): "contact.restriction_changed",
    ("POST", f"{C}/{{contact_id}}/objection"): "contact.objection_changed",
    ("POST", f"{C}/{{contact_id}}/legal-hold"): "contact.legal_hold_changed",
    ("POST", f"{V}/{{conversation_id}}/reply"): "conversation.replied",
    ("POST", f"{V}/{{conversation_id}}/notes"): "conversation.note_added",
    ("POST", f"{V}/{{conversation_id}}/labels"): "conversation.labels_changed",
    ("POST", "/api/v1/sandbox/inbound"): "sandbox.inbound",
    ("POST", "/api/v1/appointments"): "appointment.booked",
    # Sessions, staff and settings (logins are recorded by the login route, failures included)
    ("POST", "/api/v1/auth/logout"): "auth.logout",
    ("POST", "/api/v1/staff"): "staff.created",
    ("PATCH", "/api/v1/staff/{staff_id}"): "staff.role_changed",
    ("POST", "/api/v1/canned-responses"): "settings.canned_response_saved",
    ("PUT", "/api/v1/canned-responses/{response_id}"): "settings.canned_response_saved",
    ("DELETE", "/api/v1/canned-responses/{response_id}"): "settings.canned_response_deleted",
    ("PUT", "/api/v1/privacy/retention"): "settings.retention_policy_changed",
    # Integrations: keys and webhook subscriptions (every other call made with a key is audited too)
    ("POST", "/api/v1/api-keys"): "api_key.issued",
    ("POST", "/api/v1/api-keys/{key_id}/revoke"): "api_key.revoked",
    ("POST", "/api/v1/webhooks"): "webhook.subscribed",
    ("PATCH", "/api/v1/webhooks/{subscription_id}"): "webhook.changed",
    ("DELETE", "/api/v1/webhooks/{subscription_id}"): "webhook.deleted",
    ("POST", "/api/v1/webhooks/{subscription_id}/secret"): "webhook.secret_rotated",
    ("PUT", "/api/v1/caldav/connections/{staff_id}"): "settings.calendar_connected",
    ("DELETE", "/api/v1/caldav/connections/{staff_id}"): "settings.calendar_disconnected",
    ("PUT", "/api/v1/caldav/settings"): "settings.calendar_sync_changed",
}
KEY_USE = "api_key.used"
"""The action of a call made with an API key to a route not listed above (every key use is audited)."""
TARGETS = ("staff_id", "response_id", "erasure_id", "appointment_id", "key_id", "subscription_id")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


class AuditMiddleware:
    """Holds the answer of an audited route until its audit entry is stored; if it cannot be
    stored, the caller gets 503 instead of unaudited data."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: list[Any] = []

        async def holding_send(message: Any) -> None:
            route = scope.get("route")
            action = _action(scope["method"], getattr(route, "path", ""), scope.get("state", {}).get("principal"))
            if action is None and not held:
                await send(message)
                return
            held.append(message)

        await self.app(scope, receive, holding_send)
        if not held:
            return
        status = held[0].get("status", 500)
        if status < 400:
            try:
                await self._record(scope, held)
            except Exception as error:
                log.error("audit entry could not be stored (%s); answer withheld", type(error).__name__)
                response = problems.problem(503, "Service unavailable", "the audit log cannot be written; try again")
                return await response(scope, receive, send)
        for message in held:
            await send(message)

    async def _record(self, scope: Any, held: list[Any]) -> None:
        principal = scope.get("state", {}).get("principal")
        if principal is None:
            return  # the route refused the caller before reading anything
        hub = scope["app"].state.hub
        route = scope["route"]
        params = scope.get("path_params", {})
        body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
        if "contact_id" not in params and "conversation_id" in params:  # its contact is looked up
            subjects, count = await anyio.to_thread.run_sync(self._subjects, hub.database, params, body)
        else:
            subjects, count = self._subjects(hub.database, params, body)  # no I/O: stays on the event loop
        target = next((_uuid(params[t]) for t in TARGETS if t in params), None)
        if target is None and scope["method"] == "POST":  # what a create route made
            created = _json(body)
            target = next((_uuid(created[t]) for t in TARGETS if created.get(t)), None)
        audit: AuditLog = hub.privacy.audit
        await audit.record_async(principal.workspace_id, _action(scope["method"], route.path, principal) or KEY_USE,
                                 actor_id=principal.staff_id, via=principal.via, subject_ids=subjects,
                                 target_id=target, route=f"{scope['method']} {route.path}", count=count, now=_now())

    @staticmethod
    def _subjects(database: Database, params: dict[str, Any], body: bytes) -> tuple[list[UUID], int | None]:
        if "contact_id" in params:
            return [UUID(str(params["contact_id"]))], None
        if "conversation_id" in params:
            with database.connection(autocommit=True) as conn:
                row = conn.execute("SELECT contact_id FROM commhub_inbox WHERE conversation_id = %s",
                                   (params["conversation_id"],)).fetchone()
            return ([row[0]] if row else []), None
        data = _json(body)
        items = data.get("items")
        if isinstance(items, list):
            found = [_uuid(i.get("contact_id")) for i in items if isinstance(i, dict) and i.get("contact_id")]
            return [s for s in found if s is not None], len(items)
        contact = _uuid(data.get("contact_id")) if data.get("contact_id") else None
        return ([contact] if contact else []), None


def _action(method: str, path: str, principal: Any) -> str | None:
    action = ROUTES.get((method, path))
    if action is None and getattr(principal, "api_key_id", None) is not None:
        return KEY_USE
    return action


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
