"""Privacy in the domain: erasure requests and their steps, legal holds, retention policies, and
the certificate signature check (no I/O)."""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.signing import canonical, verify
from domain.contact import Contact
from domain.errors import (
    ContactErasedError,
    ErasureReasonInvalidError,
    ReferenceInvalidError,
    RetentionPolicyInvalidError,
)
from domain.personal import SUBJECT, personal_fields
from domain.privacy import ErasureRequest, RetentionPolicy

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)
WORKSPACE = UUID("00000000-0000-4000-8000-0000000000f1")


def new_request(**overrides: object) -> ErasureRequest:
    values: dict = {"erasure_id": uuid4(), "workspace_id": WORKSPACE, "contact_id": uuid4(),
                    "reason": "data_subject_request", "reference": "DSR-1", "requested_by": None, "now": NOW}
    values.update(overrides)
    return ErasureRequest.request(**values)


def new_contact() -> Contact:
    return Contact.create(contact_id=uuid4(), workspace_id=WORKSPACE, name="Zelda", phone=None, email=None,
                          time_zone=None, custom_fields={}, actor_id=None, now=NOW)


def test_an_erasure_request_goes_requested_shredded_completed():
    request = new_request()
    assert request.status == "requested"
    request.shredded([request.contact_id], 41, outbound_cancelled=2, files_deleted=1, now=NOW)
    request.complete({"certificate": {}}, NOW + timedelta(seconds=1))
    request.refuse("legal_hold", NOW)  # too late to refuse: nothing happens
    assert (request.status, request.erased_position, request.outbound_cancelled) == ("completed", 41, 2)
    assert [type(e).__name__ for e in request.collect_events()] == ["Requested", "KeysShredded", "Completed"]


def test_a_refused_request_is_never_shredded_or_completed():
    request = new_request()
    request.refuse("legal_hold", NOW)
    request.shredded([request.contact_id], 1, 0, 0, NOW)
    request.complete({}, NOW)
    assert (request.status, request.refusal) == ("refused", "legal_hold")


@pytest.mark.parametrize("reason", ["", "because I said so", "DATA_SUBJECT_REQUEST"])
def test_an_erasure_reason_must_be_one_of_the_listed_grounds(reason):
    with pytest.raises(ErasureReasonInvalidError):
        new_request(reason=reason)


@pytest.mark.parametrize("reference", ["", "Jane Doe", "jane@example.org", "+44 7700 900123", "x" * 65, "a\nb"])
def test_a_reference_cannot_carry_names_addresses_or_free_text(reference):
    with pytest.raises(ReferenceInvalidError):
        new_request(reference=reference)


def test_a_legal_hold_is_placed_and_lifted_and_its_reference_is_sealed():
    contact = new_contact()
    contact.place_legal_hold("CASE-7", None, NOW)
    contact.place_legal_hold("CASE-7", None, NOW)  # already held: nothing new
    assert contact.legal_hold
    contact.lift_legal_hold(None, NOW)
    assert not contact.legal_hold
    kinds = [type(e).__name__ for e in contact.collect_events()]
    assert kinds == ["Created", "LegalHoldPlaced", "LegalHoldLifted"]
    assert personal_fields(Contact.LegalHoldPlaced) == {"reference": SUBJECT}


def test_an_erased_contact_cannot_be_put_under_legal_hold():
    contact = new_contact()
    contact.erase(uuid4(), None, NOW)
    with pytest.raises(ContactErasedError):
        contact.place_legal_hold("CASE-8", None, NOW)


@pytest.mark.parametrize("days", [0, -3, 36_501, 1.5])
def test_retention_periods_are_whole_days_within_a_century(days):
    with pytest.raises(RetentionPolicyInvalidError):
        RetentionPolicy.create(WORKSPACE, NOW).change(days, None, None, NOW)


def test_bodies_only_ever_expire_forward():
    policy = RetentionPolicy.create(WORKSPACE, NOW)
    policy.expire_bodies(NOW - timedelta(days=30), NOW)
    policy.expire_bodies(NOW - timedelta(days=60), NOW)  # earlier than already expired: nothing new
    assert [type(e).__name__ for e in policy.collect_events()] == ["Created", "BodiesExpired"]
    assert RetentionPolicy.id_for(WORKSPACE) == policy.id


def signed(document: dict) -> tuple[dict, str]:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    return ({"certificate": document, "algorithm": "Ed25519", "public_key": public, "key_id": "k",
             "signature": base64.b64encode(key.sign(canonical(document))).decode()}, public)


def test_a_certificate_verifies_only_unaltered_and_under_the_expected_key():
    certificate, public = signed({"erasure_id": "e1", "events_unreadable": 12})
    assert verify(certificate, public) == (True, "signature valid")
    altered = copy.deepcopy(certificate)
    altered["certificate"]["events_unreadable"] = 11
    assert verify(altered, public)[0] is False
    other, other_public = signed({"erasure_id": "e1", "events_unreadable": 12})
    assert verify(other, public)[0] is False  # valid signature, but not by this workspace's key
    assert verify({"certificate": {}, "signature": "!!", "public_key": public, "algorithm": "Ed25519"}, public)[0] is False


def test_the_signed_form_does_not_depend_on_key_order():
    assert canonical({"b": 1, "a": [1, "é"]}) == canonical({"a": [1, "é"], "b": 1}) == b'{"a":[1,"\\u00e9"],"b":1}'
