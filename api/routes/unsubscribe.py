"""One-click unsubscribe (RFC 8058): the link in an email's List-Unsubscribe header.

POST withdraws email marketing consent at once, with no login (mail providers call it for the
user). GET only shows a page with a confirm button, so link scanners never unsubscribe anyone.
"""

from __future__ import annotations

import html

from fastapi.responses import HTMLResponse

from api.routing import APIRouter
from api import problems
from api.deps import HubDep, now, settle
from domain.errors import ContactErasedError

router = APIRouter(tags=["email"])
PAGE_POLICY = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width"></head><body><main><h1>{html.escape(title)}</h1>'
        f"{body}</main></body></html>", headers={"Content-Security-Policy": PAGE_POLICY})


@router.get("/unsubscribe/{token}", include_in_schema=False)
def confirm_page(token: str, hub: HubDep) -> object:
    found = hub.extras["email"].links.verify(token)
    if found is None:
        return problems.problem(404, "Unsubscribe link is not valid", "use the link from a recent email")
    workspace = hub.app.get_workspace(found[0])
    return _page("Unsubscribe", f"<p>Stop marketing email from {html.escape(workspace.name)}?</p>"
                 '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
                 '<button type="submit">Unsubscribe</button></form>')


@router.post("/unsubscribe/{token}", include_in_schema=False)
def unsubscribe(token: str, hub: HubDep) -> object:
    """The body (``List-Unsubscribe=One-Click``, RFC 8058) is not needed: the signed token says it all."""
    found = hub.extras["email"].links.verify(token)
    if found is None:
        return problems.problem(404, "Unsubscribe link is not valid", "use the link from a recent email")
    workspace_id, contact_id, purpose = found
    try:
        contact = hub.app.get_contact(workspace_id, contact_id)
        consent = contact.consents.get(f"email:{purpose}") if isinstance(contact.consents, dict) else None
        if consent is None or consent["granted"]:
            hub.app.withdraw_consent(workspace_id, contact_id, channel="email", purpose=purpose,
                                     source="one-click unsubscribe link (RFC 8058)",
                                     wording="List-Unsubscribe=One-Click", actor_id=None, now=now())
            settle(hub)
    except ContactErasedError:
        pass  # nothing will ever be sent to an erased contact
    workspace = hub.app.get_workspace(workspace_id)
    return _page("Unsubscribed", f"<p>You will no longer receive marketing email from {html.escape(workspace.name)}.</p>")
