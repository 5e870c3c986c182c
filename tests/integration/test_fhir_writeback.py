"""FHIR write-back against PostgreSQL and a FHIR server on loopback: two workers write a change once,
a rebuild never writes it again, a refusal is recorded once, a private address is not reached unless
allowed, and the token is stored sealed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.fhir_writeback import FhirWriteBackWorker
from domain.appointments_app import Booking
from tests.fake_fhir import FakeFhir
from tests.integration.helpers import NOW, new_person, new_workspace

TOKEN = "ehr-" + uuid.uuid4().hex


@pytest.fixture
def ehr() -> Iterator[FakeFhir]:
    fake = FakeFhir(token=TOKEN).start()
    yield fake
    fake.stop()


def ehr_booking(hub, ehr: FakeFhir, known_to_ehr: bool = True):
    """A workspace with write-back on, and an appointment the EHR pushed (and holds, unless told not to)."""
    app = hub.app
    workspace_id = new_workspace(app)
    hub.extras["fhir_integrations"].save(workspace_id, ehr.base_url, TOKEN, NOW)
    person = new_person(app, workspace_id, "Wren")
    fhir_id = f"ehr-{uuid.uuid4().hex[:10]}"
    starts = NOW + timedelta(days=3)
    if known_to_ehr:
        ehr.put_resource({"resourceType": "Appointment", "id": fhir_id, "status": "booked",
                          "start": starts.isoformat(), "end": (starts + timedelta(minutes=30)).isoformat(),
                          "participant": [{"actor": {"reference": "Patient/p1"}, "status": "needs-action"}]})
    [(appointment_id, _)] = app.import_appointments(workspace_id, [Booking(
        contact_id=person.contact_id, service="Hygienist", starts_at=starts, ends_at=starts + timedelta(minutes=30),
        external_id=fhir_id)], source="fhir", actor_id=None, now=NOW)
    return workspace_id, appointment_id, fhir_id


def written(hub, appointment_id) -> list[tuple[str, int | None]]:
    return [(type(e).__name__, e.http_status) for e in hub.app.events.get(appointment_id)
            if type(e).__name__ in ("WrittenBack", "WriteBackFailed")]


def test_two_workers_write_a_confirmation_back_once_and_a_rebuild_never_writes_it_again(hub, ehr):
    workspace_id, appointment_id, fhir_id = ehr_booking(hub, ehr)
    hub.app.confirm_appointment(workspace_id, appointment_id, None, NOW)
    hub.projections.catch_up()
    workers = [FhirWriteBackWorker(hub.app, hub.database, hub.extras["fhir_integrations"], allow_private=True)
               for _ in range(2)]
    start = threading.Barrier(2)

    def run(worker: FhirWriteBackWorker) -> None:
        start.wait()
        worker.run_once()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    hub.projections.catch_up()
    hub.projections.rebuild("fhir_writebacks")
    assert sum(w.run_once() for w in workers) == 0
    assert [(p.body or {}).get("status") for p in ehr.puts(fhir_id)] == ["booked"]
    assert written(hub, appointment_id) == [("WrittenBack", 200)]


def test_an_appointment_the_ehr_does_not_know_is_recorded_as_failed_once_without_retrying(hub, ehr):
    workspace_id, appointment_id, fhir_id = ehr_booking(hub, ehr, known_to_ehr=False)
    hub.app.mark_no_show(workspace_id, appointment_id, None, NOW)
    hub.projections.catch_up()
    worker = FhirWriteBackWorker(hub.app, hub.database, hub.extras["fhir_integrations"], allow_private=True)
    assert worker.run_once() == 1
    hub.projections.catch_up()
    assert worker.run_once() == 0
    assert written(hub, appointment_id) == [("WriteBackFailed", 404)] and ehr.puts(fhir_id) == []


def test_an_ehr_on_a_private_address_gets_no_request_unless_the_operator_allows_it(hub, ehr):
    # Saved while allowed, or its name now resolves to loopback: the default worker does not connect,
    # and records the change as failed at once (no retry can make the address allowed).
    workspace_id, appointment_id, fhir_id = ehr_booking(hub, ehr)
    hub.app.confirm_appointment(workspace_id, appointment_id, None, NOW)
    hub.projections.catch_up()
    worker = FhirWriteBackWorker(hub.app, hub.database, hub.extras["fhir_integrations"])
    assert worker.run_once() == 1
    hub.projections.catch_up()
    assert worker.run_once() == 0
    assert written(hub, appointment_id) == [("WriteBackFailed", None)]
    assert ehr.requests == []


def test_the_ehr_token_is_stored_sealed_and_read_back_whole(hub, ehr):
    workspace_id, _, _ = ehr_booking(hub, ehr)
    with hub.database.connection() as conn:
        [sealed] = conn.execute("SELECT sealed_token FROM commhub_fhir_integrations WHERE workspace_id = %s",
                                (workspace_id,)).fetchone()
    assert TOKEN.encode() not in bytes(sealed)
    assert hub.extras["fhir_integrations"].get(workspace_id).token == TOKEN
