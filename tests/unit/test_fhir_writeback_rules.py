"""Writing a status back to FHIR: our statuses in R4 terms, the source's resource otherwise kept,
and each change's outcome recorded on the appointment once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from adapters.fhir import FhirInvalidError, with_status
from domain.appointment import Appointment

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
RESOURCE = {"resourceType": "Appointment", "id": "a1", "status": "booked", "comment": "EHR's own words",
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "needs-action"},
                            {"actor": {"reference": "Practitioner/d1"}, "status": "tentative"}]}


@pytest.mark.parametrize(("ours", "theirs"), [("confirmed", "booked"), ("cancelled", "cancelled"),
                                              ("no_show", "noshow"), ("checked_in", "arrived"),
                                              ("completed", "fulfilled")])
def test_each_status_we_write_back_is_an_r4_appointment_status(ours, theirs):
    assert with_status(RESOURCE, ours)["status"] == theirs


def test_a_confirmation_is_booked_with_the_patient_accepting_and_everything_else_kept():
    confirmed = with_status(RESOURCE, "confirmed")
    assert [p["status"] for p in confirmed["participant"]] == ["accepted", "tentative"]
    assert confirmed["comment"] == "EHR's own words" and RESOURCE["participant"][0]["status"] == "needs-action"
    assert with_status(RESOURCE, "cancelled")["participant"] == RESOURCE["participant"]


def test_a_source_answer_that_is_not_an_appointment_is_refused():
    with pytest.raises(FhirInvalidError):
        with_status({"resourceType": "OperationOutcome"}, "confirmed")


def test_a_write_back_outcome_is_recorded_once_per_change_as_written_or_failed():
    appointment = Appointment.book(
        appointment_id=uuid.uuid4(), workspace_id=uuid.uuid4(), contact_id=uuid.uuid4(), staff_id=None,
        service="Hygienist", location=None, starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=1, hours=1),
        time_zone="Europe/London", source="fhir", external_id="a1", actor_id=None, now=NOW)
    assert appointment.record_write_back("k1", "confirmed", "booked", 200, 1, NOW)
    assert not appointment.record_write_back("k1", "confirmed", "booked", 200, 2, NOW)
    assert appointment.record_write_back("k2", "cancelled", "cancelled", 409, 1, NOW)
    assert appointment.record_write_back("k3", "no_show", "noshow", None, 8, NOW)
    kinds = [type(e).__name__ for e in appointment.pending_events[1:]]
    assert kinds == ["WrittenBack", "WriteBackFailed", "WriteBackFailed"]
    assert appointment.write_backs == {"k1": "written", "k2": "failed", "k3": "failed"}
