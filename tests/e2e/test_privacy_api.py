"""Privacy features through the API of one real server process: replay as of a time (owner and
compliance only) and the under-age guard (setting, date of birth, minor flag, marketing refused),
including the inbox page's contact panel in headless Chromium."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.api_support import (
    assert_problem,
    demo_credentials,
    demo_login,
    login,
    phone_number,
    serving_demo,
    unique,
)
from tests.e2e.conftest import Server
from tests.e2e.test_inbox_page import browser_page  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, server_url: str, session_kek: str) -> Iterator[Server]:
    with serving_demo(tmp_path_factory.mktemp("privacy"), server_url, session_kek) as running:
        yield running


def test_compliance_replays_a_contact_as_of_a_moment_through_the_api_and_agents_may_not(server):
    with demo_login(server) as owner:
        contact = owner.ok("POST", "/api/v1/contacts", {"name": "Replay Rhiannon", "phone": phone_number()})
        owner.ok("POST", f"/api/v1/contacts/{contact['contact_id']}/notes", {"text": "first visit"})
        then = owner.ok("GET", f"/api/v1/contacts/{contact['contact_id']}/timeline")["items"]
        moment = datetime.now(timezone.utc)
        owner.ok("POST", f"/api/v1/contacts/{contact['contact_id']}/notes", {"text": "second visit, after"})
        password = "a long enough password"
        roles = {}
        for role in ("compliance", "agent"):
            email = f"{unique(role)}@demo.example"
            owner.ok("POST", "/api/v1/staff", {"name": role, "email": email, "role": role, "password": password})
            roles[role] = login(server.url, demo_credentials(server)["workspace_slug"], email, password)
    path = f"/api/v1/privacy/replay/contacts/{contact['contact_id']}"
    as_of = {"as_of": moment.isoformat()}
    with roles["compliance"] as compliance, roles["agent"] as agent:
        replayed = compliance.ok("GET", path, params=as_of)
        assert replayed["items"] == then
        assert replayed["contact"]["name"] == "Replay Rhiannon" and replayed["contact"]["erased"] is False
        assert_problem(agent.get(path, params=as_of), 403)
        assert_problem(compliance.get(path, params={"as_of": "2026-11-01T09:00:00"}), 422)
        assert_problem(compliance.get(path, params={"as_of": "yesterday"}), 422)
        assert_problem(compliance.get(f"/api/v1/privacy/replay/contacts/{uuid.uuid4()}", params=as_of), 404)
        inbox = compliance.ok("GET", "/api/v1/privacy/replay/inbox", params=as_of)
        assert inbox["events_read"] > 0 and isinstance(inbox["items"], list)
        assert httpx.get(f"{server.url}{path}", params=as_of).status_code == 401


CONTACTS = "/api/v1/contacts"
GUARD = "/api/v1/settings/minors"


def years_ago(years: int, days: int = 0) -> str:
    """A birth date, counted on the UTC calendar (the contacts below live in UTC)."""
    today = datetime.now(timezone.utc).date()
    day = today.day if (today.month, today.day) != (2, 29) else 28
    return date.fromordinal(today.replace(year=today.year - years, day=day).toordinal() + days).isoformat()


def test_a_minor_is_flagged_and_refused_marketing_once_the_workspace_turns_the_guard_on(server):
    with demo_login(server) as owner:
        owner.ok("PUT", GUARD, {"enabled": False})  # the module's tests share one workspace
        teen = owner.ok("POST", CONTACTS, {"name": unique("Teen Tamsin"), "phone": phone_number(),
                                           "time_zone": "UTC", "date_of_birth": years_ago(15)})
        assert teen["date_of_birth"] == years_ago(15) and teen["minor"] is False  # the guard is off
        path = f"{CONTACTS}/{teen['contact_id']}"
        owner.ok("POST", f"{path}/consents", {"channel": "sms", "purpose": "marketing", "granted": True,
                                              "source": "web form", "wording": "Send me offers"})
        conversation = owner.ok("POST", f"{path}/conversations", {"channel": "sms"})["conversation_id"]
        reply = f"/api/v1/conversations/{conversation}/reply"
        assert owner.ok("POST", reply, {"body": "Spring offer", "purpose": "marketing"})["status"] == "queued"

        assert owner.ok("PUT", GUARD, {"enabled": True}) == {"enabled": True, "minimum_age": 16}

        assert owner.ok("GET", path)["minor"] is True
        listed = [c for c in owner.ok("GET", CONTACTS, params={"limit": 200})["items"] if c["contact_id"] == teen["contact_id"]]
        assert listed[0]["minor"] is True and listed[0]["date_of_birth"] == years_ago(15)
        refused = owner.ok("POST", reply, {"body": "Summer offer", "purpose": "marketing"})
        assert (refused["status"], refused["reason"]) == ("refused", "under_minimum_age_for_marketing")
        assert owner.ok("POST", reply, {"body": "Your appointment is at 10", "purpose": "transactional"})["status"] == "queued"
        kinds = [m["kind"] for m in owner.messages(conversation)]
        assert kinds.count("refused") == 1

        adult = owner.ok("PATCH", path, {"date_of_birth": years_ago(16)})  # corrected: sixteen today
        assert adult["minor"] is False and adult["date_of_birth"] == years_ago(16)
        assert owner.ok("POST", reply, {"body": "Autumn offer", "purpose": "marketing"})["status"] == "queued"
        assert owner.ok("PATCH", path, {"date_of_birth": years_ago(16, days=1)})["minor"] is True  # tomorrow
        assert owner.ok("PUT", GUARD, {"enabled": True, "minimum_age": 18})["minimum_age"] == 18
        assert owner.ok("PUT", GUARD, {"enabled": False}) == {"enabled": False, "minimum_age": 16}
        assert owner.ok("GET", path)["minor"] is False


def test_bad_dates_of_birth_and_ages_are_refused_and_only_admins_change_the_guard(server):
    with demo_login(server) as owner:
        future = owner.post(CONTACTS, {"name": "Future Fay", "date_of_birth": "2999-01-01"})
        assert assert_problem(future, 422)["code"] == "DateOfBirthInvalidError"
        assert "2999" not in future.text
        assert_problem(owner.post(CONTACTS, {"name": "Nonsense Nia", "date_of_birth": "31/05/2011"}), 422)
        assert_problem(owner.request("PUT", GUARD, json={"enabled": True, "minimum_age": 40}), 422)
        email, password = f"{unique('agent')}@demo.example", "a long enough password"
        owner.ok("POST", "/api/v1/staff", {"name": "Agent", "email": email, "role": "agent", "password": password})
    with login(server.url, demo_credentials(server)["workspace_slug"], email, password) as agent:
        assert set(agent.ok("GET", GUARD)) == {"enabled", "minimum_age"}
        assert_problem(agent.request("PUT", GUARD, json={"enabled": True}), 403)


def test_the_contact_panel_shows_a_minor_flag_and_the_date_of_birth(server, browser_page):  # noqa: F811
    page, errors = browser_page
    born = datetime.now(timezone.utc).date().replace(month=1, day=1, year=datetime.now(timezone.utc).year - 12)
    phone = phone_number()
    with demo_login(server) as owner:
        owner.ok("PUT", "/api/v1/settings/minors", {"enabled": True})
        owner.ok("POST", "/api/v1/contacts", {"name": "Milo Minor", "phone": phone, "date_of_birth": born.isoformat()})
        owner.inbound(phone, "Can my mum book me in for Monday?")
        owner.inbound(phone_number(), "Adult question about parking", name="Greta Grownup")
    login = demo_credentials(server)

    page.goto(server.url)
    page.get_by_label("Workspace").fill(login["workspace_slug"])
    page.get_by_label("Email", exact=True).fill(login["email"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Sign in").click()

    rows = page.locator("#conversation-list .conversation")
    rows.filter(has_text="Milo Minor").click()
    expect(page.locator("#contact-flags")).to_contain_text("Minor")
    expect(page.locator("#contact-profile")).to_contain_text(born.isoformat())
    rows.filter(has_text="Greta Grownup").click()
    expect(page.locator("#contact-name")).to_have_text("Greta Grownup")
    expect(page.locator("#contact-flags")).not_to_contain_text("Minor")
    assert errors == []
