"""Key encryption keys: the current KEK wraps subject data keys; previous KEKs only unwrap them."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_BYTES = 32
DEK_AAD = b"commhub/dek/v1|"


class KekError(ValueError):
    """A KEK is malformed, or a data key is wrapped by a KEK this process does not have."""


def kek_id(kek: bytes) -> str:
    return hashlib.sha256(b"commhub/kek-id|" + kek).hexdigest()[:16]


def encode_kek(kek: bytes) -> str:
    return base64.urlsafe_b64encode(kek).decode()


def decode_kek(text: str) -> bytes:
    try:
        kek = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError:
        raise KekError("KEK must be 32 bytes in URL-safe base64 (see `commhub keys generate`)") from None
    if len(kek) != KEK_BYTES:
        raise KekError("KEK must be 32 bytes in URL-safe base64 (see `commhub keys generate`)")
    return kek


def generate_kek() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@dataclass
class Keyring:
    """The current KEK and any previous ones still needed to unwrap keys during a rotation."""

    current: bytes = field(repr=False)
    previous: list[bytes] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {kek_id(k): AESGCM(k) for k in [*self.previous, self.current]}
        self.current_id = kek_id(self.current)

    def wrap(self, dek: bytes, owner_id: UUID, purpose: bytes = b"subject") -> tuple[str, bytes]:
        nonce = os.urandom(12)
        aad = DEK_AAD + purpose + b"|" + owner_id.bytes
        return self.current_id, nonce + self._by_id[self.current_id].encrypt(nonce, dek, aad)

    def unwrap(self, wrapped_by: str, wrapped: bytes, owner_id: UUID, purpose: bytes = b"subject") -> bytes:
        aead = self._by_id.get(wrapped_by)
        if aead is None:
            raise KekError(f"data key is wrapped by KEK {wrapped_by}, which is not configured")
        return aead.decrypt(wrapped[:12], wrapped[12:], DEK_AAD + purpose + b"|" + owner_id.bytes)


def write_key_file(path: Path, kek: bytes) -> None:
    """Write a key file readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(encode_kek(kek) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # a power cut must not leave an empty key behind
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def previous_key_file(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def load_keyring(kek: str | None, kek_file: Path, previous: tuple[str, ...] = ()) -> Keyring:
    """The KEK from configuration, else from ``kek_file`` (created 0600 with a new key if absent)."""
    older = [decode_kek(p) for p in previous]
    if kek:
        return Keyring(decode_kek(kek), older)
    if not kek_file.exists():
        write_key_file(kek_file, generate_kek())
    if kek_file.stat().st_mode & 0o077:
        raise KekError(f"key file {kek_file} must not be readable by group or others (chmod 600)")
    old_file = previous_key_file(kek_file)
    if old_file.exists():
        older.append(decode_kek(old_file.read_text()))
    return Keyring(decode_kek(kek_file.read_text()), older)
