"""Turning domain objects into JSON-ready dicts; erased personal values become null."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.contact import Contact
from domain.personal import ERASED


def plain(value: Any) -> Any:
    if value is ERASED:
        return None
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def contact(c: Contact, notes: list[dict[str, Any]]) -> dict[str, Any]:
    consents = {} if c.consents is ERASED else c.consents  # an erased contact's consents read as erased
    return plain({
        "contact_id": c.id, "name": c.name, "phone": c.phone, "email": c.email, "time_zone": c.time_zone,
        "custom_fields": c.custom_fields, "tags": c.tags, "notes": notes, "date_of_birth": c.date_of_birth,
        "consents": [
            {"channel": k.split(":")[0], "purpose": k.split(":")[1], **v} for k, v in sorted(consents.items())
        ],
        "restricted": c.restricted, "objected_to_marketing": c.objected_to_marketing,
        "merged_into": c.merged_into, "erased": c.erased, "legal_hold": c.legal_hold, "created_at": c.created_on, "version": c.version,
    })
