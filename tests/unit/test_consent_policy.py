"""The send decision: given what we know about a contact, may this message go out now?"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.consent import ADDRESSED_BY, ConsentRecord, ConsentSubject, Refusal, may_send
from domain.identifiers import Channel, Purpose

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)
BOTH_ADDRESSES = frozenset({"phone", "email"})
SMS, EMAIL, VOICE, WEBCHAT = Channel.SMS, Channel.EMAIL, Channel.VOICE, Channel.WEBCHAT
TRANSACTIONAL, MARKETING = Purpose.TRANSACTIONAL, Purpose.MARKETING


def granted(expires_at: datetime | None = None, at: datetime = NOW - timedelta(days=30)) -> ConsentRecord:
    return ConsentRecord(
        granted=True, at=at, source="web_form", wording="Yes, text me offers", actor_id=None, expires_at=expires_at,
    )


def withdrawn(at: datetime = NOW - timedelta(days=1)) -> ConsentRecord:
    return ConsentRecord(granted=False, at=at, source="sms_keyword", wording="STOP", actor_id=None)


def contact(consents: dict[tuple[Channel, Purpose], ConsentRecord] | None = None, **facts: object) -> ConsentSubject:
    records = {(channel.value, purpose.value): record for (channel, purpose), record in (consents or {}).items()}
    facts.setdefault("addresses", BOTH_ADDRESSES)
    return ConsentSubject(consents=records, **facts)  # type: ignore[arg-type]


# Transactional messages ------------------------------------------------------------------------


@pytest.mark.parametrize("channel", list(Channel))
def test_transactional_message_is_allowed_without_any_grant(channel: Channel) -> None:
    decision = may_send(contact(), channel, TRANSACTIONAL, NOW)

    assert decision.allowed
    assert decision.reason is None
    assert bool(decision) is True


def test_withdrawn_consent_stops_transactional_sms() -> None:
    subject = contact({(SMS, TRANSACTIONAL): withdrawn()})

    decision = may_send(subject, SMS, TRANSACTIONAL, NOW)

    assert not decision
    assert decision.reason is Refusal.WITHDRAWN


def test_withdrawal_on_one_channel_leaves_other_channels_open() -> None:
    subject = contact({(SMS, TRANSACTIONAL): withdrawn()})

    assert may_send(subject, EMAIL, TRANSACTIONAL, NOW).allowed


def test_withdrawn_marketing_consent_does_not_stop_transactional_messages() -> None:
    subject = contact({(SMS, MARKETING): withdrawn()})

    assert may_send(subject, SMS, TRANSACTIONAL, NOW).allowed


# Marketing -------------------------------------------------------------------------------------


def test_marketing_without_a_grant_is_refused_for_lack_of_consent() -> None:
    decision = may_send(contact(), SMS, MARKETING, NOW)

    assert not decision
    assert decision.reason is Refusal.NO_CONSENT


def test_marketing_with_an_explicit_grant_is_allowed() -> None:
    subject = contact({(EMAIL, MARKETING): granted()})

    assert may_send(subject, EMAIL, MARKETING, NOW).allowed


def test_marketing_grant_on_email_does_not_allow_marketing_sms() -> None:
    subject = contact({(EMAIL, MARKETING): granted()})

    assert may_send(subject, SMS, MARKETING, NOW).reason is Refusal.NO_CONSENT


def test_transactional_grant_does_not_allow_marketing() -> None:
    subject = contact({(SMS, TRANSACTIONAL): granted()})

    assert may_send(subject, SMS, MARKETING, NOW).reason is Refusal.NO_CONSENT


def test_marketing_grant_that_has_not_expired_yet_is_allowed() -> None:
    subject = contact({(SMS, MARKETING): granted(expires_at=NOW + timedelta(seconds=1))})

    assert may_send(subject, SMS, MARKETING, NOW).allowed


def test_marketing_grant_expiring_exactly_now_counts_as_expired() -> None:
    subject = contact({(SMS, MARKETING): granted(expires_at=NOW)})

    decision = may_send(subject, SMS, MARKETING, NOW)

    assert not decision
    assert decision.reason is Refusal.EXPIRED


def test_marketing_grant_that_expired_yesterday_is_refused_as_expired() -> None:
    subject = contact({(SMS, MARKETING): granted(expires_at=NOW - timedelta(days=1))})

    assert may_send(subject, SMS, MARKETING, NOW).reason is Refusal.EXPIRED


def test_withdrawn_marketing_consent_is_refused_as_withdrawn() -> None:
    subject = contact({(SMS, MARKETING): withdrawn()})

    assert may_send(subject, SMS, MARKETING, NOW).reason is Refusal.WITHDRAWN


# Objection and restriction ---------------------------------------------------------------------


def test_objection_to_marketing_blocks_marketing_despite_a_grant() -> None:
    subject = contact({(SMS, MARKETING): granted()}, objected_to_marketing=True)

    decision = may_send(subject, SMS, MARKETING, NOW)

    assert not decision
    assert decision.reason is Refusal.OBJECTED


def test_objection_to_marketing_does_not_block_transactional_messages() -> None:
    subject = contact(objected_to_marketing=True)

    assert may_send(subject, SMS, TRANSACTIONAL, NOW).allowed


@pytest.mark.parametrize("purpose", list(Purpose))
def test_restriction_of_processing_blocks_every_purpose(purpose: Purpose) -> None:
    subject = contact({(SMS, purpose): granted()}, restricted=True)

    decision = may_send(subject, SMS, purpose, NOW)

    assert not decision
    assert decision.reason is Refusal.RESTRICTED


# Erased and merged contacts --------------------------------------------------------------------


@pytest.mark.parametrize("purpose", list(Purpose))
def test_erased_contact_is_refused_as_erased(purpose: Purpose) -> None:
    subject = contact({(SMS, purpose): granted()}, erased=True)

    decision = may_send(subject, SMS, purpose, NOW)

    assert not decision
    assert decision.reason is Refusal.ERASED


@pytest.mark.parametrize("purpose", list(Purpose))
def test_merged_contact_is_refused_as_merged(purpose: Purpose) -> None:
    subject = contact({(SMS, purpose): granted()}, merged=True)

    decision = may_send(subject, SMS, purpose, NOW)

    assert not decision
    assert decision.reason is Refusal.MERGED


# Addresses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [SMS, VOICE])
def test_contact_without_a_phone_number_cannot_be_texted_or_called(channel: Channel) -> None:
    subject = contact(addresses=frozenset({"email"}))

    decision = may_send(subject, channel, TRANSACTIONAL, NOW)

    assert not decision
    assert decision.reason is Refusal.NO_ADDRESS


def test_contact_without_an_email_address_cannot_be_emailed() -> None:
    subject = contact({(EMAIL, MARKETING): granted()}, addresses=frozenset({"phone"}))

    decision = may_send(subject, EMAIL, MARKETING, NOW)

    assert not decision
    assert decision.reason is Refusal.NO_ADDRESS


def test_web_chat_needs_no_stored_address() -> None:
    assert may_send(contact(addresses=frozenset()), WEBCHAT, TRANSACTIONAL, NOW).allowed


# Properties ------------------------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc),
)
records = st.builds(
    ConsentRecord,
    granted=st.booleans(),
    at=moments,
    source=st.sampled_from(["web_form", "sms_keyword", "agent"]),
    wording=st.just("wording shown"),
    actor_id=st.none(),
    expires_at=st.none() | moments,
)
keys = st.tuples(st.sampled_from(Channel), st.sampled_from(Purpose)).map(lambda k: (k[0].value, k[1].value))
subjects = st.builds(
    ConsentSubject,
    consents=st.dictionaries(keys, records, max_size=6),
    restricted=st.booleans(),
    objected_to_marketing=st.booleans(),
    erased=st.booleans(),
    merged=st.booleans(),
    addresses=st.frozensets(st.sampled_from(["phone", "email"])),
)


@given(subject=subjects, channel=st.sampled_from(Channel), purpose=st.sampled_from(Purpose), now=moments)
def test_restricted_contact_is_never_sent_anything(
    subject: ConsentSubject, channel: Channel, purpose: Purpose, now: datetime,
) -> None:
    restricted = ConsentSubject(
        consents=subject.consents, restricted=True, objected_to_marketing=subject.objected_to_marketing,
        erased=subject.erased, merged=subject.merged, addresses=subject.addresses,
    )

    assert not may_send(restricted, channel, purpose, now).allowed


@given(subject=subjects, channel=st.sampled_from(Channel), now=moments)
def test_allowed_marketing_always_rests_on_a_granted_unexpired_record_for_that_channel(
    subject: ConsentSubject, channel: Channel, now: datetime,
) -> None:
    if may_send(subject, channel, MARKETING, now).allowed:
        record = subject.consents[(channel.value, MARKETING.value)]
        assert record.granted
        assert record.expires_at is None or record.expires_at > now
        assert not subject.objected_to_marketing


@given(subject=subjects, channel=st.sampled_from(Channel), purpose=st.sampled_from(Purpose), now=moments)
def test_every_decision_is_either_allowed_or_names_one_refusal(
    subject: ConsentSubject, channel: Channel, purpose: Purpose, now: datetime,
) -> None:
    decision = may_send(subject, channel, purpose, now)

    assert decision.allowed == (decision.reason is None)
    assert decision.reason is None or isinstance(decision.reason, Refusal)
    if decision.allowed:
        assert not (subject.erased or subject.merged or subject.restricted)
        assert ADDRESSED_BY.get(channel) in (None, *subject.addresses)
