"""Value checks at the edge of the domain: what is accepted, what is refused, and what the refusal says."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import identifiers
from domain.errors import (
    ChannelInvalidError,
    DomainError,
    EmailAddressInvalidError,
    PhoneNumberInvalidError,
    PurposeInvalidError,
    StaffRoleInvalidError,
    TimeZoneInvalidError,
    WorkspaceSlugInvalidError,
)
from domain.identifiers import Channel, Purpose, Role

# Phone numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+447700900123", "+14155550123", "+61491570156", "+1234567", "+123456789012345"])
def test_e164_number_is_accepted_unchanged(number: str) -> None:
    assert identifiers.e164(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "07700 900123",  # national format: adapters normalise before the domain sees it
        "447700900123",  # no leading +
        "+44 7700 900123",  # spaces
        "+44-7700-900123",
        "+0447700900123",  # country codes never start with 0
        "+123456",  # too short
        "+1234567890123456",  # 16 digits: longer than E.164 allows
        "+44770090012a",
        "",
        "+",
    ],
)
def test_number_not_in_e164_form_is_refused(number: str) -> None:
    with pytest.raises(PhoneNumberInvalidError, match="E.164"):
        identifiers.e164(number)


@pytest.mark.parametrize("value", [None, 447700900123, b"+447700900123"])
def test_phone_number_that_is_not_text_is_refused(value: Any) -> None:
    with pytest.raises(PhoneNumberInvalidError):
        identifiers.e164(value)


def test_phone_number_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(PhoneNumberInvalidError):
        identifiers.e164("+447700900123\n")


def test_refused_phone_number_is_not_repeated_in_the_error() -> None:
    with pytest.raises(PhoneNumberInvalidError) as refused:
        identifiers.e164("+44 7700 900417")

    assert "900417" not in str(refused.value)


@given(st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z"))
def test_every_well_formed_e164_number_is_accepted(number: str) -> None:
    assert identifiers.e164(number) == number


# Email addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["zelda@example.org", "first.last+tag@clinic.co.uk", "x@y.io", f"{'a' * 64}@example.com"],
)
def test_plausible_email_address_is_accepted_unchanged(address: str) -> None:
    assert identifiers.email(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "",
        "zelda",
        "zelda@",
        "@example.org",
        "zelda@example",  # no dot in the domain
        "zel da@example.org",
        "zelda@exa mple.org",
        "zelda@@example.org",
        "zelda@home@example.org",
        f"{'a' * 65}@example.com",  # local part over 64 characters
        f"zelda@{'a' * 250}.com",  # whole address over 254 characters
    ],
)
def test_malformed_email_address_is_refused(address: str) -> None:
    with pytest.raises(EmailAddressInvalidError):
        identifiers.email(address)


def test_email_address_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(EmailAddressInvalidError):
        identifiers.email("zelda@example.org\n")


def test_email_address_that_is_not_text_is_refused() -> None:
    with pytest.raises(EmailAddressInvalidError):
        identifiers.email(None)  # type: ignore[arg-type]


def test_refused_email_address_is_not_repeated_in_the_error() -> None:
    with pytest.raises(EmailAddressInvalidError) as refused:
        identifiers.email("zelda quixote@example.org")

    assert "zelda" not in str(refused.value)


# Channels, purposes and roles ------------------------------------------------------------------

CHOICES: list[tuple[Callable[[str], Any], type[Any], type[DomainError], str]] = [
    (identifiers.channel, Channel, ChannelInvalidError, "sms, email, voice, webchat, social"),
    (identifiers.purpose, Purpose, PurposeInvalidError, "transactional, marketing"),
    (identifiers.role, Role, StaffRoleInvalidError, "owner, admin, agent, compliance"),
]


@pytest.mark.parametrize(("check", "kind", "error", "listed"), CHOICES, ids=["channel", "purpose", "role"])
def test_each_known_value_is_accepted_as_its_enum_member(
    check: Callable[[str], Any], kind: type[Any], error: type[DomainError], listed: str,
) -> None:
    for member in kind:
        assert check(member.value) is member


@pytest.mark.parametrize(("check", "kind", "error", "listed"), CHOICES, ids=["channel", "purpose", "role"])
@pytest.mark.parametrize("value", ["", "fax", "superuser", "promotional", " sms"])
def test_unknown_value_is_refused_with_an_error_listing_the_valid_ones(
    check: Callable[[str], Any], kind: type[Any], error: type[DomainError], listed: str, value: str,
) -> None:
    with pytest.raises(error) as refused:
        check(value)

    assert str(refused.value).endswith(f"must be one of {listed}")
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


def test_channel_enum_lists_the_channels_the_hub_supports() -> None:
    assert [channel.value for channel in Channel] == ["sms", "email", "voice", "webchat", "social"]


@pytest.mark.parametrize(
    "error",
    [
        PhoneNumberInvalidError, EmailAddressInvalidError, ChannelInvalidError, PurposeInvalidError,
        StaffRoleInvalidError, TimeZoneInvalidError, WorkspaceSlugInvalidError,
    ],
)
def test_every_identifier_refusal_is_a_domain_error_answered_with_422(error: type[DomainError]) -> None:
    assert issubclass(error, DomainError)
    assert error.status == 422


# Time zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"])
def test_iana_time_zone_is_accepted(zone: str) -> None:
    assert identifiers.time_zone(zone) == zone


@pytest.mark.parametrize("zone", ["", "GMT+1", "Europe/Atlantis", "europe/london", "BST", "+01:00", "Europe/"])
def test_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(TimeZoneInvalidError, match="IANA"):
        identifiers.time_zone(zone)


def test_the_hosts_local_time_alias_is_refused_as_a_time_zone() -> None:
    # "localtime" names whatever zone the server runs in, so it would differ between nodes.
    with pytest.raises(TimeZoneInvalidError):
        identifiers.time_zone("localtime")


def test_time_zone_that_is_not_text_is_refused() -> None:
    with pytest.raises(TimeZoneInvalidError):
        identifiers.time_zone(None)  # type: ignore[arg-type]


# Workspace slugs -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "smile-dental", "physio-42", "a1b", "x" * 40, "a--b"])
def test_lowercase_slug_of_3_to_40_characters_is_accepted(value: str) -> None:
    assert identifiers.slug(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "ab", "x" * 41, "Smile-Dental", "-smile", "smile-", "smile dental", "smile_dental", "smilé", "smile.dental"],
)
def test_slug_that_is_too_short_long_or_has_other_characters_is_refused(value: str) -> None:
    with pytest.raises(WorkspaceSlugInvalidError, match="3-40"):
        identifiers.slug(value)


def test_slug_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(WorkspaceSlugInvalidError):
        identifiers.slug("smile-dental\n")


def test_slug_that_is_not_text_is_refused() -> None:
    with pytest.raises(WorkspaceSlugInvalidError):
        identifiers.slug(None)  # type: ignore[arg-type]
