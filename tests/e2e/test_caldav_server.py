"""Calendar sync through a real ``commhub serve`` process and a real CalDAV server (Radicale) on
loopback: an agent connects their own calendar (wrong password, not a calendar or no server: 422
problem+json, nothing saved), bookings made through the API appear in it, move and disappear; a
calendar server that goes down gets the push once it is back; the password never shows anywhere."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.postgres import Database
from domain.calendar_sync import resource_name
from tests.e2e.api_support import (
    Api,
    assert_problem,
    demo_credentials,
    demo_login,
    login,
    unique,
    wait_for,
)
from tests.e2e.conftest import Server, start_server, stop_server
from tests.radicale_server import Radicale

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale-e2e")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           "COMMHUB_REMINDER_POLL_SECONDS": "0.3", "COMMHUB_CALDAV_BASE_DELAY": "0.3",
           "COMMHUB_CALDAV_TIMEOUT": "2", "COMMHUB_LOG_LEVEL": "debug",
           "COMMHUB_CALDAV_ALLOW_PRIVATE": "on"}  # Radicale listens on loopback
    running = start_server(tmp_path_factory.mktemp("caldav-server"), env, "--demo")
    yield running
    stop_server(running)
    database.drop_schema()


@pytest.fixture(scope="module")
def owner(server: Server) -> Iterator[Api]:
    with demo_login(server) as api:
        yield api


@pytest.fixture
def new_agent(server: Server, owner: Api) -> Iterator[Callable[[], Api]]:
    """Log in as new agents of the demo workspace (closed after the test)."""
    clients: list[Api] = []

    def new() -> Api:
        email = f"{unique('agent')}@demo.example"
        owner.ok("POST", "/api/v1/staff", {"name": "Dr Agent", "email": email, "role": "agent", "password": PASSWORD})
        clients.append(login(server.url, demo_credentials(server)["workspace_slug"], email, PASSWORD))
        return clients[-1]

    yield new
    for client in clients:
        client.close()


def at(hours: float) -> str:
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(hours=hours)).isoformat()


def event(radicale: Radicale, user: str, calendar: str, appointment_id: str, staff_id: str):
    found = radicale.event(user, f"{calendar}{resource_name(uuid.UUID(appointment_id), uuid.UUID(staff_id))}.ics")
    return None if found is None else [c for c in found.subcomponents if c.name == "VEVENT"][0]


def test_an_agent_connects_their_calendar_and_bookings_appear_move_and_disappear(server, owner, radicale, new_agent):
    agent = new_agent()
    staff_id = agent.me["staff_id"]
    user, password = radicale.new_user()
    calendar = radicale.make_calendar(user)
    path = f"/api/v1/caldav/connections/{staff_id}"

    wrong = assert_problem(agent.request("PUT", path, json={"collection_url": calendar, "username": user,
                                                             "password": "wrong-" + password}), 422)
    assert wrong["code"] == "caldav_unauthorised"
    book = radicale.make_address_book(user)
    assert assert_problem(agent.request("PUT", path, json={"collection_url": book, "username": user,
                                                           "password": password}), 422)["code"] == "caldav_not_a_calendar"
    assert assert_problem(agent.request("PUT", path, json={"collection_url": "http://127.0.0.1:9/cal/", "username": user,
                                                           "password": password}), 422)["code"] == "caldav_unreachable"
    assert assert_problem(agent.request("PUT", path, json={"collection_url": "http://dav.example/cal/", "username": user,
                                                           "password": password}), 422)["code"] == "caldav_setting_invalid"
    assert_problem(agent.get(path), 404)

    connected = agent.ok("PUT", path, {"collection_url": calendar, "username": user, "password": password})
    assert connected == {**connected, "staff_id": staff_id, "collection_url": calendar, "username": user,
                         "password_set": True}
    assert password not in json.dumps(connected) + json.dumps(agent.ok("GET", path))
    assert password not in json.dumps(owner.ok("GET", "/api/v1/caldav/connections"))

    contact = owner.ok("POST", "/api/v1/contacts", {"name": unique("Grace Hopper"), "phone": "+447400123456"})
    booked = owner.ok("POST", "/api/v1/appointments", {
        "contact_id": contact["contact_id"], "service": "Root canal", "starts_at": at(26), "ends_at": at(27),
        "staff_id": staff_id, "location": "Surgery 1"})
    appointment_id = booked["appointment_id"]
    pushed = wait_for(lambda: event(radicale, user, calendar, appointment_id, staff_id), timeout=20,
                      what="the booking to reach the calendar")
    assert pushed.decoded("dtstart") == datetime.fromisoformat(at(26)) or abs(
        (pushed.decoded("dtstart") - datetime.fromisoformat(at(26))).total_seconds()) < 2
    assert (str(pushed["summary"]), str(pushed["location"])) == ("Appointment", "Surgery 1")
    raw = radicale.get(user, f"{calendar}{resource_name(uuid.UUID(appointment_id), uuid.UUID(staff_id))}.ics").text
    assert contact["name"] not in raw and "Root canal" not in raw and "123456" not in raw
    status = wait_for(lambda: [s for s in agent.ok("GET", f"/api/v1/appointments/{appointment_id}/caldav")["items"]
                               if s["state"] == "synced"], timeout=10, what="the synced status")
    assert status[0]["staff_id"] == staff_id and status[0]["http_status"] == 201

    new_start = at(50)
    owner.ok("POST", f"/api/v1/appointments/{appointment_id}/reschedule", {"starts_at": new_start, "ends_at": at(51),
                                                                       "staff_id": staff_id})
    moved = wait_for(lambda: (e := event(radicale, user, calendar, appointment_id, staff_id)) is not None
                     and e.decoded("dtstart") == datetime.fromisoformat(new_start) and e, timeout=20,
                     what="the reschedule to reach the calendar")
    assert str(moved["uid"]) == str(pushed["uid"])

    owner.ok("POST", f"/api/v1/appointments/{appointment_id}/cancel", {"reason": "Phoned in"})
    wait_for(lambda: event(radicale, user, calendar, appointment_id, staff_id) is None, timeout=20,
             what="the cancellation to remove the event")
    assert radicale.hrefs(user, calendar) == []

    agent.request("DELETE", path).raise_for_status()
    assert_problem(agent.get(path), 404)
    assert password not in server.log() and user not in server.log() and calendar not in server.log()


def test_a_calendar_server_that_was_down_gets_the_booking_once_it_is_back(server, owner, radicale, new_agent):
    agent = new_agent()
    staff_id = agent.me["staff_id"]
    user, password = radicale.new_user()
    calendar = radicale.make_calendar(user)
    owner.ok("PUT", f"/api/v1/caldav/connections/{staff_id}", {"collection_url": calendar, "username": user,
                                                               "password": password})
    contact = owner.ok("POST", "/api/v1/contacts", {"name": unique("Alan Turing")})
    radicale.stop()
    try:
        booked = owner.ok("POST", "/api/v1/appointments", {
            "contact_id": contact["contact_id"], "service": "Check-up", "starts_at": at(30), "ends_at": at(31),
            "staff_id": staff_id})
        appointment_id = booked["appointment_id"]
        retrying = wait_for(lambda: [s for s in owner.ok("GET", f"/api/v1/appointments/{appointment_id}/caldav")["items"]
                                     if s["state"] == "retrying" and s["attempts"] >= 2], timeout=20,
                            what="retries while the calendar server is down")
        assert retrying[0]["http_status"] is None
    finally:
        radicale.start()
    wait_for(lambda: event(radicale, user, calendar, appointment_id, staff_id), timeout=30,
             what="the push once the calendar server is back")
    def recorded() -> list[dict] | None:  # the worker records the outcome just after the server answered its PUT
        items = owner.ok("GET", f"/api/v1/appointments/{appointment_id}/caldav")["items"]
        return items if any(s["state"] != "retrying" for s in items) else None

    [status] = wait_for(recorded, timeout=10, what="the push's outcome recorded")
    assert status["state"] == "synced" and status["attempts"] >= 3
    assert owner.ok("GET", "/api/v1/caldav/sync", params={"state": "failed"})["items"] == []


def test_staff_manage_only_their_own_calendar_and_admins_the_workspace_settings(server, owner, radicale, new_agent):
    agent, other = new_agent(), new_agent()
    body = {"collection_url": f"{radicale.url}/x/y/", "username": "u", "password": "p"}
    assert_problem(agent.request("PUT", f"/api/v1/caldav/connections/{other.me['staff_id']}", json=body), 403)
    assert_problem(agent.get(f"/api/v1/caldav/connections/{other.me['staff_id']}"), 403)
    assert_problem(agent.request("DELETE", f"/api/v1/caldav/connections/{other.me['staff_id']}"), 403)
    assert_problem(agent.get("/api/v1/caldav/sync", params={"staff_id": other.me["staff_id"]}), 403)
    assert_problem(agent.request("PUT", "/api/v1/caldav/settings", json={"include_contact_name": True}), 403)
    assert_problem(agent.request("PUT", f"/api/v1/caldav/connections/{uuid.uuid4()}", json=body), 404)
    assert owner.ok("GET", "/api/v1/caldav/settings") == {"include_contact_name": False}
    assert owner.ok("PUT", "/api/v1/caldav/settings", {"include_contact_name": True}) == {"include_contact_name": True}
    assert owner.ok("PUT", "/api/v1/caldav/settings", {"include_contact_name": False}) == {"include_contact_name": False}
    user, password = radicale.new_user()
    calendar = radicale.make_calendar(user)
    connected = owner.ok("PUT", f"/api/v1/caldav/connections/{other.me['staff_id']}",
                         {"collection_url": calendar, "username": user, "password": password})
    assert connected["staff_id"] == other.me["staff_id"]
    assert [c["staff_id"] for c in other.ok("GET", "/api/v1/caldav/connections")["items"]] == [other.me["staff_id"]]
    assert agent.ok("GET", "/api/v1/caldav/connections")["items"] == []
