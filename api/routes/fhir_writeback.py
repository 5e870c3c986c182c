"""Writing appointment changes back to the FHIR system they came from: the workspace's setting
(base URL and bearer token; the token is write-only) and the state of the changes queued."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from pydantic import Field

from adapters.destinations import DestinationRefusedError, check_destination
from adapters.fhir_integrations import FhirIntegrations, FhirSettingInvalidError, check_base_url
from api.bootstrap import Hub
from api.deps import HubDep, Settings_, now
from api.problems import problem
from api.routing import APIRouter
from api.schemas import Body

router = APIRouter(prefix="/api/v1/integrations/fhir/write-back", tags=["calendar"])


class WriteBackSetting(Body):
    base_url: str = Field(max_length=500, description="The source's FHIR R4 base, e.g. https://ehr.example/fhir")
    token: str = Field(max_length=4096, description="Bearer token commhub sends; never shown again")


def integrations(hub: Hub) -> FhirIntegrations:
    return hub.extras["fhir_integrations"]  # type: ignore[no-any-return]


@router.put("", response_model=None)
def save_setting(body: WriteBackSetting, principal: Settings_, hub: HubDep) -> dict[str, Any] | JSONResponse:
    """Turn write-back on (or change it): later confirmations, cancellations, check-ins, completions
    and no-shows of appointments that came through the FHIR webhook are PUT to ``{base_url}/Appointment/{id}``.
    A base URL whose host resolves to a private, loopback or link-local address is refused (422) unless
    the operator set ``COMMHUB_FHIR_ALLOW_PRIVATE=on``."""
    try:
        check_destination(check_base_url(body.base_url), hub.settings.fhir_allow_private)
        saved = integrations(hub).save(principal.workspace_id, body.base_url, body.token, now())
    except FhirSettingInvalidError as error:
        return problem(422, "FHIR write-back setting is not valid", str(error), code="fhir_setting_invalid")
    except DestinationRefusedError:
        return problem(422, "FHIR server cannot be reached from here",
                       "the base URL's host is a private, loopback or link-local address, which write-backs may"
                       " not reach (COMMHUB_FHIR_ALLOW_PRIVATE=on allows it)", code="fhir_destination_refused")
    return {"base_url": saved.base_url, "token_set": True, "updated_at": saved.updated_at.isoformat()}


@router.get("")
def read_setting(principal: Settings_, hub: HubDep) -> dict[str, Any]:
    saved = integrations(hub).get(principal.workspace_id)
    if saved is None:
        raise HTTPException(404, "FHIR write-back is not set up for this workspace")
    return {"base_url": saved.base_url, "token_set": True, "updated_at": saved.updated_at.isoformat()}


@router.delete("", status_code=204)
def delete_setting(principal: Settings_, hub: HubDep) -> None:
    if not integrations(hub).delete(principal.workspace_id):
        raise HTTPException(404, "FHIR write-back is not set up for this workspace")
