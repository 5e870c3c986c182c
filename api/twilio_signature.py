"""Verifying that a webhook comes from Twilio: X-Twilio-Signature over the public URL and the form."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from api.settings import Settings

FORM = "application/x-www-form-urlencoded"


class FormParams:
    """Form fields with repeats kept: Twilio signs every value of every field."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in pairs:
            self.values.setdefault(name, []).append(value)

    def getall(self, name: str) -> list[str]:
        return self.values[name]

    def __iter__(self) -> Any:
        return iter(self.values)

    def last(self) -> dict[str, str]:
        return {name: values[-1] for name, values in self.values.items()}


def public_url(settings: Settings, request: Request, path: str | None = None) -> str:
    """The URL Twilio used (or should use) for ``path``: behind a proxy, COMMHUB_PUBLIC_URL's origin."""
    base = settings.public_url or str(request.base_url).rstrip("/")
    if path is not None:
        return base + path
    query = f"?{request.url.query}" if request.url.query else ""
    return base + request.url.path + query


async def signed_form(request: Request, settings: Settings) -> dict[str, str]:
    """The form of a request Twilio signed; 403 for anything unsigned or wrongly signed."""
    if not settings.twilio_auth_token:
        raise HTTPException(403, "Twilio webhooks are not configured (set COMMHUB_TWILIO_AUTH_TOKEN)")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise HTTPException(403, "X-Twilio-Signature is missing")
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True) if raw else []
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(403, "X-Twilio-Signature does not match the request") from None
    params = FormParams(pairs)
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    validator = RequestValidator(settings.twilio_auth_token)
    if not validator.validate(public_url(settings, request), params, signature, algorithm):
        raise HTTPException(403, "X-Twilio-Signature does not match the request")
    if raw and not request.headers.get("content-type", "").startswith(FORM):
        raise HTTPException(415, f"Twilio webhooks are sent as {FORM}")
    return params.last()
