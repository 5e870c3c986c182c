"""Signed one-click unsubscribe links (RFC 8058): ids and an HMAC in the URL, no personal data.

The MAC key derives from the workspace's blind-index key in the vault: a server secret shared by
every process, never in configuration files, and different for every workspace.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from uuid import UUID

from adapters.key_vault import KeyVault

PURPOSES = ("marketing", "transactional")
MAC_BYTES = 16  # 128 bits: unguessable


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeLinks:
    def __init__(self, vault: KeyVault, base_url: str, workspace_exists: Callable[[UUID], bool]) -> None:
        self.vault = vault
        self.base_url = base_url.rstrip("/")
        self.workspace_exists = workspace_exists

    def _mac(self, payload: bytes, workspace_id: UUID) -> bytes:
        key = hmac.new(self.vault.index_key(workspace_id), b"commhub/unsubscribe/v1", hashlib.sha256).digest()
        return hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def token(self, workspace_id: UUID, contact_id: UUID, purpose: str = "marketing") -> str:
        payload = workspace_id.bytes + contact_id.bytes + bytes([PURPOSES.index(purpose)])
        return f"{_b64(payload)}.{_b64(self._mac(payload, workspace_id))}"

    def url(self, workspace_id: UUID, contact_id: UUID, purpose: str = "marketing") -> str:
        return f"{self.base_url}/unsubscribe/{self.token(workspace_id, contact_id, purpose)}"

    def verify(self, token: str) -> tuple[UUID, UUID, str] | None:
        """(workspace id, contact id, purpose) of a genuine token; None for anything else."""
        try:
            encoded_payload, encoded_mac = token.split(".")
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except (ValueError, binascii.Error):
            return None
        if len(payload) != 33 or payload[32] >= len(PURPOSES) or len(mac) != MAC_BYTES:
            return None
        workspace_id, contact_id = UUID(bytes=payload[:16]), UUID(bytes=payload[16:32])
        if not self.workspace_exists(workspace_id):  # never create a key for a made-up workspace
            return None
        if not hmac.compare_digest(mac, self._mac(payload, workspace_id)):
            return None
        return workspace_id, contact_id, PURPOSES[payload[32]]
