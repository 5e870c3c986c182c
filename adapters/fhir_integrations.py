"""Per-workspace FHIR write-back settings: the source system's FHIR base URL and its bearer token.

The token is sealed (AES-256-GCM) under a key-vault data key of its own per workspace, bound to
the workspace by the associated data; it is never in an event, a log line or an API answer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_fhir_integrations (
    workspace_id uuid PRIMARY KEY,
    base_url text NOT NULL,
    sealed_token bytea NOT NULL,
    updated_at timestamptz NOT NULL
);
"""
MAX_TOKEN = 4_096


class FhirSettingInvalidError(ValueError):
    """The base URL or the token cannot be used to write back."""


@dataclass(frozen=True)
class FhirIntegration:
    workspace_id: UUID
    base_url: str
    token: str
    updated_at: datetime


def token_subject(workspace_id: UUID) -> UUID:
    """The key-vault subject whose data key seals this workspace's token (no person's key)."""
    return uuid5(workspace_id, "fhir-write-back-token")


def associated_data(workspace_id: UUID) -> bytes:
    return b"commhub/fhir-token/v1|" + workspace_id.bytes


def check_base_url(value: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or len(url) > 500:
        raise FhirSettingInvalidError("base_url must be an http(s) URL without credentials, query or fragment")
    return url


def check_token(value: str) -> str:
    token = value.strip()
    if not token or len(token) > MAX_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise FhirSettingInvalidError(f"token must be 1-{MAX_TOKEN} printable characters without spaces")
    return token


class FhirIntegrations:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def setup(self) -> None:
        with self.vault.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def save(self, workspace_id: UUID, base_url: str, token: str, now: datetime) -> FhirIntegration:
        url, secret = check_base_url(base_url), check_token(token)
        nonce = os.urandom(12)
        sealed = nonce + self.vault.sealer(token_subject(workspace_id), workspace_id).encrypt(
            nonce, secret.encode(), associated_data(workspace_id))
        with self.vault.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_fhir_integrations VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id)"
                " DO UPDATE SET base_url = EXCLUDED.base_url, sealed_token = EXCLUDED.sealed_token,"
                " updated_at = EXCLUDED.updated_at", (workspace_id, url, sealed, now))
        return FhirIntegration(workspace_id, url, secret, now)

    def get(self, workspace_id: UUID) -> FhirIntegration | None:
        with self.vault.database.connection() as conn:
            row = conn.execute("SELECT base_url, sealed_token, updated_at FROM commhub_fhir_integrations"
                               " WHERE workspace_id = %s", (workspace_id,)).fetchone()
        if row is None:
            return None
        base_url, sealed, updated_at = row
        key = self.vault.opener(token_subject(workspace_id))
        if key is None:
            return None
        token = key.decrypt(bytes(sealed[:12]), bytes(sealed[12:]), associated_data(workspace_id)).decode()
        return FhirIntegration(workspace_id, base_url, token, updated_at)

    def delete(self, workspace_id: UUID) -> bool:
        with self.vault.database.connection() as conn:
            return conn.execute("DELETE FROM commhub_fhir_integrations WHERE workspace_id = %s",
                                (workspace_id,)).rowcount > 0
