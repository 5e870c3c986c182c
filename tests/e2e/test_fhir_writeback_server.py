"""Writing appointment changes back to the EHR they came from, against a real server process and a
FHIR server on loopback: booked by the FHIR webhook, confirmed by an SMS reply, written back once;
a 500 from the EHR is retried until one write succeeds; the token never shows."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.fhir import signature
from adapters.postgres import Database
from tests.e2e.api_support import Api, assert_problem, demo_login, phone_number, unique, wait_for
from tests.e2e.conftest import Server, start_server, stop_server
from tests.fake_fhir import FakeFhir

FHIR_SECRET = "w" * 16 + uuid.uuid4().hex
TOKEN = "ehr-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def ehr() -> Iterator[FakeFhir]:
    fake = FakeFhir(token=TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           "COMMHUB_FHIR_WEBHOOK_SECRET": FHIR_SECRET, "COMMHUB_REMINDER_POLL_SECONDS": "0.3",
           "COMMHUB_FHIR_ALLOW_PRIVATE": "on"}  # the fake EHR listens on loopback
    running = start_server(tmp_path_factory.mktemp("writeback"), env, "--demo")
    yield running
    stop_server(running)
    database.drop_schema()


@pytest.fixture(scope="module")
def owner(server: Server, ehr: FakeFhir) -> Iterator[Api]:
    with demo_login(server) as api:
        api.ok("PUT", "/api/v1/integrations/fhir/write-back", {"base_url": ehr.base_url + "/", "token": TOKEN})
        yield api


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat(timespec="seconds")


def ehr_appointment(fhir_id: str, start: str) -> dict:
    end = (datetime.fromisoformat(start) + timedelta(minutes=30)).isoformat()
    return {"resourceType": "Appointment", "id": fhir_id, "status": "booked", "start": start, "end": end,
            "serviceType": [{"text": "Hygienist"}], "comment": "kept by the EHR",
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "needs-action"},
                            {"actor": {"reference": "Location/l1", "display": "Surgery 3"}, "status": "accepted"}]}


def push(server: Server, owner: Api, appointment: dict, phone: str) -> dict:
    """The EHR pushes its appointment with the patient to the webhook, signed."""
    settings = owner.ok("GET", "/api/v1/integrations/fhir")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Wren"], "family": "Back"}],
                      "telecom": [{"system": "phone", "value": phone}]}}, {"resource": appointment}]}
    body = json.dumps(bundle).encode()
    response = httpx.post(f"{server.url}{settings['url']}", content=body, headers={
        "Content-Type": "application/fhir+json", "X-Commhub-Workspace": settings["workspace"],
        "X-Commhub-Signature": signature(settings["secret"], body)})
    assert response.status_code == 200, response.text
    return response.json()


def timeline_kinds(owner: Api, contact_id: str) -> list[str]:
    return [e["kind"] for e in owner.ok("GET", f"/api/v1/contacts/{contact_id}/timeline")["items"]]


def test_a_reply_confirming_an_ehr_booking_is_written_back_to_the_ehr_exactly_once(server, owner, ehr):
    owner.ok("POST", "/api/v1/reminder-policies", {"kind": "before", "offset_minutes": 60, "channel": "sms",
                                                  "template": "See you at {start_local}. Reply C to confirm."})
    phone, fhir_id = phone_number(), unique("ehr")
    resource = ehr_appointment(fhir_id, at(30))
    ehr.put_resource(resource)
    booked = push(server, owner, resource, phone)
    path = f"/api/v1/appointments/{booked['appointment_id']}"
    wait_for(lambda: owner.ok("GET", path)["reminders"][0]["status"] == "sent", timeout=20,
             what="the reminder to be sent")
    owner.inbound(phone, "YES")

    wait_for(lambda: "appointment.written_back" in timeline_kinds(owner, booked["contact_id"]), timeout=20,
             what="the confirmation to be written back")
    time.sleep(1.0)  # several more worker rounds: still one PUT
    [put] = ehr.puts(fhir_id)
    assert put.headers["Authorization"] == f"Bearer {TOKEN}" and put.headers["If-Match"] == 'W/"1"'
    assert put.body is not None and put.body["status"] == "booked" and put.body["comment"] == "kept by the EHR"
    assert [p["status"] for p in put.body["participant"]] == ["accepted", "accepted"]
    appointment = owner.ok("GET", path)
    assert (appointment["status"], appointment["confirmed_via"]) == ("confirmed", "reply")
    assert [(w["status"], w["state"], w["http_status"]) for w in appointment["write_backs"]] == [
        ("confirmed", "written", 200)]
    entry = [e for e in owner.ok("GET", f"/api/v1/contacts/{booked['contact_id']}/timeline")["items"]
             if e["kind"] == "appointment.written_back"][0]
    assert entry["detail"]["fhir_status"] == "booked" and entry["detail"]["http_status"] == 200
    assert TOKEN not in server.log()


def test_a_cancellation_the_ehr_first_refuses_with_500_is_retried_until_written_once(server, owner, ehr):
    phone, fhir_id = phone_number(), unique("ehr")
    resource = ehr_appointment(fhir_id, at(60 * 24))
    ehr.put_resource(resource)
    booked = push(server, owner, resource, phone)
    ehr.fail_next_puts(500)
    owner.ok("POST", f"/api/v1/appointments/{booked['appointment_id']}/cancel", {"reason": "Patient phoned"})

    wait_for(lambda: "appointment.written_back" in timeline_kinds(owner, booked["contact_id"]), timeout=20,
             what="the cancellation to be written back after a retry")
    time.sleep(1.0)
    assert [(p.body or {}).get("status") for p in ehr.puts(fhir_id)] == ["cancelled", "cancelled"]
    assert [p.answered for p in ehr.puts(fhir_id)] == [500, 200]
    assert ehr.resources[fhir_id][1]["status"] == "cancelled"
    kinds = timeline_kinds(owner, booked["contact_id"])
    assert kinds.count("appointment.written_back") == 1 and "appointment.write_back_failed" not in kinds


def test_a_change_the_ehr_itself_pushed_is_not_echoed_and_a_no_show_is_written_as_noshow(server, owner, ehr):
    phone, first_id, second_id = phone_number(), unique("ehr"), unique("ehr")
    first, second = ehr_appointment(first_id, at(60 * 30)), ehr_appointment(second_id, at(60 * 31))
    ehr.put_resource(first)
    ehr.put_resource(second)
    push(server, owner, first, phone)
    push(server, owner, {**first, "status": "cancelled"}, phone)  # the EHR cancelled it: nothing to write back
    booked = push(server, owner, second, phone)
    owner.ok("POST", f"/api/v1/appointments/{booked['appointment_id']}/no-show")

    wait_for(lambda: ehr.puts(second_id), timeout=20, what="the no-show to be written back")
    assert [(p.body or {}).get("status") for p in ehr.puts(second_id)] == ["noshow"]
    assert ehr.puts(first_id) == []


def test_the_write_back_setting_is_for_admins_refuses_bad_urls_and_never_shows_the_token(owner, ehr):
    setting = owner.ok("GET", "/api/v1/integrations/fhir/write-back")
    assert setting["base_url"] == ehr.base_url and setting["token_set"] is True and TOKEN not in json.dumps(setting)
    assert_problem(owner.request("PUT", "/api/v1/integrations/fhir/write-back",
                                 json={"base_url": "ftp://ehr.example/fhir", "token": "x"}), 422)
    assert_problem(owner.request("PUT", "/api/v1/integrations/fhir/write-back",
                                 json={"base_url": "https://ehr.example/fhir", "token": "two words"}), 422)
    assert owner.ok("GET", "/api/v1/integrations/fhir/write-back")["base_url"] == ehr.base_url
