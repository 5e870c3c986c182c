"""Each workspace's Ed25519 signing key, for erasure certificates.

The 32-byte private seed is a workspace-level key in the key vault (``commhub_index_keys``, under an
owner id derived from the workspace id), so it is wrapped by the KEK, re-wrapped by ``keys rotate``
and never stored in events. The public key is published through the API.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.key_vault import KeyVault

SIGNING_NAMESPACE = uuid5(NAMESPACE_URL, "https://commhub.invalid/workspace-signing-key")
ALGORITHM = "Ed25519"


def canonical(document: Any) -> bytes:
    """The exact bytes that are signed: JSON with sorted keys, no spaces, ASCII only."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_key: str) -> str:
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class WorkspaceSigner:
    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def _private(self, workspace_id: UUID) -> Ed25519PrivateKey:
        seed = self.vault.index_key(uuid5(SIGNING_NAMESPACE, str(workspace_id)))
        return Ed25519PrivateKey.from_private_bytes(seed)

    def public_key(self, workspace_id: UUID) -> str:
        raw = self._private(workspace_id).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _b64(raw)

    def sign(self, workspace_id: UUID, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` wrapped with the signature over its canonical form and the public key."""
        public = self.public_key(workspace_id)
        return {"certificate": document, "algorithm": ALGORITHM, "public_key": public, "key_id": key_id(public),
                "signature": _b64(self._private(workspace_id).sign(canonical(document)))}


def verify(signed: Any, public_key: str | None = None) -> tuple[bool, str]:
    """Whether ``signed`` (as ``WorkspaceSigner.sign`` returns it) carries a valid signature by
    ``public_key`` (default: the key it names). Returns (valid, why)."""
    try:
        document, signature = signed["certificate"], base64.b64decode(signed["signature"], validate=True)
        claimed = signed["public_key"]
        if signed.get("algorithm") != ALGORITHM:
            return False, "unknown signature algorithm"
    except (KeyError, TypeError, ValueError):
        return False, "not a signed certificate (certificate, signature and public_key are needed)"
    if public_key is not None and public_key != claimed:
        return False, "signed by a different key than the workspace's"
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(claimed)).verify(signature, canonical(document))
    except (InvalidSignature, ValueError):
        return False, "the signature does not match the certificate (altered or forged)"
    return True, "signature valid"
