"""``commhub privacy …`` (erase, status, verify, export, retention) and ``commhub audit verify``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import typer
from rich.console import Console

from adapters.signing import verify as verify_signature
from api import logs
from api.bootstrap import Hub, bootstrap
from api.settings import Settings
from domain.errors import DomainError
from domain.privacy import ErasureReason, ErasureRequest

privacy = typer.Typer(help="Erasure with certificates, subject export, retention.", no_args_is_help=True)
audit = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
console = Console()
WORKSPACE = typer.Option(..., "--workspace", "-w", help="Workspace slug or id.")


def register(app: typer.Typer) -> None:
    app.add_typer(privacy, name="privacy")
    app.add_typer(audit, name="audit")


def _hub() -> Hub:
    logs.configure("warning")
    return bootstrap(Settings.from_env())


def _workspace(hub: Hub, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        return hub.app.workspace_for_slug(value.strip().lower())


def _finish(hub: Hub, workspace_id: UUID, request: ErasureRequest, timeout: float = 120.0) -> ErasureRequest:
    """Run projections here too (safe beside running servers) until the erasure completes."""
    assert hub.privacy is not None
    deadline = time.monotonic() + timeout
    while request.status in ("requested", "shredded") and time.monotonic() < deadline:
        hub.projections.catch_up()
        request = hub.privacy.erasures.advance(workspace_id, request.id, wait=0.5)
    return request


def _fail(error: DomainError) -> None:
    console.print(f"[red]{type(error).__name__}[/]: {error}")
    raise typer.Exit(2)


@privacy.command("erase")
def erase(
    contact_id: UUID, workspace: str = WORKSPACE,
    reason: ErasureReason = typer.Option(ErasureReason.DATA_SUBJECT_REQUEST, help="Ground for the erasure."),
    reference: str = typer.Option(..., help="Your ticket or case number (never personal data)."),
    staff: UUID | None = typer.Option(None, help="Id of the staff member who asked for it."),
    certificate: Path | None = typer.Option(None, help="Where to write the certificate (default erasure-ID.json)."),
) -> None:
    """Erase a contact: legal-hold check, keys shredded, projections purged, signed certificate written."""
    with _hub() as hub:
        assert hub.privacy is not None
        try:
            workspace_id = _workspace(hub, workspace)
            request = hub.privacy.erasures.request(workspace_id, contact_id, reason=reason.value, reference=reference,
                                                   requested_by=staff, via="cli", wait=0)
        except DomainError as error:
            _fail(error)
        if request.status == "refused":
            console.print(f"[red]refused[/]: the contact is under legal hold (erasure {request.id} recorded as refused)")
            raise typer.Exit(1)
        request = _finish(hub, workspace_id, request)
        if request.certificate is None:
            console.print(f"erasure {request.id} is {request.status}; check later with `commhub privacy status`")
            raise typer.Exit(1)
        path = certificate or Path(f"erasure-{request.id}.json")
        path.write_text(json.dumps(request.certificate, indent=1))
        document = request.certificate["certificate"]
        console.print(f"erasure {request.id} completed: {document['events_unreadable']} events made unreadable, "
                      f"{document['files_deleted']} files deleted; certificate written to {path}")


@privacy.command("status")
def status(erasure_id: UUID, workspace: str = WORKSPACE) -> None:
    """Where an erasure request is (and complete it if only the projections were missing)."""
    with _hub() as hub:
        assert hub.privacy is not None
        try:
            workspace_id = _workspace(hub, workspace)
            request = _finish(hub, workspace_id, hub.privacy.erasures.advance(workspace_id, erasure_id, wait=0), 30)
        except DomainError as error:
            _fail(error)
        console.print(f"erasure {request.id}: {request.status}" + (f" ({request.refusal})" if request.refusal else ""))


@privacy.command("verify")
def verify(
    certificate: Path,
    public_key: str | None = typer.Option(None, help="The workspace's public key (base64), to check offline. "
                                                     "Without it the key is read from the database."),
) -> None:
    """Check an erasure certificate's signature: exit code 0 if valid, 1 if not."""
    try:
        signed: Any = json.loads(certificate.read_text())
    except (OSError, ValueError):
        console.print("INVALID: the file cannot be read as a JSON certificate")
        raise typer.Exit(1)
    if public_key is None:
        try:
            workspace_id = UUID(signed["certificate"]["workspace_id"])
        except (KeyError, TypeError, ValueError):
            console.print("INVALID: the certificate names no workspace")
            raise typer.Exit(1)
        with _hub() as hub:
            assert hub.privacy is not None
            public_key = hub.privacy.signer.public_key(workspace_id)
    valid, why = verify_signature(signed, public_key)
    if not valid:
        console.print(f"INVALID: {why}")
        raise typer.Exit(1)
    document = signed["certificate"]
    console.print(f"VALID: erasure {document['erasure_id']} of subject {document['subject_id']} completed "
                  f"{document['completed_at']}, signed by workspace key {signed['key_id']}")


@privacy.command("export")
def export(contact_id: UUID, workspace: str = WORKSPACE,
           out: Path = typer.Option(..., help="Zip file to write."),
           staff: UUID | None = typer.Option(None, help="Id of the staff member who asked for it.")) -> None:
    """Write everything about a contact to a zip (subject.json + attachments/). Audited."""
    with _hub() as hub:
        assert hub.privacy is not None
        try:
            workspace_id = _workspace(hub, workspace)
            export_id, at = uuid4(), datetime.now(timezone.utc)
            bundle = hub.privacy.export.gather(workspace_id, contact_id, export_id, at)
        except DomainError as error:
            _fail(error)
        hub.privacy.audit.record(workspace_id, "contact.exported", actor_id=staff, via="cli",
                                 subject_ids=bundle["subject_ids"], target_id=export_id, now=at,
                                 count=sum(len(t["messages"]) for t in bundle["conversations"]))
        with out.open("wb") as handle:
            for chunk in hub.privacy.export.stream(workspace_id, bundle):
                handle.write(chunk)
    console.print(f"export {export_id} written to {out}")


@privacy.command("retention")
def retention(workspace: str = WORKSPACE,
              apply: bool = typer.Option(False, "--apply/--dry-run", help="Report only (default), or do it.")) -> None:
    """Show what the workspace's retention policy would erase and delete now; --apply does it."""
    with _hub() as hub:
        assert hub.privacy is not None
        try:
            workspace_id = _workspace(hub, workspace)
        except DomainError as error:
            _fail(error)
        plan = hub.privacy.retention.plan(workspace_id, datetime.now(timezone.utc))
        report = plan.report()
        if apply:
            done = [_finish(hub, workspace_id, r) for r in hub.privacy.retention.apply(plan, via="cli", wait=0)]
            hub.projections.catch_up()
            report["erasures"] = [{"erasure_id": str(r.id), "contact_id": str(r.contact_id), "status": r.status}
                                  for r in done]
        print(json.dumps(report, indent=1))


@audit.command("verify")
def audit_verify(workspace: str | None = typer.Option(None, "--workspace", "-w", help="One workspace (default all).")) -> None:
    """Walk every workspace's hash chain; exit code 1 if any entry was altered, removed or reordered."""
    with _hub() as hub:
        assert hub.privacy is not None
        try:
            chosen = [_workspace(hub, workspace)] if workspace else hub.privacy.audit.workspaces()
        except DomainError as error:
            _fail(error)
        broken = 0
        for workspace_id in chosen:
            report = hub.privacy.audit.verify(workspace_id)
            if report.intact:
                console.print(f"{workspace_id}: intact, {report.entries} entries, head {report.head}")
            else:
                broken += 1
                console.print(f"[red]{workspace_id}: BROKEN[/] ({report.entries} entries)")
                for problem in report.problems:
                    console.print(f"  - {problem}")
    if broken:
        raise typer.Exit(1)
