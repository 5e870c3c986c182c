"""Access tokens of a workspace's connected Meta accounts (pages, Instagram accounts, WhatsApp numbers).

Like the FHIR write-back token: each token is sealed (AES-256-GCM) under a key-vault data key of
the workspace's own, bound by the associated data to the workspace, platform and account; it is
never in an event, a log line or an API answer. Which workspace an account belongs to is decided
by the ``MetaAccount`` reservation aggregate; this table only holds what sending needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from adapters.key_vault import KeyVault

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS commhub_meta_accounts (
    platform text NOT NULL,
    account_id text NOT NULL,
    workspace_id uuid NOT NULL,
    sealed_token bytea NOT NULL,
    connected_at timestamptz NOT NULL,
    PRIMARY KEY (platform, account_id)
);
CREATE INDEX IF NOT EXISTS commhub_meta_accounts_by_workspace ON commhub_meta_accounts (workspace_id);
"""
MAX_TOKEN = 4_096


class AccessTokenInvalidError(ValueError):
    """The access token cannot be used."""


@dataclass(frozen=True)
class ConnectedAccount:
    platform: str
    account_id: str
    connected_at: datetime


def token_subject(workspace_id: UUID) -> UUID:
    """The key-vault subject whose data key seals this workspace's Meta tokens (no person's key)."""
    return uuid5(workspace_id, "meta-access-tokens")


def associated_data(workspace_id: UUID, platform: str, account_id: str) -> bytes:
    return b"commhub/meta-token/v1|%s|%s|%s" % (workspace_id.bytes, platform.encode(), account_id.encode())


def check_token(value: str) -> str:
    token = value.strip() if isinstance(value, str) else ""
    if not token or len(token) > MAX_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise AccessTokenInvalidError(f"access_token must be 1-{MAX_TOKEN} printable characters without spaces")
    return token


class MetaAccounts:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def setup(self) -> None:
        with self.vault.database.connect(autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)

    def save(self, workspace_id: UUID, platform: str, account_id: str, token: str, now: datetime) -> ConnectedAccount:
        """Store (or replace) the token; call only once the reservation is the workspace's."""
        secret = check_token(token)
        nonce = os.urandom(12)
        sealed = nonce + self.vault.sealer(token_subject(workspace_id), workspace_id).encrypt(
            nonce, secret.encode(), associated_data(workspace_id, platform, account_id))
        with self.vault.database.connection() as conn:
            conn.execute(
                "INSERT INTO commhub_meta_accounts VALUES (%s, %s, %s, %s, %s) ON CONFLICT (platform, account_id)"
                " DO UPDATE SET workspace_id = EXCLUDED.workspace_id, sealed_token = EXCLUDED.sealed_token,"
                " connected_at = EXCLUDED.connected_at", (platform, account_id, workspace_id, sealed, now))
        return ConnectedAccount(platform, account_id, now)

    def token(self, workspace_id: UUID, platform: str, account_id: str) -> str | None:
        with self.vault.database.connection() as conn:
            row = conn.execute("SELECT sealed_token FROM commhub_meta_accounts WHERE platform = %s AND account_id = %s"
                               " AND workspace_id = %s", (platform, account_id, workspace_id)).fetchone()
        key = self.vault.opener(token_subject(workspace_id)) if row is not None else None
        if row is None or key is None:
            return None
        sealed = bytes(row[0])
        return key.decrypt(sealed[:12], sealed[12:], associated_data(workspace_id, platform, account_id)).decode()

    def list(self, workspace_id: UUID) -> list[ConnectedAccount]:
        with self.vault.database.connection() as conn:
            rows = conn.execute("SELECT platform, account_id, connected_at FROM commhub_meta_accounts"
                                " WHERE workspace_id = %s ORDER BY platform, account_id", (workspace_id,)).fetchall()
        return [ConnectedAccount(*row) for row in rows]

    def delete(self, workspace_id: UUID, platform: str, account_id: str) -> bool:
        with self.vault.database.connection() as conn:
            return conn.execute("DELETE FROM commhub_meta_accounts WHERE platform = %s AND account_id = %s"
                                " AND workspace_id = %s", (platform, account_id, workspace_id)).rowcount > 0
