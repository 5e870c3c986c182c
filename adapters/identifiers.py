"""Normalising what people type: phone numbers to E.164 (phonenumbers), emails (email-validator)."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from domain.errors import EmailAddressInvalidError, PhoneNumberInvalidError


def normalise_phone(raw: str, default_region: str | None = None) -> str:
    """``raw`` in any common notation → E.164; national numbers need ``default_region`` (e.g. "GB")."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise PhoneNumberInvalidError("phone number could not be read") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneNumberInvalidError("phone number is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise EmailAddressInvalidError("email address is not valid") from None
