"""The privacy parts of a running hub: audit log, file store, signing keys, erasure workflow,
subject export and retention (with its worker). Built by ``api.bootstrap``."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.audit_log import AuditLog
from adapters.sealed_files import SealedFiles
from adapters.key_vault import KeyVault
from adapters.postgres import Database
from adapters.signing import WorkspaceSigner
from api.erasure import ErasureWorkflow
from api.export import SubjectExport
from api.retention import Retention, RetentionWorker
from domain.application import CommHub
from projections.audit import Audit
from projections.files import Files
from projections.privacy import Erasures
from projections.runner import ProjectionRunner


def privacy_views() -> list[object]:
    return [Files(), Audit(), Erasures()]


@dataclass
class Privacy:
    audit: AuditLog
    files: SealedFiles
    signer: WorkspaceSigner
    erasures: ErasureWorkflow
    export: SubjectExport
    retention: Retention
    worker: RetentionWorker

    @classmethod
    def build(cls, app: CommHub, database: Database, vault: KeyVault, runner: ProjectionRunner, *,
              erasure_wait_seconds: float, retention_interval_seconds: float) -> Privacy:
        audit = AuditLog(app, database)
        audit.setup()
        files = SealedFiles(vault)
        files.setup()
        signer = WorkspaceSigner(vault)
        erasures = ErasureWorkflow(app, database, runner, files, signer, audit, wait_seconds=erasure_wait_seconds)
        retention = Retention(erasures)
        return cls(audit, files, signer, erasures, SubjectExport(app, database, files), retention,
                   RetentionWorker(retention, retention_interval_seconds))
