"""Phone numbers and emails typed by people are normalised before they reach the domain."""

import pytest

from adapters.identifiers import normalise_email, normalise_phone
from adapters.passwords import PasswordTooWeakError, hash_password, verify_password
from domain.errors import EmailAddressInvalidError, PhoneNumberInvalidError


@pytest.mark.parametrize(
    ("typed", "region", "expected"),
    [
        ("07911 123456", "GB", "+447911123456"),
        ("+44 (0)7911 123456", None, "+447911123456"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("0049 30 901820", "GB", "+4930901820"),
    ],
)
def test_phone_numbers_in_common_notations_become_e164(typed, region, expected):
    assert normalise_phone(typed, region) == expected


@pytest.mark.parametrize("typed", ["12", "not a number", "+44 7700", "07700 900123"])
def test_unreadable_or_invalid_numbers_are_refused(typed):
    with pytest.raises(PhoneNumberInvalidError):
        normalise_phone(typed)


def test_emails_are_normalised_and_invalid_ones_refused():
    assert normalise_email("  Ada.Lovelace@Example.ORG ") == "Ada.Lovelace@example.org"
    with pytest.raises(EmailAddressInvalidError):
        normalise_email("ada@@example")


def test_passwords_are_hashed_with_argon2id_and_verified():
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$") and "correct" not in hashed
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "wrong horse battery")
    with pytest.raises(PasswordTooWeakError):
        hash_password("short")
