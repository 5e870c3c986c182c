"""Appointments against a real server: booking by an agent, reminders captured by the sandbox and
confirmed by a reply, batch/ICS/FHIR imports, the secret ICS feed, and the contact panel in Chromium."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar
from playwright.sync_api import expect, sync_playwright

from adapters.fhir import signature, workspace_secret
from adapters.postgres import Database
from tests.e2e.api_support import (Api, AgentSocket, assert_problem, demo_login, login, phone_number, unique,
                                   wait_for)
from tests.e2e.conftest import Server, start_server, stop_server

FHIR_SECRET = "f" * 16 + uuid.uuid4().hex
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # a missing browser is a failed check, never a silent skip
    raise RuntimeError("the page test needs Debian's chromium at /usr/bin/chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    database = Database(server_url, f"test_{uuid.uuid4().hex[:12]}")
    database.ensure_schema()
    env = {"DATABASE_URL": database.url, "COMMHUB_DB_SCHEMA": database.schema, "COMMHUB_KEK": session_kek,
           "COMMHUB_FHIR_WEBHOOK_SECRET": FHIR_SECRET, "COMMHUB_REMINDER_POLL_SECONDS": "0.5"}
    running = start_server(tmp_path_factory.mktemp("appointments"), env, "--demo")
    yield running
    stop_server(running)
    database.drop_schema()


@pytest.fixture(scope="module")
def owner(server) -> Iterator[Api]:
    with demo_login(server) as api:
        yield api


@pytest.fixture(scope="module")
def agent(server, owner) -> Iterator[Api]:
    email = f"{unique('agent')}@clinic.example"
    owner.ok("POST", "/api/v1/staff", {"name": "Agnes Agent", "email": email, "role": "agent",
                                       "password": "a long enough password"})
    slug = json.loads((server.data_dir / "demo-login.json").read_text())["workspace_slug"]
    with login(server.url, slug, email, "a long enough password") as api:
        yield api


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def new_contact(api: Api, phone: str | None = None) -> dict:
    return api.ok("POST", "/api/v1/contacts", {"name": unique("Olive Patient"), "phone": phone or phone_number(),
                                              "time_zone": "Europe/London"})


def test_an_agent_books_moves_and_completes_an_appointment_and_the_timeline_shows_it(agent):
    contact = new_contact(agent)
    booked = agent.ok("POST", "/api/v1/appointments", {
        "contact_id": contact["contact_id"], "service": "Knee physio", "starts_at": at(60 * 24),
        "ends_at": at(60 * 24 + 30), "location": "Room 2", "staff_id": agent.me["staff_id"]})
    assert booked["status"] == "booked" and booked["time_zone"] == "Europe/London"
    path = f"/api/v1/appointments/{booked['appointment_id']}"
    moved = agent.ok("POST", f"{path}/reschedule", {"starts_at": at(60 * 48), "ends_at": at(60 * 48 + 30)})
    assert moved["starts_at"] != booked["starts_at"]
    for step, status in (("confirm", "confirmed"), ("check-in", "checked_in"), ("complete", "completed")):
        assert agent.ok("POST", f"{path}/{step}")["status"] == status
    assert_problem(agent.post(f"{path}/cancel", {}), 409)
    assert_problem(agent.post("/api/v1/appointments", {**{k: booked[k] for k in ("contact_id", "service")},
                                                      "starts_at": at(10), "ends_at": at(5)}), 422)
    kinds = [e["kind"] for e in agent.ok("GET", f"/api/v1/contacts/{contact['contact_id']}/timeline")["items"]]
    assert kinds[-5:] == ["appointment.booked", "appointment.rescheduled", "appointment.confirmed",
                          "appointment.checked_in", "appointment.completed"]
    listed = agent.ok("GET", "/api/v1/appointments", params={"contact_id": contact["contact_id"]})["items"]
    assert [a["appointment_id"] for a in listed] == [booked["appointment_id"]]
    assert_problem(agent.post("/api/v1/reminder-policies", {"kind": "before", "offset_minutes": 60,
                                                           "channel": "sms", "template": "Hi"}), 403)


def test_a_due_reminder_is_captured_by_the_sandbox_and_a_yes_reply_confirms_the_appointment(owner):
    template = "Hi {first_name}, {service} at {location} on {start_local}. Reply C to confirm, R to rebook."
    assert_problem(owner.post("/api/v1/reminder-policies", {"kind": "before", "offset_minutes": 60, "channel": "sms",
                                                           "template": "Hi {first_name.__class__}"}), 422)
    owner.ok("POST", "/api/v1/reminder-policies", {"kind": "before", "offset_minutes": 60, "channel": "sms",
                                                  "template": template})
    phone = phone_number()
    contact = new_contact(owner, phone)
    appointment = owner.ok("POST", "/api/v1/appointments", {
        "contact_id": contact["contact_id"], "service": "Dental check", "starts_at": at(30), "ends_at": at(60),
        "location": "Harbour St"})

    def reminder() -> dict | None:
        found = owner.ok("GET", "/api/v1/conversations", params={"view": "all", "limit": 200})["items"]
        mine = [c for c in found if c["contact_id"] == contact["contact_id"]]
        messages = owner.messages(mine[0]["conversation_id"]) if mine else []
        return next((m for m in messages if m.get("status") == "captured"), None)

    captured = wait_for(reminder, timeout=20, what="the reminder to be captured by the sandbox")
    assert captured["body"].startswith(f"Hi {contact['name'].split()[0]}, Dental check at Harbour St on ")
    owner.inbound(phone, "yes 👍")
    path = f"/api/v1/appointments/{appointment['appointment_id']}"
    confirmed = wait_for(lambda: owner.ok("GET", path)["status"] == "confirmed" and owner.ok("GET", path),
                         timeout=20, what="the reply to confirm the appointment")
    assert confirmed["confirmed_via"] == "reply"
    assert [r["status"] for r in confirmed["reminders"]] == ["sent"]


def test_a_batch_import_is_all_or_nothing_and_repeating_it_changes_nothing(owner):
    contact = new_contact(owner)
    good = {"contact_id": contact["contact_id"], "service": "Massage", "starts_at": at(600), "ends_at": at(660),
            "external_id": unique("pms")}
    bad = {**good, "external_id": unique("pms"), "contact_id": str(uuid.uuid4())}
    assert_problem(owner.post("/api/v1/appointments/import", {"appointments": [good, bad]}), 404)
    assert owner.ok("GET", "/api/v1/appointments", params={"contact_id": contact["contact_id"]})["items"] == []
    first = owner.ok("POST", "/api/v1/appointments/import", {"appointments": [good]})["items"]
    again = owner.ok("POST", "/api/v1/appointments/import", {"appointments": [good]})["items"]
    cancelled = owner.ok("POST", "/api/v1/appointments/import", {"appointments": [{**good, "status": "cancelled"}]})
    assert [i["outcome"] for i in first + again] == ["booked", "unchanged"]
    assert cancelled["items"][0]["appointment_id"] == first[0]["appointment_id"]
    assert owner.ok("GET", f"/api/v1/appointments/{first[0]['appointment_id']}")["status"] == "cancelled"


def test_an_ics_upload_books_appointments_and_the_secret_staff_feed_parses_back_and_can_be_revoked(server, owner):
    email = f"{unique('ics')}@example.org"
    year = datetime.now(UTC).year + 1  # a spring date in summer time, within two years
    uid = unique("uid")
    upload = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/London:{year}0402T093000\r\n"
        f"DTEND;TZID=Europe/London:{year}0402T100000\r\nSUMMARY:Sports massage\r\nLOCATION:Room 1\r\n"
        f"ATTENDEE;CN=Ivy Calendar:mailto:{email}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    headers = {"Content-Type": "text/calendar"}
    imported = owner.ok("POST", "/api/v1/appointments/import/ics", content=upload.encode(), headers=headers)["items"]
    assert_problem(owner.post("/api/v1/appointments/import/ics", content=b"BEGIN:nonsense", headers=headers), 422)
    appointment = owner.ok("GET", f"/api/v1/appointments/{imported[0]['appointment_id']}")
    assert appointment["starts_at"] == f"{year}-04-02T08:30:00+00:00" and appointment["time_zone"] == "Europe/London"
    owner.ok("POST", f"/api/v1/appointments/{appointment['appointment_id']}/reschedule", {
        "starts_at": appointment["starts_at"], "ends_at": appointment["ends_at"], "staff_id": owner.me["staff_id"]})

    feed = owner.ok("POST", "/api/v1/calendar/feeds", {"staff_id": owner.me["staff_id"]})
    assert email not in feed["url"] and owner.me["staff_id"] not in feed["url"]
    response = httpx.get(f"{server.url}{feed['url']}?future_days=730")  # next spring may be >1 year ahead
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/calendar")
    events = {str(e["uid"]): e for e in Calendar.from_ical(response.text).walk("VEVENT")}
    event = events[f"{appointment['appointment_id']}@commhub"]
    assert str(event["summary"]) == "Sports massage" and str(event["location"]) == "Room 1"
    assert event.decoded("dtstart") == datetime(year, 4, 2, 8, 30, tzinfo=UTC)
    assert "Ivy" not in response.text and email not in response.text

    owner.request("DELETE", f"/api/v1/calendar/feeds/{feed['feed_id']}")
    assert_problem(httpx.get(f"{server.url}{feed['url']}"), 404)


def test_the_staff_feed_covers_30_days_back_to_a_year_ahead_unless_asked_for_another_window(server, owner, agent):
    contact = new_contact(agent)
    ids = {}
    for label, days in (("long ago", -40), ("last week", -7), ("in three months", 90), ("next year", 400)):
        ids[label] = agent.ok("POST", "/api/v1/appointments", {
            "contact_id": contact["contact_id"], "service": f"Window {label}", "starts_at": at(days * 24 * 60),
            "ends_at": at(days * 24 * 60 + 30), "staff_id": agent.me["staff_id"]})["appointment_id"]
    feed = agent.ok("POST", "/api/v1/calendar/feeds", {"staff_id": agent.me["staff_id"]})

    def labels(query: str = "") -> set[str]:
        response = httpx.get(f"{server.url}{feed['url']}{query}")
        assert response.status_code == 200, response.text
        uids = {str(e["uid"]) for e in Calendar.from_ical(response.text).walk("VEVENT")}
        return {label for label, appointment_id in ids.items() if f"{appointment_id}@commhub" in uids}

    assert labels() == {"last week", "in three months"}
    assert labels("?past_days=60&future_days=500") == set(ids)
    assert labels("?past_days=0&future_days=30") == set()
    assert_problem(httpx.get(f"{server.url}{feed['url']}?future_days=0"), 422)
    assert_problem(httpx.get(f"{server.url}{feed['url']}?past_days=-1"), 422)


def fhir_bundle(appointment_id: str, phone: str, start: str, status: str = "booked") -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1980-02-03",
                      "name": [{"use": "official", "given": ["Maya"], "family": "Fhir"}],
                      "telecom": [{"system": "phone", "value": phone}]}},
        {"resource": {"resourceType": "Appointment", "id": appointment_id, "status": status, "start": start,
                      "end": start.replace("T09", "T10"), "serviceType": [{"text": "Hygienist"}],
                      "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"},
                                      {"actor": {"reference": "Location/l1", "display": "Surgery 3"}}]}}]}


def test_the_fhir_webhook_books_moves_and_cancels_by_appointment_id_and_refuses_bad_signatures(server, owner):
    settings = owner.ok("GET", "/api/v1/integrations/fhir")
    assert settings["secret"] == workspace_secret(FHIR_SECRET, uuid.UUID(owner.me["workspace_id"]))
    phone, fhir_id = phone_number(), unique("fhir")

    def push(bundle: dict, secret: str = settings["secret"]) -> httpx.Response:
        body = json.dumps(bundle).encode()
        return httpx.post(f"{server.url}{settings['url']}", content=body, headers={
            "Content-Type": "application/fhir+json", "X-Commhub-Workspace": settings["workspace"],
            "X-Commhub-Signature": signature(secret, body)})

    assert_problem(push(fhir_bundle(fhir_id, phone, "2031-05-01T09:00:00+01:00"), secret="wrong"), 401)
    first = push(fhir_bundle(fhir_id, phone, "2031-05-01T09:00:00+01:00")).json()
    repeat = push(fhir_bundle(fhir_id, phone, "2031-05-01T09:00:00+01:00")).json()
    moved = push(fhir_bundle(fhir_id, phone, "2031-05-02T09:00:00+01:00")).json()
    cancelled = push(fhir_bundle(fhir_id, phone, "2031-05-02T09:00:00+01:00", "cancelled")).json()
    assert [first["outcome"], repeat["outcome"], moved["outcome"]] == ["booked", "unchanged", "updated"]
    assert len({first["appointment_id"], moved["appointment_id"], cancelled["appointment_id"]}) == 1
    appointment = owner.ok("GET", f"/api/v1/appointments/{first['appointment_id']}")
    assert (appointment["status"], appointment["service"], appointment["location"]) == ("cancelled", "Hygienist",
                                                                                       "Surgery 3")
    contact = owner.ok("GET", f"/api/v1/contacts/{first['contact_id']}")
    assert (contact["name"], contact["phone"], contact["custom_fields"]) == ("Maya Fhir", phone,
                                                                             {"birth_date": "1980-02-03"})
    assert_problem(push({"resourceType": "Appointment"}), 422)


def test_appointments_another_agent_books_and_cancels_reach_the_owners_websocket_without_sealed_fields(
        server, owner, agent):
    contact = new_contact(agent)
    service = unique("Private consultation")

    async def scenario() -> list[dict]:
        socket = AgentSocket(server.url, owner.token)
        await socket.connect()
        try:
            booked = await asyncio.to_thread(agent.ok, "POST", "/api/v1/appointments", {
                "contact_id": contact["contact_id"], "service": service, "starts_at": at(60 * 50),
                "ends_at": at(60 * 51), "location": "Room 9"})
            await asyncio.to_thread(agent.ok, "POST", f"/api/v1/appointments/{booked['appointment_id']}/cancel",
                                    {"reason": "Feeling better"})
            updates = await socket.collect(lambda seen: any(u["type"] == "appointment.cancelled" for u in seen), 20)
        finally:
            await socket.close()
        return [u for u in updates if u.get("appointment_id") == booked["appointment_id"]]

    updates = asyncio.run(asyncio.wait_for(scenario(), timeout=40))
    assert [(u["type"], u["status"]) for u in updates] == [("appointment.booked", "booked"),
                                                           ("appointment.cancelled", "cancelled")]
    assert {u["contact_id"] for u in updates} == {contact["contact_id"]} and updates[0]["location"] == "Room 9"
    assert service not in json.dumps(updates) and "Feeling better" not in json.dumps(updates)


def test_an_agent_books_an_appointment_from_the_contact_panel(server, owner, agent):
    credentials = json.loads((server.data_dir / "demo-login.json").read_text())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url)
            page.get_by_label("Workspace").fill(credentials["workspace_slug"])
            page.get_by_label("Email", exact=True).fill(credentials["email"])
            page.get_by_label("Password").fill(credentials["password"])
            page.get_by_role("button", name="Sign in").click()
            page.locator("#conversation-list .conversation").filter(has_text="Ada Lovelace").click()
            expect(page.locator("#contact-name")).to_have_text("Ada Lovelace")
            expect(page.locator("#appointments")).to_contain_text("No upcoming appointments.")

            page.get_by_label("Service").fill("Follow-up consultation")
            page.get_by_label("Starts").fill((datetime.now() + timedelta(days=3)).strftime("%Y-%m-%dT10:00"))
            page.get_by_label("Location").fill("Room 4")
            page.get_by_role("button", name="Book").click()
            item = page.locator("#appointments .appointment")
            expect(item).to_contain_text("Follow-up consultation")
            expect(item).to_contain_text("Room 4")
            expect(page.locator("#timeline")).to_contain_text("Appointment booked")

            mine = [a for a in owner.ok("GET", "/api/v1/appointments", params={"limit": 500})["items"]
                    if a["service"] == "Follow-up consultation"]
            agent.ok("POST", "/api/v1/appointments", {  # someone else books: the open panel shows it live
                "contact_id": mine[0]["contact_id"], "service": "Booked elsewhere", "starts_at": at(60 * 100),
                "ends_at": at(60 * 101)})
            expect(page.locator("#appointments")).to_contain_text("Booked elsewhere")
            agent.ok("POST", f"/api/v1/appointments/{mine[0]['appointment_id']}/cancel", {})
            expect(item.filter(has_text="Follow-up consultation")).to_have_count(0)
            expect(page.locator("#timeline")).to_contain_text("Appointment cancelled")
            assert errors == []
        finally:
            browser.close()
