"""Connected Meta accounts of a workspace (admins): Facebook pages, Instagram accounts and WhatsApp
numbers whose webhooks route here, each with its access token (write-only: never shown again)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import HTTPException
from pydantic import Field

from adapters.meta_accounts import AccessTokenInvalidError, MetaAccounts, check_token
from api.bootstrap import Hub
from api.deps import HubDep, Settings_, now
from api.routing import APIRouter
from api.schemas import Body
from domain.social_errors import MetaAccountNotConnectedError

router = APIRouter(prefix="/api/v1/settings/meta", tags=["meta"])
WEBHOOK_PATH = "/webhooks/meta"
AccountId = Field(pattern=r"^[0-9]{1,32}$", description="the page id, Instagram account id or WhatsApp phone number id")


class AccountRequest(Body):
    platform: Literal["messenger", "instagram", "whatsapp"]
    account_id: str = AccountId
    access_token: str = Field(min_length=1, max_length=4096, description="a page or system-user token; write-only")


class AccountRef(Body):
    platform: Literal["messenger", "instagram", "whatsapp"]
    account_id: str = AccountId


def accounts(hub: Hub) -> MetaAccounts:
    return hub.extras["meta"].accounts  # type: ignore[no-any-return]


@router.get("/accounts")
def list_accounts(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    items = [{"platform": a.platform, "account_id": a.account_id, "connected_at": a.connected_at.isoformat(),
              "token_set": True} for a in accounts(hub).list(principal.workspace_id)]
    return {"items": items, "webhook_url": hub.settings.public_base_url + WEBHOOK_PATH,
            "webhooks_verified": hub.settings.meta.app_secret is not None,
            "sandbox": not hub.settings.meta.enabled}


@router.post("/accounts", status_code=201)
def connect_account(body: AccountRequest, principal: Settings_, hub: HubDep) -> dict[str, Any]:
    """Route this account's webhooks to the workspace and send through it (409 if another workspace has it)."""
    try:
        check_token(body.access_token)
    except AccessTokenInvalidError as error:
        raise HTTPException(422, str(error)) from None
    at = now()
    hub.app.connect_meta_account(principal.workspace_id, body.platform, body.account_id, at)
    saved = accounts(hub).save(principal.workspace_id, body.platform, body.account_id, body.access_token, at)
    return {"platform": saved.platform, "account_id": saved.account_id,
            "connected_at": saved.connected_at.isoformat(), "token_set": True}


@router.post("/accounts/disconnect", status_code=204)
def disconnect_account(body: AccountRef, principal: Settings_, hub: HubDep) -> None:
    """Stop routing this account here and forget its token (its conversations stay)."""
    known = any(a.platform == body.platform and a.account_id == body.account_id
                for a in accounts(hub).list(principal.workspace_id))
    if not known:
        raise MetaAccountNotConnectedError("this workspace has not connected this account")
    hub.app.disconnect_meta_account(principal.workspace_id, body.platform, body.account_id, now())
    accounts(hub).delete(principal.workspace_id, body.platform, body.account_id)
