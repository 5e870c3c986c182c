"""Web chat widget settings (owner, admin): public key, allowed origins, privacy policy link and
identity secrets; and the agent's typing indicator for a conversation (inbox roles)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from fastapi import Request, Response

from api.deps import HubDep, Inbox, Settings_, now, settle
from api.present import plain
from api.routing import APIRouter
from api.schemas import WidgetSecretRotation, WidgetSettingsRequest
from api.widget_gateway import WidgetGateway
from domain.widget import WebWidget

router = APIRouter(prefix="/api/v1", tags=["widget"])


def _present(widget: WebWidget, request: Request) -> dict[str, Any]:
    script = request.url_for("static", path="widget.js")
    return plain({
        "public_key": widget.public_key, "allowed_origins": widget.allowed_origins,
        "privacy_policy_url": widget.privacy_policy_url,
        "secrets": [{"secret_id": s["secret_id"], "created_at": s["created_at"], "valid_until": s["valid_until"]}
                    for s in widget.current_secrets],
        "embed": f'<script src="{script}" data-workspace="{widget.public_key}" async></script>',
    })


@router.get("/widget")
def get_widget(principal: Settings_, hub: HubDep, request: Request) -> dict[str, Any]:
    """The widget's settings and the script tag to embed (secrets are listed without their values)."""
    return _present(hub.app.get_widget(principal.workspace_id), request)


@router.put("/widget")
def configure_widget(body: WidgetSettingsRequest, principal: Settings_, hub: HubDep, request: Request) -> dict[str, Any]:
    """Set allowed origins and the privacy policy URL; the first call enables the widget and
    generates its public key (random, not derived from the workspace)."""
    widget = hub.app.configure_widget(
        principal.workspace_id, public_key=WidgetGateway.new_public_key(), allowed_origins=body.allowed_origins,
        privacy_policy_url=body.privacy_policy_url, actor_id=principal.staff_id, now=now(),
    )
    settle(hub)
    return _present(widget, request)


@router.post("/widget/secrets", status_code=201)
def rotate_secret(body: WidgetSecretRotation, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """A new identity-verification secret, shown only in this answer. The previous one keeps
    verifying for ``grace_seconds`` so sessions signed with it keep working."""
    secret_id, secret = uuid4(), secrets.token_urlsafe(32)
    at = now()
    hub.app.rotate_widget_secret(principal.workspace_id, secret_id=secret_id, secret=secret,
                                 grace=timedelta(seconds=body.grace_seconds), actor_id=principal.staff_id, now=at)
    settle(hub)
    return {"secret_id": str(secret_id), "secret": secret, "created_at": at.isoformat(),
            "previous_valid_until": (at + timedelta(seconds=body.grace_seconds)).isoformat()}


@router.post("/conversations/{conversation_id}/typing", status_code=204)
def agent_typing(conversation_id: UUID, principal: Inbox, hub: HubDep, request: Request) -> Response:
    """The agent is typing a reply: the visitor's widget shows it (web chat only; ids only, never text)."""
    conversation = hub.app.get_conversation(principal.workspace_id, conversation_id)
    if conversation.channel == "webchat":
        request.app.state.live.publish_typing(principal.workspace_id, conversation.id, "agent")
    return Response(status_code=204)
