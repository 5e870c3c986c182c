"""Which routes an API key may call, by scope: one table of (method, path template) → scope.

A route not in the table is closed to every key (staff management, API keys themselves, privacy,
audit, settings, sessions, websockets), whatever its scopes.
"""

from __future__ import annotations

C, V, A, W = "/api/v1/contacts", "/api/v1/conversations", "/api/v1/appointments", "/api/v1/webhooks"
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", C): "contacts:read",
    ("POST", f"{C}/search"): "contacts:read",
    ("GET", f"{C}/{{contact_id}}"): "contacts:read",
    ("GET", f"{C}/{{contact_id}}/timeline"): "contacts:read",
    ("GET", f"{C}/{{contact_id}}/consents"): "contacts:read",
    ("POST", C): "contacts:write",
    ("PATCH", f"{C}/{{contact_id}}"): "contacts:write",
    ("POST", f"{C}/{{contact_id}}/notes"): "contacts:write",
    ("POST", f"{C}/{{contact_id}}/tags"): "contacts:write",
    ("POST", f"{C}/{{contact_id}}/consents"): "contacts:write",
    ("GET", V): "conversations:read",
    ("POST", f"{V}/search"): "conversations:read",
    ("GET", f"{V}/{{conversation_id}}"): "conversations:read",
    ("GET", f"{V}/{{conversation_id}}/messages"): "conversations:read",
    ("POST", f"{V}/{{conversation_id}}/reply"): "messages:send",
    ("POST", f"{C}/{{contact_id}}/conversations"): "messages:send",
    ("GET", A): "appointments:read",
    ("GET", f"{A}/{{appointment_id}}"): "appointments:read",
    ("POST", A): "appointments:write",
    **{("POST", f"{A}/{{appointment_id}}/{action}"): "appointments:write"
       for action in ("reschedule", "cancel", "confirm", "check-in", "complete", "no-show")},
    ("GET", W): "webhooks:manage",
    ("POST", W): "webhooks:manage",
    ("GET", f"{W}/{{subscription_id}}"): "webhooks:manage",
    ("PATCH", f"{W}/{{subscription_id}}"): "webhooks:manage",
    ("DELETE", f"{W}/{{subscription_id}}"): "webhooks:manage",
    ("POST", f"{W}/{{subscription_id}}/secret"): "webhooks:manage",
    ("GET", f"{W}/{{subscription_id}}/deliveries"): "webhooks:manage",
}


def scope_for(method: str, path: str) -> str | None:
    """The scope a key needs for this route, or None when no key may call it."""
    return ROUTE_SCOPES.get((method, path))
