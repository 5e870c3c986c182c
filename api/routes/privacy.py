"""Privacy workflows (compliance and owner roles): erasure with certificates, legal holds,
the subject export, retention policies, and the workspace's public signing key."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from adapters.signing import key_id
from adapters.tokens import Principal
from api import problems
from api.bootstrap import Hub
from api.deps import Conn, HubDep, caught_up, now, require, settle
from api.present import plain
from api.routing import APIRouter
from api.schemas import Body
from domain.errors import ContactUnderLegalHoldError
from domain.privacy import ErasureReason, ErasureRequest
from projections.privacy import list_erasures

router = APIRouter(prefix="/api/v1", tags=["privacy"])
Privacy = Annotated[Principal, Depends(require("privacy"))]
REFERENCE = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/#-]+$",
                  description="Your ticket or case number; never personal data.")


class ErasureCreate(Body):
    contact_id: UUID
    reason: ErasureReason
    reference: str = REFERENCE


class LegalHoldRequest(Body):
    held: bool
    reference: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/#-]+$")


class RetentionRequest(Body):
    erase_inactive_after_days: int | None = Field(default=None, ge=1, le=36_500)
    delete_bodies_after_days: int | None = Field(default=None, ge=1, le=36_500)


class RetentionRun(Body):
    apply: bool = False


def _parts(hub: Hub) -> Any:
    assert hub.privacy is not None
    return hub.privacy


def present_erasure(request: ErasureRequest) -> dict[str, Any]:
    return plain({
        "erasure_id": request.id, "contact_id": request.contact_id, "status": request.status,
        "refusal": request.refusal, "reason": request.reason, "reference": request.reference,
        "requested_by": request.requested_by, "requested_at": request.requested_at,
        "keys_shredded_at": request.shredded_at, "completed_at": request.completed_at,
        "subject_ids": request.subject_ids, "certificate": request.certificate,
    })


@router.post("/privacy/erasures", status_code=201)
def request_erasure(body: ErasureCreate, principal: Privacy, hub: HubDep) -> Any:
    """Erase a contact (and the duplicates merged into it). Answers 201 with the signed certificate
    once every projection has purged them, 202 if that is still under way (poll the status), and
    409 if the contact is under legal hold (the refused request is recorded)."""
    request = _parts(hub).erasures.request(principal.workspace_id, body.contact_id, reason=body.reason.value,
                                           reference=body.reference, requested_by=principal.staff_id)
    settle(hub)
    if request.status == "refused":
        error = ContactUnderLegalHoldError("the contact is under legal hold; lift the hold before erasing")
        return problems.problem(409, "Contact is under legal hold", str(error), code=type(error).__name__,
                                erasure_id=str(request.id))
    return JSONResponse(present_erasure(request), status_code=201 if request.status == "completed" else 202)


@router.get("/privacy/erasures")
def erasures(principal: Privacy, conn: Conn) -> dict[str, Any]:
    return {"items": plain(list_erasures(conn, principal.workspace_id))}


@router.get("/privacy/erasures/{erasure_id}")
def erasure_status(erasure_id: UUID, principal: Privacy, hub: HubDep) -> dict[str, Any]:
    """Where the request is; a request waiting for projections is completed here once they are done."""
    return present_erasure(_parts(hub).erasures.advance(principal.workspace_id, erasure_id, wait=0))


@router.get("/privacy/erasures/{erasure_id}/certificate")
def erasure_certificate(erasure_id: UUID, principal: Privacy, hub: HubDep) -> Any:
    """The signed certificate, as a file to keep; check it with ``commhub privacy verify FILE``."""
    request = _parts(hub).erasures.advance(principal.workspace_id, erasure_id, wait=0)
    if request.certificate is None:
        return problems.problem(409, "Erasure is not completed", f"the request is {request.status}")
    return JSONResponse(request.certificate, headers={
        "Content-Disposition": f'attachment; filename="erasure-{request.id}.json"'})


@router.get("/privacy/signing-key")
def signing_key(principal: Privacy, hub: HubDep) -> dict[str, Any]:
    """The workspace's Ed25519 public key, which signs its erasure certificates."""
    public = _parts(hub).signer.public_key(principal.workspace_id)
    return {"workspace_id": str(principal.workspace_id), "algorithm": "Ed25519", "public_key": public,
            "key_id": key_id(public)}


@router.post("/contacts/{contact_id}/legal-hold")
def legal_hold(contact_id: UUID, body: LegalHoldRequest, principal: Privacy, hub: HubDep) -> dict[str, Any]:
    """Place (``held: true`` with a case ``reference``) or lift a legal hold; a held contact cannot be erased."""
    if body.held:
        if not body.reference:
            return problems.problem(422, "Request is not valid", "a legal hold needs a reference")  # type: ignore[return-value]
        hub.app.place_legal_hold(principal.workspace_id, contact_id, body.reference, principal.staff_id, now())
    else:
        hub.app.lift_legal_hold(principal.workspace_id, contact_id, principal.staff_id, now())
    settle(hub)
    contact = hub.app.survivor_of(principal.workspace_id, contact_id)
    return {"contact_id": str(contact.id), "legal_hold": contact.legal_hold}


@router.get("/contacts/{contact_id}/export")
def export_contact(contact_id: UUID, principal: Privacy, hub: HubDep) -> StreamingResponse:
    """Everything about the contact as a zip (subject.json and attachments/), streamed. Audited."""
    parts = _parts(hub)
    export_id, at = uuid4(), now()
    caught_up(hub)  # its access log includes the audit entries of the calls just before it
    bundle = parts.export.gather(principal.workspace_id, contact_id, export_id, at)
    parts.audit.record(principal.workspace_id, "contact.exported", actor_id=principal.staff_id, via="api",
                       subject_ids=bundle["subject_ids"], target_id=export_id,
                       route="GET /api/v1/contacts/{contact_id}/export", now=at,
                       count=sum(len(t["messages"]) for t in bundle["conversations"]))
    return StreamingResponse(parts.export.stream(principal.workspace_id, bundle), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="export-{export_id}.zip"'})


@router.get("/privacy/retention")
def retention_policy(principal: Privacy, hub: HubDep) -> dict[str, Any]:
    policy = hub.app.retention_policy(principal.workspace_id)
    return {"erase_inactive_after_days": policy.erase_inactive_after_days if policy else None,
            "delete_bodies_after_days": policy.delete_bodies_after_days if policy else None}


@router.put("/privacy/retention")
def set_retention_policy(body: RetentionRequest, principal: Privacy, hub: HubDep) -> dict[str, Any]:
    """Set the periods (null: keep forever). Nothing is erased until a run applies the policy."""
    hub.app.set_retention_policy(principal.workspace_id, erase_inactive_after_days=body.erase_inactive_after_days,
                                 delete_bodies_after_days=body.delete_bodies_after_days,
                                 actor_id=principal.staff_id, now=now())
    settle(hub)
    return retention_policy(principal, hub)


@router.post("/privacy/retention/run")
def run_retention(body: RetentionRun, principal: Privacy, hub: HubDep) -> dict[str, Any]:
    """The dry-run report of what the policy would do now; with ``apply: true`` it is done."""
    parts = _parts(hub)
    plan = parts.retention.plan(principal.workspace_id, datetime.now(timezone.utc))
    report = plan.report()
    if body.apply:
        done = parts.retention.apply(plan, via="api", actor_id=principal.staff_id)
        settle(hub)
        report["erasures"] = [present_erasure(r) for r in done]
    return report
